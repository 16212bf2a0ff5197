"""efficientnet_search: EfficientNet compound scaling, grid search, training and fine-tuning.

The public API is listed in `__all__`; everything else lives in plain modules.
"""

from __future__ import annotations

from efficientnet_search.blocks import (
    B0_BLOCK_STRINGS,
    BlockArgs,
    decode_block_string,
    encode_block_string,
)
from efficientnet_search.model import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
    build_model,
)
from efficientnet_search.scaling import (
    VARIANTS,
    ScalingParams,
    compound_scaling,
    grid_candidates,
    round_filters,
    round_repeats,
)

__version__ = "0.1.0"

__all__ = [
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
    "ScalingParams",
    "VARIANTS",
    "build_model",
    "compound_scaling",
    "decode_block_string",
    "encode_block_string",
    "grid_candidates",
    "round_filters",
    "round_repeats",
]
