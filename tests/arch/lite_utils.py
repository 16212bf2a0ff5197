"""Helpers for the tests that need an installed Lite checkpoint or scikit-image's photographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from efficientnet_search.arch.pretrained import installed_checkpoint

# ImageNet classes (the standard 1000-class index) the photographs must rank first.
CAT_CLASSES = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}
ESPRESSO = 967


def checkpoint_or_skip(variant: str) -> Path:
    """The installed checkpoint of `variant`, or a skip saying how to install it."""
    try:
        return installed_checkpoint(variant)
    except FileNotFoundError as err:
        pytest.skip(f"{err}; `make test` installs it")


def photograph(name: str, resolution: int) -> np.ndarray:
    """scikit-image's `chelsea` or `coffee` photograph, resized to a 1-image batch in [0, 255]."""
    data = pytest.importorskip(
        "skimage.data", reason="pip install scikit-image (the test extra) for its photographs")
    import tensorflow as tf

    image = getattr(data, name)().astype("float32")
    return tf.image.resize(image[None], (resolution, resolution), method="bilinear").numpy()
