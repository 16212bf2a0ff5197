"""Helpers shared by the parity tests: reference models with random, well-scaled weights."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from efficientnet_search.arch.model import IMAGENET_MEAN_RGB, IMAGENET_STDDEV_RGB

REFERENCE = {f"b{i}": getattr(keras.applications, f"EfficientNetB{i}") for i in range(8)}
# B5-B7 are B0's builder with larger table entries (tests/arch/test_scaling.py checks the table)
# and the largest graphs to build: their full-size parity runs with --runslow.
LARGEST_V1 = ("b5", "b6", "b7")


def v1_params(names) -> list:
    """pytest parameters for `names`, the largest V1 variants marked slow."""

    return [pytest.param(n, marks=pytest.mark.slow) if n in LARGEST_V1 else n for n in names]


REFERENCE_V2 = {
    **{f"v2-b{i}": getattr(keras.applications, f"EfficientNetV2B{i}") for i in range(4)},
    **{f"v2-{s}": getattr(keras.applications, f"EfficientNetV2{s.upper()}") for s in "sml"},
}


def randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Gives every layer random weights (positive BN variances); ImageNet normalization.

    Random rather than trained weights, since nothing can be downloaded here: parity of the
    outputs then shows the graphs compute the same function, weight for weight.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.startswith("normalization"):
            if layer.weights:  # keras.applications keeps mean/variance as weights
                layer.set_weights([np.array(IMAGENET_MEAN_RGB, "float32"),
                                   np.square(IMAGENET_STDDEV_RGB).astype("float32"),
                                   np.array(0, "int64")])
            continue
        values = []
        for weight in layer.weights:
            if "variance" in weight.path:
                values.append(rng.uniform(0.5, 1.5, weight.shape))
            else:
                values.append(rng.normal(0.0, 0.1, weight.shape))
        if values:
            layer.set_weights([v.astype("float32") for v in values])
    return model


def images(resolution: int, count: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, resolution, resolution, 3)).astype(
        "float32")


@functools.cache
def reference_model(variant: str) -> keras.Model:
    """keras.applications model of `variant` (random init), built once per test session."""
    return {**REFERENCE, **REFERENCE_V2}[variant](weights=None)


@functools.cache
def our_model(variant: str) -> keras.Model:
    """Our model of `variant`, built once per test session."""
    from efficientnet_search.arch.model import build_model

    return build_model(variant)
