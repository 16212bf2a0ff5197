"""Load the reference (keras.applications) EfficientNet weights into our models.

Sources: a keras.applications EfficientNet model object, one of the `.h5` weight files Keras
publishes (`efficientnetb0.h5`, `efficientnetb0_notop.h5`, ... in the legacy HDF5 layout:
root attribute `layer_names`, one group per layer with attribute `weight_names`), or a
`.keras` file. Weights map by layer name, which our builder shares with keras.applications.
The reference's Normalization layer is skipped: our models normalize with fixed ImageNet
constants (the published files store the standard deviations where variances belong and
patch that with an extra Rescaling layer; fixed constants avoid the trap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from efficientnet_search.arch.blocks import B0_BLOCKS, HEAD_FILTERS, STEM_FILTERS
from efficientnet_search.arch.scaling import VARIANTS, plan_blocks, round_filters

_SKIPPED_PREFIXES = ("normalization", "rescaling")
_URL_HINT = (
    "download it on a machine with internet from "
    "https://storage.googleapis.com/keras-applications/efficientnet<b0..b7>[_notop].h5"
)


def load_reference_weights(model: keras.Model, source: Any) -> keras.Model:
    """Copies reference weights into `model` by layer name and returns it.

    Args:
      model: a model built by `build_model` (any variant; with or without top).
      source: a keras.applications EfficientNet model, or a path to a `.h5` weight file
        published with keras.applications, or a `.keras` model file.

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: the weights belong to another variant (the message says which one they
        fit) or to a classifier with a different number of classes.
    """
    reference = _read_source(source)
    _check_architecture(model, reference)
    for layer in model.layers:
        if not layer.weights or layer.name.startswith(_SKIPPED_PREFIXES):
            continue
        if layer.name not in reference:
            if layer.name == "predictions":
                raise ValueError(
                    "the reference weights have no classifier (a _notop file); build the model "
                    "with include_top=False and add a new head, or load the full weight file"
                )
            raise ValueError(f"reference weights have no layer {layer.name!r}")
        values = reference[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            if layer.name == "predictions":
                raise ValueError(
                    f"the reference classifier has {got[0][-1]} classes, the model has "
                    f"{expected[0][-1]}; build with include_top=False to put a new head on it"
                )
            raise ValueError(f"layer {layer.name!r}: reference shapes {got} != model {expected}")
        layer.set_weights(values)
    return model


def _read_source(source: Any) -> dict[str, list[np.ndarray]]:
    if isinstance(source, keras.Model):
        return {
            layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in source.layers
            if layer.weights and not layer.name.startswith(_SKIPPED_PREFIXES)
        }
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {str(path)!r}; {_URL_HINT}")
    if path.suffix == ".keras":
        return _read_source(keras.models.load_model(path, compile=False))
    if path.suffix not in (".h5", ".hdf5"):
        raise ValueError(
            f"unsupported weight file {str(path)!r}; expected a keras.applications .h5 file "
            "or a .keras model"
        )
    return _read_h5(path)


def _read_h5(path: Path) -> dict[str, list[np.ndarray]]:
    import h5py

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{str(path)!r} is not a Keras HDF5 weight file (no layer_names attribute); "
                "expected one of the keras.applications EfficientNet .h5 files"
            )
        weights: dict[str, list[np.ndarray]] = {}
        for raw in root.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[name]
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in group.attrs.get("weight_names", [])]
            if names and not name.startswith(_SKIPPED_PREFIXES):
                weights[name] = [np.asarray(group[n]) for n in names]
        return weights


def _signature_of_weights(weights: dict[str, list[np.ndarray]]) -> tuple[int, int, int]:
    """(stem channels, head channels, number of blocks) of a reference weight set."""
    stem = weights["stem_conv"][0].shape[-1] if "stem_conv" in weights else -1
    head = weights["top_conv"][0].shape[-1] if "top_conv" in weights else -1
    blocks = sum(1 for name in weights if name.endswith("_project_conv"))
    return int(stem), int(head), blocks


def _signature_of_model(model: keras.Model) -> tuple[int, int, int]:
    names = {layer.name: layer for layer in model.layers}
    stem = names["stem_conv"].filters if "stem_conv" in names else -1
    head = names["top_conv"].filters if "top_conv" in names else -1
    blocks = sum(1 for name in names if name.endswith("_project_conv"))
    return stem, head, blocks


def variant_signatures() -> dict[str, tuple[int, int, int]]:
    """(stem channels, head channels, number of blocks) of each published variant."""
    return {
        name: (
            round_filters(STEM_FILTERS, p.width),
            round_filters(HEAD_FILTERS, p.width),
            len(plan_blocks(B0_BLOCKS, p.width, p.depth)),
        )
        for name, p in VARIANTS.items()
    }


def _describe(signature: tuple[int, int, int]) -> str:
    matches = [n.upper() for n, s in variant_signatures().items() if s == signature]
    stem, head, blocks = signature
    shape = f"stem {stem}, head {head}, {blocks} blocks"
    return f"EfficientNet-{matches[0]} ({shape})" if matches else f"a custom model ({shape})"


def _check_architecture(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    have, want = _signature_of_weights(weights), _signature_of_model(model)
    if have != want:
        raise ValueError(
            f"these weights fit {_describe(have)}, but the model is {_describe(want)}; "
            "build the matching variant"
        )
