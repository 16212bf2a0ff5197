"""efficientnet_search: EfficientNet compound scaling, grid search, training and fine-tuning.

The public API is listed in `__all__`; everything else lives in plain modules.
"""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything loads it: its start-up chatter is dropped

from efficientnet_search.arch.blocks import (  # noqa: E402
    B0_BLOCK_STRINGS,
    LITE_BLOCK_STRINGS,
    V2_BASE_BLOCK_STRINGS,
    BlockArgs,
    decode_block_string,
    encode_block_string,
)
from efficientnet_search.arch.model import (  # noqa: E402
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
    EfficientNetLite0,
    EfficientNetLite1,
    EfficientNetLite2,
    EfficientNetLite3,
    EfficientNetLite4,
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
    build_model,
)
from efficientnet_search.arch.scaling import (  # noqa: E402
    LITE_VARIANTS,
    V2_VARIANTS,
    VARIANTS,
    ScalingParams,
    compound_scaling,
    grid_candidates,
    round_filters,
    round_repeats,
)

__version__ = "0.1.0"

# Heavier entry points (Optuna, the training loop, clinical metrics) load on first use, so
# `import efficientnet_search` and `efficientnet-search build` stay quick. The `train` and
# `finetune` functions live in the modules of the same names:
# `from efficientnet_search.training.train import train`.
_LAZY = {
    "run_grid_search": "efficientnet_search.search.grid",
    "GridConfig": "efficientnet_search.search.grid",
    "run_nas": "efficientnet_search.search.nas",
    "load_nas_config": "efficientnet_search.search.nas",
    "NasConfig": "efficientnet_search.search.nas_config",
    "run_pipeline": "efficientnet_search.search.pipeline",
    "PipelineConfig": "efficientnet_search.search.pipeline",
    "read_baseline": "efficientnet_search.arch.family",
    "TrainConfig": "efficientnet_search.training.train",
    "FinetuneConfig": "efficientnet_search.medical.finetune",
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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'efficientnet_search' has no attribute {name!r}")

__all__ = [
    *_LAZY,
    "B0_BLOCK_STRINGS",
    "BlockArgs",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "EfficientNetV2B0",
    "EfficientNetV2B1",
    "EfficientNetV2B2",
    "EfficientNetV2B3",
    "EfficientNetV2L",
    "EfficientNetV2M",
    "EfficientNetV2S",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "EfficientNetLite3",
    "EfficientNetLite4",
    "LITE_BLOCK_STRINGS",
    "LITE_VARIANTS",
    "ScalingParams",
    "V2_BASE_BLOCK_STRINGS",
    "V2_VARIANTS",
    "VARIANTS",
    "build_model",
    "compound_scaling",
    "decode_block_string",
    "encode_block_string",
    "grid_candidates",
    "round_filters",
    "round_repeats",
]
