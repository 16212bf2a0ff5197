"""The architecture search space: MnasNet's factorized hierarchical space as block strings.

MnasNet (Tan et al. 2019, Section 4.1) splits the network into stages and searches each
stage's operations independently: kernel size, expansion ratio, squeeze-excitation,
number of blocks and output channels, while strides, stem and head stay fixed. EfficientNet-B0
came out of that search. Here the stages are those of a baseline (B0's seven by default);
per stage the choices are kernel {3, 5}, expansion {1, 4, 6}, SE {0, 0.25}, repeats
{base-1, base, base+1} (at least 1) and output channels x {0.75, 1.0, 1.25} rounded to a
multiple of 8 (the reference's `round_filters`). A config narrows or widens each list.
`fused: [false, true]` adds EfficientNetV2's choice per stage between MBConv and
Fused-MBConv (Tan & Le 2021, Section 3.2: the 1x1 expansion and the depthwise conv replaced by
one regular conv, faster in early stages); by default each stage keeps the baseline's type.

A sampled architecture is an Optuna parameter dict (`stage3_kernel: 5`, ...) that `decode`
turns into a tuple of block strings: the builder, cost counter, grid and scaler take it
unchanged. Stage i's input channels are stage i-1's output (the stem's for stage 1).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution

from efficientnet_search import config as config_lib
from efficientnet_search.arch.blocks import (
    B0_BLOCK_STRINGS,
    STEM_FILTERS,
    BlockArgs,
    decode_blocks,
    encode_block_string,
)
from efficientnet_search.arch.scaling import round_filters

CHOICES = ("kernel", "expand", "se", "repeats", "filters", "fused")


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """The per-stage choices (the same lists for every stage of the baseline).

    Attributes:
      kernels: depthwise kernel sizes (odd).
      expansions: inverted-bottleneck expansion ratios.
      se_ratios: squeeze-excitation ratios (0: none).
      repeat_offsets: added to each stage's baseline repeats; results below 1 are dropped.
      filter_multipliers: of each stage's baseline output channels, rounded to 8.
      fused: the conv types to choose from per stage (True: Fused-MBConv); empty (the
        default) keeps each stage's type from the baseline.
    """

    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (1, 4, 6)
    se_ratios: tuple[float, ...] = (0.0, 0.25)
    repeat_offsets: tuple[int, ...] = (-1, 0, 1)
    filter_multipliers: tuple[float, ...] = (0.75, 1.0, 1.25)
    fused: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        for name in ("kernels", "expansions", "se_ratios", "repeat_offsets",
                     "filter_multipliers"):  # fmt: skip
            if not getattr(self, name):
                raise config_lib.ConfigError(
                    f"space.{name} is empty; give at least one value, e.g. "
                    f"{list(getattr(SpaceConfig(), name))}")
        bad = {
            "fused": [f for f in self.fused if not isinstance(f, bool)],
            "kernels": [k for k in self.kernels if k < 1 or k % 2 == 0],
            "expansions": [e for e in self.expansions if e < 1],
            "se_ratios": [s for s in self.se_ratios if not 0 <= s <= 1],
            "filter_multipliers": [m for m in self.filter_multipliers if not m > 0],
        }
        accepted = {"fused": "true or false",
                    "kernels": "odd integers >= 1", "expansions": "integers >= 1",
                    "se_ratios": "ratios in [0, 1]", "filter_multipliers": "numbers > 0"}
        for name, values in bad.items():
            if values:
                raise config_lib.ConfigError(
                    f"space.{name} holds {values}; accepted: {accepted[name]}")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The choices of every stage of one baseline, as Optuna distributions."""

    base: tuple[BlockArgs, ...]
    options: tuple[Mapping[str, tuple], ...]  # per stage: choice name -> allowed values

    @property
    def distributions(self) -> dict[str, CategoricalDistribution]:
        return {param_name(i, name): CategoricalDistribution(values)
                for i, stage in enumerate(self.options) for name, values in stage.items()}

    @property
    def size(self) -> int:
        """Number of distinct block lists in the space."""
        total = 1
        for stage in self.options:
            for values in stage.values():
                total *= len(values)
        return total

    def base_params(self) -> dict[str, Any]:
        """The baseline itself as parameters (where each of its values is a choice)."""
        params = {}
        for i, block in enumerate(self.base):
            own = {"kernel": block.kernel_size, "expand": block.expand_ratio,
                   "se": block.se_ratio, "repeats": block.repeats,
                   "filters": block.filters_out, "fused": block.fused}  # fmt: skip
            for name, value in own.items():
                allowed = self.options[i][name]
                params[param_name(i, name)] = value if value in allowed else allowed[0]
        return params

    def extreme_params(self, pick=min) -> dict[str, Any]:
        """Every choice at its smallest (`min`, the cheapest network) or largest (`max`)."""
        return {param_name(i, name): pick(values)
                for i, stage in enumerate(self.options) for name, values in stage.items()}

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """One architecture drawn uniformly, choice by choice."""
        return {name: rng.choice(d.choices) for name, d in self.distributions.items()}

    def mutate(self, params: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        """A copy of `params` with one choice of one stage changed (Real et al. 2019, the
        mutation of regularized evolution); unchanged when no choice has an alternative."""
        child = dict(params)
        open_ = [name for name, d in self.distributions.items() if len(d.choices) > 1]
        if open_:
            name = rng.choice(open_)
            child[name] = rng.choice([v for v in self.distributions[name].choices
                                      if v != params[name]])  # fmt: skip
        return child

    def decode(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The block strings of an architecture given as parameters."""
        blocks, filters_in = [], self.base[0].filters_in
        for i, base in enumerate(self.base):
            args = BlockArgs(
                repeats=int(params[param_name(i, "repeats")]),
                kernel_size=int(params[param_name(i, "kernel")]),
                strides=base.strides,
                expand_ratio=int(params[param_name(i, "expand")]),
                filters_in=filters_in,
                filters_out=int(params[param_name(i, "filters")]),
                se_ratio=float(params[param_name(i, "se")]),
                id_skip=base.id_skip,
                fused=bool(params[param_name(i, "fused")]),
                stride_digits=base.stride_digits,
            )
            blocks.append(encode_block_string(args))
            filters_in = args.filters_out
        return tuple(blocks)


def param_name(stage: int, choice: str) -> str:
    """The Optuna parameter of one stage's choice, stages counted from 1: `stage3_kernel`."""
    return f"stage{stage + 1}_{choice}"


def build_space(config: SpaceConfig, blocks: Sequence[str] = B0_BLOCK_STRINGS) -> SearchSpace:
    """The choices of every stage of baseline `blocks` under `config`.

    Raises:
      ConfigError: when a stage is left without a repeats value of at least 1.
    """
    base = decode_blocks(blocks)
    if base[0].filters_in != STEM_FILTERS:
        raise config_lib.ConfigError(
            f"the baseline's first block takes {base[0].filters_in} channels but the stem "
            f"gives {STEM_FILTERS}; start the block list with i{STEM_FILTERS}")
    options = []
    for i, block in enumerate(base):
        repeats = tuple(sorted({block.repeats + d for d in config.repeat_offsets
                                if block.repeats + d >= 1}))  # fmt: skip
        if not repeats:
            raise config_lib.ConfigError(
                f"space.repeat_offsets {list(config.repeat_offsets)} leave stage {i + 1} "
                f"(baseline repeats {block.repeats}) no repeats >= 1; include an offset >= "
                f"{1 - block.repeats}")
        filters = tuple(sorted({round_filters(block.filters_out, m)
                                for m in config.filter_multipliers}))  # fmt: skip
        options.append({
            "kernel": tuple(sorted(set(config.kernels))),
            "expand": tuple(sorted(set(config.expansions))),
            "se": tuple(sorted({float(s) for s in config.se_ratios})),
            "repeats": repeats,
            "filters": filters,
            "fused": tuple(sorted(set(config.fused))) if config.fused else (block.fused,),
        })  # fmt: skip
    return SearchSpace(base, tuple(options))


def canonical_key(blocks: Sequence[str]) -> str:
    """One string per architecture: its block strings, re-encoded, joined by spaces."""
    return " ".join(encode_block_string(b) for b in decode_blocks(blocks))
