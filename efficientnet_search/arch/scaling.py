"""Compound scaling: the rounding rules, the B0-B7 table and the (alpha, beta, gamma, phi) rule.

EfficientNet (Tan & Le 2019, Section 3.3) scales a baseline by depth d = alpha^phi, width
w = beta^phi and resolution r = gamma^phi, with alpha * beta^2 * gamma^2 ~= 2 so that each
step of phi roughly doubles the multiply-adds. The released B1-B7 were not built from that
formula exactly: their coefficients were hand-set (the published table below), so both are
offered and a ScalingParams says which one it came from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from efficientnet_search.arch.blocks import (
    V2_BASE_BLOCKS,
    V2_L_BLOCKS,
    V2_M_BLOCKS,
    V2_S_BLOCKS,
    BlockArgs,
)

# The reference rounds channels to multiples of 8 (official `round_filters`, depth_divisor=8).
DEPTH_DIVISOR = 8
MIN_RESOLUTION = 32


@dataclasses.dataclass(frozen=True)
class ScalingParams:
    """Width, depth, resolution and classifier dropout of one scaled model, kept together.

    `source` records where the numbers came from: "table" (the published B0-B7), "formula"
    (compound scaling from alpha, beta, gamma and phi) or "custom".
    """

    width: float
    depth: float
    resolution: int
    dropout: float = 0.2
    source: str = "custom"

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got width={self.width!r}")
        if not self.depth > 0:
            raise ValueError(f"depth must be > 0, got depth={self.depth!r}")
        if not isinstance(self.resolution, int) or self.resolution < MIN_RESOLUTION:
            raise ValueError(
                f"resolution must be an integer >= {MIN_RESOLUTION}, "
                f"got resolution={self.resolution!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")


# Published coefficients (width, depth, resolution, dropout): the official EfficientNet code's
# `efficientnet_params`, also used by keras.applications.
VARIANTS: dict[str, ScalingParams] = {
    name: ScalingParams(width, depth, resolution, dropout, source="table")
    for name, (width, depth, resolution, dropout) in {
        "b0": (1.0, 1.0, 224, 0.2),
        "b1": (1.0, 1.1, 240, 0.2),
        "b2": (1.1, 1.2, 260, 0.3),
        "b3": (1.2, 1.4, 300, 0.3),
        "b4": (1.4, 1.8, 380, 0.4),
        "b5": (1.6, 2.2, 456, 0.4),
        "b6": (1.8, 2.6, 528, 0.5),
        "b7": (2.0, 3.1, 600, 0.5),
    }.items()
}

# EfficientNet-Lite (width, depth, resolution, dropout): `efficientnet_lite_params` in
# tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py. Lite3 and Lite4
# run at lower resolutions than B3 and B4 and Lite4 keeps B3's dropout.
LITE_VARIANTS: dict[str, ScalingParams] = {
    name: ScalingParams(width, depth, resolution, dropout, source="table")
    for name, (width, depth, resolution, dropout) in {
        "lite0": (1.0, 1.0, 224, 0.2),
        "lite1": (1.0, 1.1, 240, 0.2),
        "lite2": (1.1, 1.2, 260, 0.3),
        "lite3": (1.2, 1.4, 280, 0.3),
        "lite4": (1.4, 1.8, 300, 0.3),
    }.items()
}

# The coefficients the paper found by grid search at phi=1 (Section 3.3, step 1).
PAPER_COEFFICIENTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}

# Parameters and multiply-adds as printed in the paper (Table 2), for side-by-side reports.
PAPER_COSTS: dict[str, tuple[float, float]] = {
    "b0": (5.3e6, 0.39e9),
    "b1": (7.8e6, 0.70e9),
    "b2": (9.2e6, 1.0e9),
    "b3": (12e6, 1.8e9),
    "b4": (19e6, 4.2e9),
    "b5": (30e6, 9.9e9),
    "b6": (43e6, 19e9),
    "b7": (66e6, 37e9),
}

# Parameters and multiply-adds as the Lite README prints them (tensorflow/tpu
# models/official/efficientnet/lite/README.md, checkpoint table).
LITE_PUBLISHED_COSTS: dict[str, tuple[float, float]] = {
    "lite0": (4.7e6, 407e6),
    "lite1": (5.4e6, 631e6),
    "lite2": (6.1e6, 899e6),
    "lite3": (8.2e6, 1.44e9),
    "lite4": (13.0e6, 2.64e9),
}


# EfficientNetV2 (google/automl efficientnetv2/effnetv2_configs.py, `efficientnetv2_params`):
# B0-B3 scale the V2 base blocks with V1's width/depth coefficients; S, M and L have their own
# block lists at width = depth = 1. Resolution is the evaluation size (keras.applications'
# default_size: 224, 240, 260, 300, 384, 480, 480); dropout is the reference's (keras'
# EfficientNetV2 wrappers leave it at 0.2 for every variant).
V2_VARIANTS: dict[str, ScalingParams] = {
    name: ScalingParams(width, depth, resolution, dropout, source="table")
    for name, (width, depth, resolution, dropout) in {
        "v2-b0": (1.0, 1.0, 224, 0.2),
        "v2-b1": (1.0, 1.1, 240, 0.2),
        "v2-b2": (1.1, 1.2, 260, 0.3),
        "v2-b3": (1.2, 1.4, 300, 0.3),
        "v2-s": (1.0, 1.0, 384, 0.2),
        "v2-m": (1.0, 1.0, 480, 0.3),
        "v2-l": (1.0, 1.0, 480, 0.4),
    }.items()
}
V2_VARIANT_BLOCKS: dict[str, tuple[BlockArgs, ...]] = {
    **{f"v2-b{i}": V2_BASE_BLOCKS for i in range(4)},
    "v2-s": V2_S_BLOCKS,
    "v2-m": V2_M_BLOCKS,
    "v2-l": V2_L_BLOCKS,
}
# Parameters and FLOPs (multiply-adds) as printed in the V2 paper (Tan & Le 2021, Table 7).
V2_PAPER_COSTS: dict[str, tuple[float, float]] = {
    "v2-b0": (7.1e6, 0.72e9),
    "v2-b1": (8.1e6, 1.2e9),
    "v2-b2": (10.1e6, 1.7e9),
    "v2-b3": (14.4e6, 3.0e9),
    "v2-s": (21.5e6, 8.4e9),
    "v2-m": (54.1e6, 24.7e9),
    "v2-l": (119.5e6, 56.3e9),
}


def variant_key(name: str) -> str:
    """Canonical key of a variant name: "B0", "efficientnet-b0" -> "b0"; "EfficientNet-Lite0"
    -> "lite0"; "V2S", "efficientnetv2-s", "v2-s" -> "v2-s". Unknown names raise."""
    key = str(name).lower().removeprefix("efficientnet").removeprefix("-")
    if key.startswith("v2") and not key.startswith("v2-"):
        key = "v2-" + key[2:]
    if key not in VARIANTS and key not in LITE_VARIANTS and key not in V2_VARIANTS:
        valid = ", ".join([*VARIANTS, *LITE_VARIANTS, *V2_VARIANTS])
        raise ValueError(f"unknown variant {name!r}; valid variants: {valid}")
    return key


def is_v2(name: str | None) -> bool:
    """Whether `name` is an EfficientNetV2 variant."""
    return name is not None and variant_key(name) in V2_VARIANTS


def get_variant(name: str) -> ScalingParams:
    """Returns the published scaling of `name` ("b0" ... "b7", "lite0" ... "lite4",
    "v2-b0" ... "v2-l", any case)."""
    key = variant_key(name)
    return {**VARIANTS, **LITE_VARIANTS, **V2_VARIANTS}[key]


def round_filters(
    filters: int, width: float, divisor: int = DEPTH_DIVISOR, *, limit_shrink: bool = True
) -> int:
    """Scales a channel count by `width`, rounded to a multiple of `divisor`.

    Reference rule: round to the nearest multiple of `divisor`, never below `divisor`, and
    (V1 only) never more than 10% below the unrounded value (add one `divisor` if it would
    be). The V2 reference drops the 10% guard (google/automl efficientnetv2/effnetv2_model.py
    `round_filters`): pass `limit_shrink=False` for V2 models.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got width={width!r}")
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if limit_shrink and rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scales a stage's block count by `depth`, rounding up.

    Reference rule: ceil, so any depth above 1 adds at least one block to every stage. V2
    keeps the same ceil (google/automl efficientnetv2/effnetv2_model.py `round_repeats`).
    """
    if not depth > 0:
        raise ValueError(f"depth must be > 0, got depth={depth!r}")
    return int(math.ceil(depth * repeats))


def compound_scaling(
    alpha: float,
    beta: float,
    gamma: float,
    phi: float,
    base_resolution: int = 224,
    dropout: float = 0.2,
) -> ScalingParams:
    """Depth alpha^phi, width beta^phi and resolution gamma^phi * base (Section 3.3, eq. 3)."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {name}={value!r}")
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got phi={phi!r}")
    if base_resolution < MIN_RESOLUTION:
        raise ValueError(
            f"base_resolution must be >= {MIN_RESOLUTION}, got base_resolution={base_resolution!r}"
        )
    return ScalingParams(
        width=beta**phi,
        depth=alpha**phi,
        resolution=int(round(base_resolution * gamma**phi)),
        dropout=dropout,
        source="formula",
    )


def nominal_cost_ratio(alpha: float, beta: float, gamma: float) -> float:
    """FLOPs growth per unit of phi: alpha * beta^2 * gamma^2 (Section 3.3)."""
    return alpha * beta**2 * gamma**2


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One grid point: coefficients for phi=1 and the kind of scaling it represents.

    `kind` is "compound" for grid points, or "depth", "width", "resolution" for the
    single-dimension points of the same budget (the paper's Table 3 comparison).
    """

    alpha: float
    beta: float
    gamma: float
    kind: str = "compound"

    @property
    def nominal_cost(self) -> float:
        return nominal_cost_ratio(self.alpha, self.beta, self.gamma)

    @property
    def key(self) -> str:
        """A stable identifier, e.g. `a1.20_b1.10_g1.15`."""
        return f"a{self.alpha:.2f}_b{self.beta:.2f}_g{self.gamma:.2f}"


def grid_candidates(
    alpha_range: tuple[float, float] = (1.0, 2.0),
    beta_range: tuple[float, float] = (1.0, 1.5),
    gamma_range: tuple[float, float] = (1.0, 1.5),
    step: float = 0.05,
    target: float = 2.0,
    tolerance: float = 0.1,
    include_single_dimension: bool = False,
) -> tuple[Candidate, ...]:
    """Enumerates (alpha, beta, gamma) on a grid with |alpha*beta^2*gamma^2 - target| < tol.

    The order is deterministic (alpha, then beta, then gamma ascending), so every worker
    that enumerates the same settings sees the same list. The defaults are the public
    reproduction's grid (step 0.05, tolerance 0.1; about 108 points).
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got tolerance={tolerance!r}")
    if not target > 1:
        raise ValueError(f"target must be > 1 (2 doubles the FLOPs), got target={target!r}")
    points = [c for c in grid_box(alpha_range, beta_range, gamma_range, step)
              if abs(c.nominal_cost - target) < tolerance]  # fmt: skip
    if include_single_dimension:
        root = round(math.sqrt(target), 4)
        points += [
            Candidate(round(target, 4), 1.0, 1.0, "depth"),
            Candidate(1.0, root, 1.0, "width"),
            Candidate(1.0, 1.0, root, "resolution"),
        ]
    return tuple(points)


def grid_box(
    alpha_range: tuple[float, float],
    beta_range: tuple[float, float],
    gamma_range: tuple[float, float],
    step: float,
) -> tuple[Candidate, ...]:
    """Every (alpha, beta, gamma) of the box on a grid of `step`, before any cost filter.

    Deterministic order: alpha, then beta, then gamma ascending.
    """
    if not step > 0:
        raise ValueError(f"step must be > 0, got step={step!r}")
    axes = [_axis(name, bounds, step) for name, bounds in
            (("alpha", alpha_range), ("beta", beta_range), ("gamma", gamma_range))]
    return tuple(Candidate(a, b, g) for a in axes[0] for b in axes[1] for g in axes[2])


def _axis(name: str, bounds: tuple[float, float], step: float) -> list[float]:
    low, high = bounds
    if not 0 < low <= high:
        raise ValueError(f"{name} range must satisfy 0 < low <= high, got {bounds!r}")
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    decimals = max(0, -math.floor(math.log10(step))) + 2
    return [round(low + i * step, decimals) for i in range(count)]


@dataclasses.dataclass(frozen=True)
class PlannedBlock:
    """One MBConv block after width and depth scaling, with its keras.applications name."""

    name: str
    stage: int
    args: BlockArgs
    drop_rate: float


def plan_blocks(
    blocks: Sequence[BlockArgs],
    width: float,
    depth: float,
    drop_connect_rate: float = 0.2,
    *,
    limit_shrink: bool = True,
    stem_channels: int | None = None,
) -> tuple[PlannedBlock, ...]:
    """Expands stages into individual blocks, scaled by `width` and `depth`.

    Reference rules: channels go through `round_filters`, repeats through `round_repeats`;
    only the first block of a stage strides and changes the channel count; the stochastic
    depth rate grows linearly with the block index, `drop_connect_rate * index / total`.
    Names follow keras.applications: `block<stage><letter>_`, letters a, b, c, ...
    `limit_shrink` is `round_filters`' V1 guard (False for V2). The V2 reference divides by
    the scaled block count too (automl `EffNetV2Model.call`: idx / len(self._blocks));
    keras.applications' V2 divides by the unscaled count, which only changes training.

    `stem_channels` given means a fixed (unscaled) stem and head, the Lite rule
    (`fix_head_stem` in the reference's efficientnet_model.py): the first and last stages then
    keep their repeats, and the first block takes the stem's channels as its input.
    """
    if not 0.0 <= drop_connect_rate < 1.0:
        raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate!r}")
    last = len(blocks)

    def repeats(stage: int, args: BlockArgs) -> int:
        fixed = stem_channels is not None and stage in (1, last)
        return args.repeats if fixed else round_repeats(args.repeats, depth)

    total = sum(repeats(stage, b) for stage, b in enumerate(blocks, start=1))
    planned: list[PlannedBlock] = []
    for stage, stage_args in enumerate(blocks, start=1):
        filters_in = round_filters(stage_args.filters_in, width, limit_shrink=limit_shrink)
        if stage == 1 and stem_channels is not None:
            filters_in = stem_channels
        filters_out = round_filters(stage_args.filters_out, width, limit_shrink=limit_shrink)
        # Two distinct blocks a stage (frozen, so shared): a deep member, e.g. phi=7 of a
        # depth-heavy grid point, has 10^5 blocks, and one `replace` each took seconds.
        first = dataclasses.replace(stage_args, repeats=1, filters_out=filters_out,
                                    filters_in=filters_in)
        rest = dataclasses.replace(first, filters_in=filters_out, strides=1)
        for j in range(repeats(stage, stage_args)):
            args = first if j == 0 else rest
            name = f"block{stage}{_block_letters(j)}_"
            drop_rate = drop_connect_rate * len(planned) / total
            planned.append(PlannedBlock(name, stage, args, drop_rate))
    return tuple(planned)


def _block_letters(index: int) -> str:
    # keras.applications uses chr(97 + j); stages never exceed 26 blocks up to B7, but a
    # custom depth may, so continue as aa, ab, ... rather than run into punctuation.
    if index < 26:
        return chr(97 + index)
    return _block_letters(index // 26 - 1) + chr(97 + index % 26)
