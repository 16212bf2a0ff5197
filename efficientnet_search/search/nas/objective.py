"""Cost, reward and Pareto front of searched architectures (pure functions, no training).

MnasNet's soft constraint (Tan et al. 2019, Eq. 2 with alpha = beta = w): a model m scores
ACC(m) x [cost(m) / T]^w with w = -0.07, so a model twice the target's cost must be about
5% more accurate to score the same; EfficientNet searched B0 with cost = FLOPs and T = 400M
(Tan & Le 2019, Section 4.2). Costs are measured on the proxy that is trained.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search import config as config_lib
from efficientnet_search.arch.cost import COST_MEASURES, measure_cost
from efficientnet_search.arch.model import ModelSpec
from efficientnet_search.search.nas.config import NasConfig
from efficientnet_search.search.nas.space import SearchSpace, build_space
from efficientnet_search.search.proxy.config import ProxyConfig
from efficientnet_search.search.proxy.latency import LatencyConfig, time_spec


def proxy_spec(proxy: ProxyConfig, blocks: Sequence[str], num_classes: int) -> ModelSpec:
    """The proxy network that is trained for baseline `blocks` (the proxy's base scaling)."""
    return dataclasses.replace(proxy, blocks=tuple(blocks)).spec(1.0, 1.0, 1.0, num_classes)


# Costs count a 10-class classifier whatever the data (it is under 0.1% of a proxy's
# multiply-adds), so an architecture's cost, T and the reward follow from the config alone.
COST_CLASSES = 10


def cost_measures(proxy: ProxyConfig, blocks: Sequence[str],
                  latency: LatencyConfig | None = None) -> dict[str, Any]:
    """Every counted cost measure of the proxy of `blocks` (`arch.cost.COST_MEASURES`:
    multiply-adds and activations per image, parameters), and its latency on this machine
    (`latency` ms, `latency_device`) when `latency` says how to time it."""
    spec = proxy_spec(proxy, blocks, COST_CLASSES)
    measures: dict[str, Any] = {m: measure_cost(spec, m) for m in COST_MEASURES}
    if latency is not None:
        measures.update(_timed(proxy, tuple(blocks), latency))
    return measures


def latency_settings(config: NasConfig) -> LatencyConfig | None:
    """How this search times latency (batch filled in from the data), or None when it does
    not (latency is neither the cost nor recorded)."""
    settings = config.objective.latency
    if config.objective.cost != "latency" and not settings.record:
        return None
    return dataclasses.replace(settings, batch_size=settings.batch_size or config.data.batch_size)


@functools.lru_cache(maxsize=256)
def _timed(proxy: ProxyConfig, blocks: tuple[str, ...], settings: LatencyConfig) -> dict:
    """Latency of one architecture, timed once per process (T is needed several times)."""
    measured = time_spec(settings, proxy_spec(proxy, blocks, COST_CLASSES), settings.batch_size)
    return {"latency": measured.median_ms, "latency_device": measured.device}


def trained_key(spec: ModelSpec) -> str:
    """The network actually trained: resolution, stem, every planned block, head.

    Different baseline block lists can build one proxy (channels rounded to 8 at a small
    width, ceil of repeats at a small depth); those are trained once.
    """
    blocks = " ".join(
        f"k{b.args.kernel_size}s{b.args.strides}e{b.args.expand_ratio}i{b.args.filters_in}"
        f"o{b.args.filters_out}se{b.args.se_ratio:g}{'' if b.args.id_skip else 'n'}"
        for b in spec.planned_blocks())  # fmt: skip
    return f"r{spec.scaling.resolution} stem{spec.stem_channels} {blocks} head{spec.head_channels}"


def reward(accuracy: float, cost: float, target: float, exponent: float) -> float:
    """MnasNet's soft-constraint reward ACC x (cost / T)^w."""
    return accuracy * (cost / target) ** exponent


@dataclasses.dataclass(frozen=True)
class Objective:
    """The resolved objective of one search: its measure, T and w, and the space."""

    kind: str
    measure: str
    target: float
    exponent: float
    base_cost: float
    space: SearchSpace

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.kind == "reward" else ["maximize", "minimize"]

    def values(self, accuracy: float, cost: float) -> list[float]:
        """The study's objective values of one trained architecture."""
        if self.kind == "reward":
            return [reward(accuracy, cost, self.target, self.exponent)]
        return [accuracy, float(cost)]

    def score(self, accuracy: float, cost: float) -> float:
        """One number to rank by (the reward, for either kind)."""
        return reward(accuracy, cost, self.target, self.exponent)


def resolve_objective(config: NasConfig) -> Objective:
    """T from the B0-shaped proxy's measured cost; checks that the space can meet it.

    Raises:
      ConfigError: when even the cheapest architecture of the space costs more than T.
    """
    space = build_space(config.space, config.proxy.blocks)
    measure = config.objective.cost
    latency = latency_settings(config) if measure == "latency" else None
    base = cost_measures(config.proxy, config.proxy.blocks, latency)[measure]
    target = config.objective.target_ratio * base
    cheapest_blocks = space.decode(space.extreme_params(min))
    cheapest = cost_measures(config.proxy, cheapest_blocks, latency)[measure]
    if cheapest > target:
        raise config_lib.ConfigError(
            f"objective.target_ratio {config.objective.target_ratio:g} asks for {measure} <= "
            f"{_shown(target, measure)}, but the cheapest architecture in the space costs "
            f"{_shown(cheapest, measure)} "
            f"({cheapest / base:.3f}x the baseline); raise target_ratio to at least "
            f"{math.ceil(1000 * cheapest / base) / 1000:g} or narrow the space to cheaper choices")
    return Objective(config.objective.kind, measure, target, config.objective.exponent,
                     base, space)  # fmt: skip


def _shown(cost: float, measure: str) -> str:
    """A cost as a user reads it: milliseconds to 3 digits, counts with thousands separators."""
    return f"{cost:.3g} ms" if measure == "latency" else f"{cost:,.0f}"


def pareto_front(records: Sequence[Mapping[str, Any]], measure: str) -> list[Mapping[str, Any]]:
    """The records no other beats on both accuracy (higher) and `measure` (lower), by cost."""
    done = [r for r in records if r.get("val_accuracy") is not None]
    front = []
    for r in done:
        dominated = any(
            o["val_accuracy"] >= r["val_accuracy"] and o[measure] <= r[measure]
            and (o["val_accuracy"] > r["val_accuracy"] or o[measure] < r[measure])
            for o in done)  # fmt: skip
        if not dominated:
            front.append(r)
    unique = {r["trained_key"]: r for r in sorted(front, key=lambda r: r["number"], reverse=True)}
    return sorted(unique.values(), key=lambda r: r[measure])
