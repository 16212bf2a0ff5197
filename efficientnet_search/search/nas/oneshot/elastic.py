"""The elastic space of a supernet: the NAS space at the proxy's scale, as slots and choices.

A supernet holds the largest network of the NAS space (`search/nas/space.py`) at the proxy's
base width and depth; every other network of the space is a sub-network of it (Once-for-All,
Cai et al. 2020, Section 3.1; BigNAS, Yu et al. 2020):

* depth: a stage keeps its first k blocks (OFA's "first k layers"),
* kernel: a smaller depthwise kernel is the centre of the largest,
* expansion and output width: the first channels of the largest (channel prefixes),
* squeeze-excitation: on or off per stage, its bottleneck a channel prefix too,
* resolution: the input side, one of `resolutions`.

A subnet is written as the NAS space writes architectures (Optuna-style parameters, decoded
to block strings) plus a resolution. `encode` turns it into the integer vector that the
supernet's single traced step reads, computed from the normal planner (`ModelSpec.
planned_blocks`), so the supernet runs exactly the blocks `build_model` would build.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from efficientnet_search import config as config_lib
from efficientnet_search.arch.blocks import decode_blocks, encode_block_string
from efficientnet_search.arch.model import ModelSpec, resolve_spec
from efficientnet_search.arch.scaling import MIN_RESOLUTION
from efficientnet_search.search.nas.space import SearchSpace, SpaceConfig, build_space

RESOLUTION = "resolution"
# Per slot, in this order: block present (depth), index of the kernel in `kernels`, whether
# the block has a 1x1 expansion (expand ratio > 1), input, expanded, SE bottleneck (0: no SE)
# and output channels, identity skip on.
FIELDS = ("active", "kernel", "expand", "cin", "cexp", "cse", "cout", "skip")
# After the slots' rows, one row of the network's own widths (channel prefixes too): the
# stem's output channels and the head's, in its first two fields (the rest 0). A scaled
# network (search/supergrid/) changes both; a NAS subnet keeps the baseline's.
STEM, HEAD = 0, 1


@dataclasses.dataclass(frozen=True)
class Slot:
    """One block position of the supernet, with the largest sizes any subnet gives it."""

    stage: int
    index: int
    strides: int
    cin: int
    cexp: int
    cse: int
    cout: int


@dataclasses.dataclass(frozen=True)
class ElasticSpace:
    """The NAS space at the proxy's width and depth, with its supernet's slots.

    Attributes:
      space: the per-stage choices (block strings of the baseline's stages).
      width, depth: the proxy's base width and depth coefficients.
      resolutions: input sides to choose from (ascending).
      num_classes, dropout: of the classifier.
      kernels: the depthwise kernels (ascending; the largest is the supernet's).
      slots: every block position, stage by stage.
      stem, head: the fixed stem and head channels.
    """

    space: SearchSpace
    width: float
    depth: float
    resolutions: tuple[int, ...]
    num_classes: int
    dropout: float
    kernels: tuple[int, ...]
    slots: tuple[Slot, ...]
    stem: int
    head: int

    def spec(self, blocks: Sequence[str], resolution: int) -> ModelSpec:
        """The stand-alone network of a subnet (what `build_model` builds and extract fills)."""
        return resolve_spec(width=self.width, depth=self.depth, resolution=int(resolution),
                            dropout=self.dropout, blocks=tuple(blocks),
                            num_classes=self.num_classes, drop_connect_rate=0.0)  # fmt: skip

    def blocks(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The block strings of a subnet given as parameters."""
        return self.space.decode({k: v for k, v in params.items() if k != RESOLUTION})

    def largest(self) -> dict[str, Any]:
        return {**self.space.extreme_params(max), RESOLUTION: max(self.resolutions)}

    def smallest(self) -> dict[str, Any]:
        return {**self.space.extreme_params(min), RESOLUTION: min(self.resolutions)}

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A subnet drawn uniformly, choice by choice (SPOS, Guo et al. 2019)."""
        return {**self.space.sample(rng), RESOLUTION: rng.choice(self.resolutions)}

    def mutate(self, params: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        """A copy with one choice changed, the resolution being one choice among the others
        (Real et al. 2019's mutation)."""
        names = len(self.space.distributions) + (len(self.resolutions) > 1)
        if len(self.resolutions) > 1 and rng.randrange(names) == 0:
            others = [r for r in self.resolutions if r != params[RESOLUTION]]
            return {**params, RESOLUTION: rng.choice(others)}
        return {**self.space.mutate(params, rng), RESOLUTION: params[RESOLUTION]}

    @property
    def choice_shape(self) -> tuple[int, int]:
        """The shape of `encode`'s rows: one per slot, then the network row (STEM, HEAD)."""
        return len(self.slots) + 1, len(FIELDS)

    def encode(self, blocks: Sequence[str], resolution: int) -> np.ndarray:
        """The subnet as int32 `choice_shape` for the supernet's step.

        Raises:
          ValueError: the subnet is not inside this supernet (a larger kernel, more blocks or
            channels than the largest network has, another resolution), named.
        """
        if resolution not in self.resolutions:
            raise ValueError(f"resolution {resolution} is not one of the supernet's "
                             f"{list(self.resolutions)}; pick one of them")  # fmt: skip
        spec = self.spec(blocks, resolution)
        planned = spec.planned_blocks()
        by_stage: dict[int, list] = {}
        for block in planned:
            by_stage.setdefault(block.stage, []).append(block.args)
        rows = []
        for slot in self.slots:
            args = by_stage.get(slot.stage, [])
            if slot.index >= len(args):
                rows.append([0] * len(FIELDS))
                continue
            rows.append(self._row(slot, args[slot.index], blocks))
        if sum(len(v) for v in by_stage.values()) != sum(r[0] for r in rows):
            raise ValueError(f"subnet {list(blocks)} has more blocks than the supernet's "
                             "largest network; keep repeats within the space's choices")
        if spec.stem_channels > self.stem or spec.head_channels > self.head:
            raise ValueError(f"subnet {list(blocks)}: stem {spec.stem_channels} and head "
                             f"{spec.head_channels} channels exceed the supernet's {self.stem} "
                             f"and {self.head}; keep the width within the space")  # fmt: skip
        network = [0] * len(FIELDS)
        network[STEM], network[HEAD] = spec.stem_channels, spec.head_channels
        return np.asarray([*rows, network], dtype=np.int32)

    def _row(self, slot: Slot, args, blocks: Sequence[str]) -> list[int]:
        cexp = args.filters_in * args.expand_ratio
        cse = args.se_filters if args.has_se else 0
        if (args.kernel_size not in self.kernels or args.fused or args.strides != slot.strides
                or args.filters_in > slot.cin or cexp > slot.cexp or cse > slot.cse
                or args.filters_out > slot.cout):  # fmt: skip
            raise ValueError(
                f"subnet {list(blocks)}: block {slot.index + 1} of stage {slot.stage} "
                f"({encode_block_string(args)}) does not fit the supernet's largest ({slot}); "
                "keep every choice within the space")
        skip = args.id_skip and args.strides == 1 and args.filters_in == args.filters_out
        return [1, self.kernels.index(args.kernel_size), int(args.expand_ratio != 1),
                args.filters_in, cexp, cse, args.filters_out, int(skip)]


def build_elastic(space_config: SpaceConfig, baseline: Sequence[str], *, width: float,
                  depth: float, resolutions: Sequence[int], num_classes: int,
                  dropout: float) -> ElasticSpace:
    """The elastic space of `baseline` under `space_config` at the proxy's scale.

    Raises:
      ConfigError: a stage that cannot be made elastic (Fused-MBConv: its expansion is a
        regular kxk convolution, so neither the kernel nor the expansion nests as a centre or
        a channel prefix of one depthwise kernel), an even kernel (no centre), or no
        resolution.
    """
    fused = [encode_block_string(b) for b in decode_blocks(baseline) if b.fused]
    if fused or any(space_config.fused):
        raise config_lib.ConfigError(
            f"baseline stage(s) {fused or list(baseline)} are Fused-MBConv (c1) or "
            f"space.fused={list(space_config.fused)} asks for it; the supernet makes only "
            "MBConv stages elastic: drop c1 and space.fused")
    if not resolutions or any(int(r) < MIN_RESOLUTION for r in resolutions):
        raise config_lib.ConfigError(
            f"oneshot.resolutions must hold sides >= {MIN_RESOLUTION} (the builder's "
            f"minimum), got {list(resolutions)}")
    space = build_space(space_config, baseline)
    kernels = tuple(sorted(space_config.kernels))
    elastic = ElasticSpace(space, float(width), float(depth),
                           tuple(sorted({int(r) for r in resolutions})), int(num_classes),
                           float(dropout), kernels, (), 0, 0)  # fmt: skip
    largest = elastic.largest()
    return with_largest_slots(elastic, elastic.spec(elastic.blocks(largest), largest[RESOLUTION]))


_Space = TypeVar("_Space", bound="ElasticSpace")


def with_largest_slots(space: _Space, spec: ModelSpec) -> _Space:
    """`space` with the weight slots (and stem and head widths) of its largest network `spec`:
    every subnet's layers are prefixes of these, so they fix the supernet's variables."""
    slots, counters = [], {}
    for block in spec.planned_blocks():
        index = counters.get(block.stage, 0)
        counters[block.stage] = index + 1
        a = block.args
        slots.append(Slot(block.stage, index, a.strides, a.filters_in,
                          a.filters_in * a.expand_ratio, a.se_filters if a.has_se else 0,
                          a.filters_out))  # fmt: skip
    return dataclasses.replace(space, slots=tuple(slots), stem=spec.stem_channels,
                               head=spec.head_channels)
