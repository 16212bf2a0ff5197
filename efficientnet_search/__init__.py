"""efficientnet_search: EfficientNet compound scaling, grid search, training and fine-tuning.

The public API is listed in `__all__`; everything else lives in plain modules.
"""

from __future__ import annotations

import importlib

# Every public name loads on first use, TensorFlow with it (quietly, through the subpackages),
# so `import efficientnet_search` and parsing the command line (`--help`, a bad flag) need no
# TensorFlow. The `train` and `finetune` functions live in the modules of the same names:
# `from efficientnet_search.training.train import train`.
_ARCH_BLOCKS = "efficientnet_search.arch.blocks"
_ARCH_MODEL = "efficientnet_search.arch.model"
_ARCH_APPS = "efficientnet_search.arch.applications"
_ARCH_SCALING = "efficientnet_search.arch.scaling"
_LAZY = {
    "B0_BLOCK_STRINGS": _ARCH_BLOCKS,
    "LITE_BLOCK_STRINGS": _ARCH_BLOCKS,
    "V2_BASE_BLOCK_STRINGS": _ARCH_BLOCKS,
    "BlockArgs": _ARCH_BLOCKS,
    "decode_block_string": _ARCH_BLOCKS,
    "encode_block_string": _ARCH_BLOCKS,
    **{f"EfficientNetB{i}": _ARCH_APPS for i in range(8)},
    **{f"EfficientNetLite{i}": _ARCH_APPS for i in range(5)},
    **{f"EfficientNetV2{s}": _ARCH_APPS for s in ("B0", "B1", "B2", "B3", "S", "M", "L")},
    "build_model": _ARCH_MODEL,
    "VARIANTS": _ARCH_SCALING,
    "LITE_VARIANTS": _ARCH_SCALING,
    "V2_VARIANTS": _ARCH_SCALING,
    "ScalingParams": _ARCH_SCALING,
    "compound_scaling": _ARCH_SCALING,
    "grid_candidates": _ARCH_SCALING,
    "round_filters": _ARCH_SCALING,
    "round_repeats": _ARCH_SCALING,
    "run_grid_search": "efficientnet_search.search.grid.run",
    "GridConfig": "efficientnet_search.search.grid.config",
    "run_nas": "efficientnet_search.search.nas.run",
    "load_nas_config": "efficientnet_search.search.nas.run",
    "NasConfig": "efficientnet_search.search.nas.config",
    "run_oneshot": "efficientnet_search.search.nas.oneshot.run",
    "load_oneshot_config": "efficientnet_search.search.nas.oneshot.run",
    "run_verify": "efficientnet_search.search.grid.verify",
    "load_grid_config": "efficientnet_search.search.grid.run",
    "run_pipeline": "efficientnet_search.search.pipeline",
    "PipelineConfig": "efficientnet_search.search.pipeline",
    "read_baseline": "efficientnet_search.arch.family",
    "TrainConfig": "efficientnet_search.training.train",
    "load_model": "efficientnet_search.training.saved",
    "FinetuneConfig": "efficientnet_search.medical.finetune_config",
    "DataConfig": "efficientnet_search.data.config",
    "load_splits": "efficientnet_search.data.splits",
    "make_pipeline": "efficientnet_search.data.splits",
    "model_cost": "efficientnet_search.arch.cost",
    "spec_cost": "efficientnet_search.arch.cost",
    "load_reference_weights": "efficientnet_search.arch.weights",
    "read_state_dict": "efficientnet_search.arch.torch_pickle",
    "scale_family": "efficientnet_search.arch.family",
    "load_config": "efficientnet_search.config",
}
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    raise AttributeError(f"module 'efficientnet_search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
