"""The scaling grid as an elastic space: every phi=1 candidate a subnet of one supernet.

A grid candidate (alpha, beta, gamma) is the proxy baseline at depth `base_depth * alpha`,
width `base_width * beta` and side `round(base_resolution * gamma)` (`ProxyConfig.spec`, the
network the grid trains). Scaled with B0's rounding, every candidate nests in the candidate
of the largest coefficients, as Once-for-All's subnets do (Cai et al. 2020, Section 3.1):

* depth: a stage of the candidate keeps the first k blocks of the largest's stage,
* width: every stage's channels, the stem's and the head's are channel prefixes of the
  largest's (the supernet's last choice row, `oneshot.elastic.STEM`/`HEAD`),
* resolution: the input side, one of `resolutions`.

`ScalingSpace` is an `oneshot.elastic.ElasticSpace` whose subnets are grid points, so the
one-shot supernet, its sandwich trainer, its scorer and `extract` take it unchanged. A
subnet's "blocks" are the scaling written as two tokens (`a1.2`, `b1.1`): with the proxy's
baseline and the resolution they fix the network (`spec`).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search import config as config_lib
from efficientnet_search.arch.blocks import decode_blocks
from efficientnet_search.arch.model import ModelSpec
from efficientnet_search.arch.scaling import Candidate
from efficientnet_search.search.nas.oneshot.elastic import (
    RESOLUTION,
    ElasticSpace,
    with_largest_slots,
)
from efficientnet_search.search.proxy.config import ProxyConfig

Point = tuple[float, float, float]  # (alpha, beta, gamma)
# How a training step draws its random subnets: a grid point uniformly, or a resolution
# uniformly and then a point of that side (Once-for-All draws the resolution uniformly from
# its elastic range, Cai et al. 2020, Section 3.2; a cost band holds mostly base-side points).
SAMPLE_BY = ("point", "resolution")


@dataclasses.dataclass(frozen=True)
class ScalingSpace(ElasticSpace):
    """The grid's candidates as subnets of the largest one (see the module docstring).

    Attributes (beside ElasticSpace's; its `space` is unused here):
      proxy: the grid's proxy (baseline, base width, depth and resolution).
      points: the grid points a training step draws its random subnets from.
      low, high: the sandwich's smallest and largest (alpha, beta, gamma): the elastic range.
      sample_by: how `sample` draws (SAMPLE_BY).
    """

    proxy: ProxyConfig
    points: tuple[Point, ...]
    low: Point
    high: Point
    sample_by: str = "point"

    def params(self, point: Point) -> dict[str, Any]:
        """The subnet of grid point `point` (its resolution as the proxy rounds it)."""
        alpha, beta, gamma = point
        side = self.proxy.spec(alpha, beta, gamma, self.num_classes).scaling.resolution
        return {"alpha": alpha, "beta": beta, "gamma": gamma, RESOLUTION: side}

    def blocks(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return f"a{params['alpha']:g}", f"b{params['beta']:g}"

    def spec(self, blocks: Sequence[str], resolution: int) -> ModelSpec:
        """The grid's network of scaling tokens `blocks` at `resolution` (stochastic depth
        off, as in every supernet subnet)."""
        alpha, beta = (float(token[1:]) for token in blocks)
        spec = self.proxy.spec(alpha, beta, 1.0, self.num_classes)
        return dataclasses.replace(spec, drop_connect_rate=0.0, scaling=dataclasses.replace(
            spec.scaling, resolution=int(resolution)))  # fmt: skip

    def largest(self) -> dict[str, Any]:
        return self.params(self.high)

    def smallest(self) -> dict[str, Any]:
        return self.params(self.low)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A grid point (the networks the supernet will be asked to rank) drawn uniformly,
        or, with `sample_by` "resolution", a point of a side drawn uniformly."""
        if self.sample_by == "resolution":
            return self.params(rng.choice(rng.choice(self._by_side)))
        return self.params(rng.choice(self.points))

    @functools.cached_property
    def _by_side(self) -> tuple[tuple[Point, ...], ...]:
        """The points grouped by their side, sides ascending."""
        groups: dict[int, list[Point]] = {}
        for point in self.points:
            groups.setdefault(self.params(point)[RESOLUTION], []).append(point)
        return tuple(tuple(groups[side]) for side in sorted(groups))

    def mutate(self, params: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        raise NotImplementedError("the scaling grid is scored exhaustively, not evolved")


def build_scaling_space(proxy: ProxyConfig, points: Sequence[Point], *, high: Point | None,
                        num_classes: int, sample_by: str = "point") -> ScalingSpace:
    """The supernet's space for grid points `points`, its largest subnet at `high`
    (default: the largest alpha, beta and gamma among `points`), drawing random subnets
    by `sample_by` (SAMPLE_BY).

    Resolutions: the sides of the points that lie within the elastic range, and its ends.
    """
    low = tuple(min(p[i] for p in points) for i in range(3))
    high = tuple(high) if high else tuple(max(p[i] for p in points) for i in range(3))
    kernels = tuple(sorted({b.kernel_size for b in decode_blocks(proxy.blocks)}))
    space = ScalingSpace(None, proxy.base_width, proxy.base_depth, (), num_classes,
                         proxy.dropout, kernels, (), 0, 0, proxy, tuple(points), low,
                         high, sample_by)  # fmt: skip
    side = {p: space.params(p)[RESOLUTION] for p in (*points, low, high)}
    sides = sorted({s for s in side.values() if side[low] <= s <= side[high]})
    space = dataclasses.replace(space, resolutions=tuple(sides))
    return with_largest_slots(space, space.spec(space.blocks(space.largest()), side[high]))


def check_covered(space: ScalingSpace, candidates: Sequence[Candidate]) -> None:
    """Raises ConfigError naming the first candidate the supernet does not hold, and the fix.

    A candidate is held when its network nests in the largest subnet (blocks, channels,
    stem and head, resolution): `ElasticSpace.encode` accepts it.
    """
    for c in candidates:
        params = space.params((c.alpha, c.beta, c.gamma))
        try:
            space.encode(space.blocks(params), params[RESOLUTION])
        except ValueError:
            over = [name for name, value, top in zip(("alpha", "beta", "gamma"),
                                                     (c.alpha, c.beta, c.gamma), space.high,
                                                     strict=True) if value > top]  # fmt: skip
            need = [max(v, t) for v, t in zip((c.alpha, c.beta, c.gamma), space.high,
                                              strict=True)]  # fmt: skip
            raise config_lib.ConfigError(
                f"grid candidate {c.key} ({c.kind}) is outside the supernet's elastic range "
                f"(largest subnet alpha {space.high[0]:g}, beta {space.high[1]:g}, gamma "
                f"{space.high[2]:g}; {', '.join(over) or 'its rounding'} too large): set "
                f"supernet.largest to at least [{', '.join(f'{v:g}' for v in need)}] (or "
                "null: the grid's largest), or narrow the candidates' ranges") from None
