"""Load the reference (keras.applications) EfficientNet weights into our models.

Sources: a keras.applications EfficientNet(V2) model object, one of the `.h5` weight files Keras
publishes (`efficientnetb0.h5`, `efficientnetb0_notop.h5`, `efficientnetv2-s.h5`, ... in the
legacy HDF5 layout:
root attribute `layer_names`, one group per layer with attribute `weight_names`), or a
`.keras` file. Weights map by layer name, which our builder shares with keras.applications.
The reference's Normalization layer is skipped: our models normalize with fixed ImageNet
constants (the published files store the standard deviations where variances belong and
patch that with an extra Rescaling layer; fixed constants avoid the trap). A model with other
than 3 input channels takes the RGB stem through `adapt_stem_kernel`, the one place every
weight loader adapts a pretrained stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from efficientnet_search.arch.blocks import B0_BLOCKS, HEAD_FILTERS, STEM_FILTERS
from efficientnet_search.arch.scaling import (
    V2_VARIANT_BLOCKS,
    V2_VARIANTS,
    VARIANTS,
    plan_blocks,
    round_filters,
)

_SKIPPED_PREFIXES = ("normalization", "rescaling")
_URL_HINT = (
    "download it on a machine with internet from "
    "https://storage.googleapis.com/keras-applications/efficientnet<b0..b7>[_notop].h5 or "
    "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
    "efficientnetv2-<b0..b3|s|m|l>[_notop].h5"
)


def adapt_stem_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Adapts a pretrained stem kernel (height, width, in, out) to `channels` input channels.

    The rule of timm's `adapt_input_conv`: one channel takes the sum of the input kernels
    (a gray image replicated into R, G and B gives the same response); any other count
    repeats the kernels cyclically and scales them by in/channels, so a constant image gives
    the same pre-activation as before. Pair it with `model.normalization_statistics`.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"a stem kernel has 4 axes (h, w, in, out), got shape {kernel.shape}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels=}")
    given = kernel.shape[2]
    if channels == given:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = -(-channels // given)
    tiled = np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels, :]
    return (tiled * (given / channels)).astype(kernel.dtype)


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
        if layer.name == "stem_conv":
            values = [adapt_stem_kernel(values[0], int(layer.weights[0].shape[2])), *values[1:]]
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


def _signature_of_weights(weights: dict[str, list[np.ndarray]]) -> tuple[int, int, int, int]:
    """(stem channels, head channels, blocks, Fused-MBConv blocks) of a reference weight set."""
    stem = weights["stem_conv"][0].shape[-1] if "stem_conv" in weights else -1
    head = weights["top_conv"][0].shape[-1] if "top_conv" in weights else -1
    return int(stem), int(head), *_block_counts(weights)


def _signature_of_model(model: keras.Model) -> tuple[int, int, int, int]:
    names = {layer.name: layer for layer in model.layers if layer.weights}
    stem = names["stem_conv"].filters if "stem_conv" in names else -1
    head = names["top_conv"].filters if "top_conv" in names else -1
    return stem, head, *_block_counts(names)


def _block_counts(names) -> tuple[int, int]:
    """(blocks, fused blocks): every block projects; only MBConv has a depthwise layer."""
    blocks = sum(1 for name in names if name.endswith("_project_conv"))
    depthwise = sum(1 for name in names if name.endswith(("_dwconv", "_dwconv2")))
    return blocks, blocks - depthwise


def variant_signatures() -> dict[str, tuple[int, int, int, int]]:
    """(stem channels, head channels, blocks, fused blocks) of each published variant."""
    signatures = {
        name: (
            round_filters(STEM_FILTERS, p.width),
            round_filters(HEAD_FILTERS, p.width),
            len(plan_blocks(B0_BLOCKS, p.width, p.depth)),
            0,
        )
        for name, p in VARIANTS.items()
    }
    for name, p in V2_VARIANTS.items():
        blocks = V2_VARIANT_BLOCKS[name]
        planned = plan_blocks(blocks, p.width, p.depth, limit_shrink=False)
        signatures[name] = (
            round_filters(blocks[0].filters_in, p.width, limit_shrink=False),
            round_filters(HEAD_FILTERS, p.width, limit_shrink=False),
            len(planned),
            sum(1 for b in planned if b.args.fused),
        )
    return signatures


def _describe(signature: tuple[int, int, int, int]) -> str:
    matches = [n for n, s in variant_signatures().items() if s == signature]
    stem, head, blocks, fused = signature
    shape = f"stem {stem}, head {head}, {blocks} blocks, {fused} fused"
    if not matches:
        return f"a custom model ({shape})"
    name = matches[0]
    title = f"EfficientNetV2-{name[3:].upper()}" if name.startswith("v2-") else (
        f"EfficientNet-{name.upper()}")
    return f"{title} ({shape})"


def _check_architecture(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    have, want = _signature_of_weights(weights), _signature_of_model(model)
    if have != want:
        raise ValueError(
            f"these weights fit {_describe(have)}, but the model is {_describe(want)}; "
            "build the matching variant"
        )
