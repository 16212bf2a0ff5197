"""Measured cost of grid candidates, on the proxy as built, relative to the proxy baseline.

The nominal budget alpha * beta^2 * gamma^2 is what the paper constrains (Section 3.3), but
the networks really trained differ from it: channels round to multiples of 8, repeats round up
and resolutions are integers. On the quick proxy (width 0.25, depth 0.25, 32 px) candidates
of nominal budget 2 measured 1.30x to 2.74x the baseline's multiply-adds, and accuracy
followed the measured cost. So candidates are measured, by one of:

* `macs`: multiply-adds (the paper's FLOPs; arch.cost);
* `activations`: output elements of every convolution (Dollar et al. 2021; arch.cost);
* `latency`: median inference time of one batch on this machine (training.latency);
* `nominal`: alpha * beta^2 * gamma^2, unmeasured (the paper's rule, for comparison).

The proxy is measured without its classifier, whose size depends on the data's class count,
so that every worker computes the same plan before loading any data. `CostMeter` caches by
built architecture: many coefficients build the same network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from absl import logging

from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.arch.model import ModelSpec
from efficientnet_search.search.proxy.config import ProxyConfig
from efficientnet_search.search.proxy.latency import LatencyConfig, time_spec

if TYPE_CHECKING:  # training.latency loads TensorFlow; it is imported where a network is timed
    pass

COSTS = ("nominal", "macs", "activations", "latency")
# What every candidate records, whatever cost admitted it.
MEASURES = ("macs", "activations", "latency")


def signature(spec: ModelSpec) -> tuple:
    """What makes two specs the same network (resolution, blocks, stem and head)."""
    return (spec.scaling.resolution, tuple(b.args for b in spec.planned_blocks()),
            spec.stem_channels, spec.head_channels)  # fmt: skip


def check_cost(cost: str) -> str:
    """Returns `cost` when it is one of COSTS, else raises naming it and the accepted ones."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; candidates.cost accepts {' | '.join(COSTS)}")
    return cost


class CostMeter:
    """Measures candidates of one proxy against its baseline (phi=0), cached by architecture.

    Latency is measured only when asked for (a cost of `latency`, or `record`), because it
    builds and runs each network; the baseline's is measured first, under the same settings.
    """

    def __init__(self, proxy: ProxyConfig, latency: LatencyConfig | None = None,
                 batch_size: int = 128) -> None:
        self.proxy = proxy
        self.latency = latency or LatencyConfig()
        self.batch_size = batch_size  # the training batch (data.batch_size): latency's default
        self._cache: dict[tuple, dict[str, Any]] = {}
        self.base = self.measure(1.0, 1.0, 1.0)

    def spec(self, alpha: float, beta: float, gamma: float) -> ModelSpec:
        """The candidate's proxy without classifier."""
        spec = self.proxy.spec(alpha, beta, gamma, num_classes=1)
        return dataclasses.replace(spec, include_top=False)

    def measure(self, alpha: float, beta: float, gamma: float,
                with_latency: bool = False) -> dict[str, Any]:
        """Absolute costs: macs, activations, params (and latency_ms, its spread, device)."""
        spec = self.spec(alpha, beta, gamma)
        entry = self._cache.setdefault(signature(spec), {})
        if not entry:
            cost = spec_cost(spec)
            entry.update(macs=cost.macs, activations=cost.activations, params=cost.params)
        if with_latency and "latency" not in entry:
            entry.update(self._latency(spec))
        return entry

    def ratio(self, alpha: float, beta: float, gamma: float, cost: str) -> float:
        """The candidate's cost over the baseline's, by `cost` (one of COSTS)."""
        if check_cost(cost) == "nominal":
            return alpha * beta**2 * gamma**2
        if cost == "latency" and "latency" not in self.base:
            self.measure(1.0, 1.0, 1.0, with_latency=True)
        entry = self.measure(alpha, beta, gamma, with_latency=cost == "latency")
        return entry[cost] / self.base[cost]

    def record(self, alpha: float, beta: float, gamma: float, cost: str) -> dict[str, Any]:
        """Every measure of a candidate as trial attributes: `<measure>_ratio` for each of
        MEASURES (latency when measured), absolute activations and latency, and the ratio
        by the admitting `cost` as `cost_ratio`."""
        latency = cost == "latency" or self.latency.record
        if latency:
            self.measure(1.0, 1.0, 1.0, with_latency=True)
        entry = self.measure(alpha, beta, gamma, with_latency=latency)
        attrs: dict[str, Any] = {"cost": cost, "activations": entry["activations"]}
        for name in MEASURES:
            if name in entry:
                attrs[f"{name}_ratio"] = entry[name] / self.base[name]
        if "latency" in entry:
            attrs.update(latency_ms=entry["latency"], latency_spread=entry["latency_spread"],
                         latency_device=entry["latency_device"])  # fmt: skip
        attrs["cost_ratio"] = self.ratio(alpha, beta, gamma, cost)
        return attrs

    def _latency(self, spec: ModelSpec) -> dict[str, Any]:
        measured = time_spec(self.latency, spec, self.batch_size)
        logging.debug("latency of %s px: %.3f ms", spec.scaling.resolution, measured.median_ms)
        return {"latency": measured.median_ms, "latency_spread": measured.spread,
                "latency_device": measured.device}  # fmt: skip


# ------------------------------------------------------------------ single-dimension points
DIMENSIONS = ("depth", "width", "resolution")
AXIS_STEP = 0.01  # depth and width multipliers are searched in steps of 0.01
AXIS_MAX = {"depth": 8.0, "width": 4.0, "resolution": 4.0}


@dataclasses.dataclass(frozen=True)
class Solved:
    """The single-dimension multiplier whose built proxy comes closest to the target."""

    dimension: str
    multiplier: float
    ratio: float
    reachable: bool

    @property
    def coefficients(self) -> tuple[float, float, float]:
        index = DIMENSIONS.index(self.dimension)
        return tuple(self.multiplier if i == index else 1.0 for i in range(3))  # type: ignore


def axis_values(proxy: ProxyConfig, dimension: str) -> list[float]:
    """The fine 1-D range of one dimension: multipliers 1 < m <= AXIS_MAX (resolution: every
    integer pixel count, as gamma = pixels / base)."""
    if dimension == "resolution":
        base = proxy.base_resolution
        return [round(px / base, 6) for px in range(base + 1, int(base * AXIS_MAX[dimension]) + 1)]
    count = round((AXIS_MAX[dimension] - 1.0) / AXIS_STEP)
    return [round(1.0 + i * AXIS_STEP, 4) for i in range(1, count + 1)]


def solve_single(meter: CostMeter, dimension: str, cost: str, target: float,
                 tolerance: float) -> Solved:
    """Finds the `dimension`-only multiplier whose measured ratio is closest to `target`.

    The range is first reduced to distinct networks (the smallest multiplier of each); the
    cost grows with each dimension, so bisection finds the crossing with a few measurements
    (latency builds and times each one it visits).
    """
    index = DIMENSIONS.index(dimension)

    def coefficients(m: float) -> tuple[float, float, float]:
        return tuple(m if i == index else 1.0 for i in range(3))  # type: ignore[return-value]

    distinct: dict[tuple, float] = {}
    for m in axis_values(meter.proxy, dimension):
        distinct.setdefault(signature(meter.spec(*coefficients(m))), m)
    values = list(distinct.values())

    def ratio(i: int) -> float:
        return meter.ratio(*coefficients(values[i]), cost)

    best = _closest(len(values), ratio, target)
    found = ratio(best)
    return Solved(dimension, values[best], found, abs(found - target) <= tolerance)


def solve_exponent(meter: CostMeter, coefficients: tuple[float, float, float], cost: str,
                   target: float, phi: int) -> tuple[float, float]:
    """The exponent t near `phi` whose member (alpha^t, beta^t, gamma^t) has the measured
    ratio closest to `target`; returns (t, ratio). Scaling a family by its own coefficients
    and matching the measured cost puts members of different families at one cost."""
    alpha, beta, gamma = coefficients
    distinct: dict[tuple, float] = {}
    for i in range(round(phi * 50), round(phi * 200) + 1):  # t in [phi/2, 2 phi], steps 0.01
        t = i / 100
        distinct.setdefault(signature(meter.spec(alpha**t, beta**t, gamma**t)), t)
    values = list(distinct.values())

    def ratio(i: int) -> float:
        t = values[i]
        return meter.ratio(alpha**t, beta**t, gamma**t, cost)

    best = _closest(len(values), ratio, target)
    return values[best], ratio(best)


def _closest(count: int, ratio: Callable[[int], float], target: float) -> int:
    """Index whose (non-decreasing) ratio is closest to target, by bisection."""
    low, high = 0, count - 1
    if ratio(high) <= target:
        return high
    while low < high:  # first index with ratio >= target
        mid = (low + high) // 2
        low, high = (mid + 1, high) if ratio(mid) < target else (low, mid)
    if low > 0 and abs(ratio(low - 1) - target) <= abs(ratio(low) - target):
        return low - 1
    return low


def suggest_base(proxy: ProxyConfig, dimension: str, cost: str, target: float,
                 tolerance: float) -> str:
    """A base setting of the proxy at which the `dimension`-only point reaches the target,
    or a sentence saying none was found (searched with multiply-adds or activations only)."""
    field, values = {
        "width": ("base_width", [round(proxy.base_width + 0.05 * k, 2) for k in range(1, 21)]),
        "depth": ("base_depth", [round(proxy.base_depth + 0.05 * k, 2) for k in range(1, 21)]),
        "resolution": ("base_resolution", [proxy.base_resolution + 8 * k for k in range(1, 13)]),
    }[dimension]
    measure = "macs" if cost in ("latency", "nominal") else cost
    for value in values:
        trial_meter = CostMeter(dataclasses.replace(proxy, **{field: value}))
        solved = solve_single(trial_meter, dimension, measure, target, tolerance)
        if solved.reachable:
            return (f"proxy.{field}={value} makes it reachable ({dimension} x"
                    f"{solved.multiplier:g}: {solved.ratio:.3f} by {measure})")
    return f"no proxy.{field} up to {values[-1]} makes it reachable; raise candidates.tolerance"


def unreachable_note(solved: Solved, proxy: ProxyConfig, cost: str, target: float,
                     tolerance: float) -> str:
    """One sentence for the log and the report on a single-dimension point off the target."""
    return (
        f"{solved.dimension}-only cannot reach measured {cost} ratio {target:g} +- "
        f"{tolerance:g} at this proxy (closest: x{solved.multiplier:g} gives {solved.ratio:.3f};"
        f" {_WHY[solved.dimension]}): trained anyway, as the closest; "
        f"{suggest_base(proxy, solved.dimension, cost, target, tolerance)}"
    )


_WHY = {
    "depth": "repeats round up, so the cost grows in steps of one block per stage",
    "width": "channels round to multiples of 8, so the cost grows in steps",
    "resolution": "resolutions are integers and every stride rounds up, so the cost jumps",
}


def closest_miss(ratios: Sequence[tuple[str, float]], target: float) -> tuple[str, float]:
    """The (key, ratio) nearest the target, for the message when none is admitted."""
    return min(ratios, key=lambda item: (abs(item[1] - target), item[0]))
