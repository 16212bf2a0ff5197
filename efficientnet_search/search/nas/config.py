"""The architecture search's config: space, objective, algorithms, proxy and data.

    efficientnet-search nas --config configs/nas/fashion_mnist_quick.yaml --run_dir runs/nas_quick
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from efficientnet_search import config as config_lib
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.nas.space import SpaceConfig
from efficientnet_search.search.proxy.config import PROXY_DATA, ProxyConfig
from efficientnet_search.search.proxy.latency import LatencyConfig

ALGORITHMS = ("random", "evolution", "tpe", "nsga2")
# MnasNet's soft-constraint exponent (Tan et al. 2019, Section 3: w = alpha = beta = -0.07),
# also EfficientNet's B0 search (Tan & Le 2019, Section 4.2, with T = 400M FLOPs).
MNAS_EXPONENT = -0.07


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """What the search maximizes.

    Attributes:
      kind: `reward`, MnasNet's ACC(m) x [cost(m)/T]^w, one objective; or `pareto`, two
        objectives (maximize validation accuracy, minimize cost).
      cost: the cost measure of the proxy (`macs`: multiply-adds per image; `activations`:
        convolution output elements per image, Dollar et al. 2021; `params`; `latency`:
        milliseconds per batch on this machine, `training/latency.py`). Every trial records
        the three counted ones whatever is chosen, latency too when it is the cost or
        `latency.record` is true. Latency is timed in the process that trains the trial
        and T from the baseline timed where the search starts, so run a latency search on
        one kind of machine (EfficientNet-X, Li et al. 2021: the coefficients differ by
        hardware).
      latency: how latency is timed (batch: the data's by default; warm-up, timed calls).
      target_ratio: T as a multiple of the B0-shaped proxy's measured cost (EfficientNet's
        T = 400M FLOPs sits at B0's ~390M multiply-adds, so 1.0 is the same choice).
      exponent: w (MNAS_EXPONENT by default); 0 ignores the cost.
    """

    kind: Literal["reward", "pareto"] = "reward"
    cost: Literal["macs", "activations", "params", "latency"] = "macs"
    target_ratio: float = 1.0
    exponent: float = MNAS_EXPONENT
    latency: LatencyConfig = dataclasses.field(
        default_factory=lambda: LatencyConfig(record=False))

    def __post_init__(self) -> None:
        if not self.target_ratio > 0 or self.exponent > 0:
            raise config_lib.ConfigError(
                f"objective.target_ratio must be > 0 and objective.exponent <= 0, got "
                f"target_ratio={self.target_ratio}, exponent={self.exponent}")


@dataclasses.dataclass(frozen=True)
class NasSearchConfig:
    """The algorithms, their budget and the honest final choice.

    Attributes:
      algorithms: each runs its own study on the same budget; the first is the search whose
        front is retrained, and `random` must be among them (every NAS result is compared
        with random search on the same budget: Li & Talwalkar 2019; Yang et al. 2020).
      trials: proposals per algorithm and search seed (an architecture already trained is
        not trained again: its result is copied).
      search_seeds: one search per seed and algorithm (several show how much luck decides).
      seed: the training seed of every search trial (and the data split).
      population, sample_size: regularized evolution's population (the youngest finished
        trials; older ones age out) and tournament size (Real et al. 2019); `population`
        is also TPE's and NSGA-II's number of random start-up trials / population size.
      evolution_lag: evolution's proposal for budget slot n draws its population from slots
        <= n - lag, waiting for them, so the search does not depend on which worker finished
        first (nas_algorithms). null: 2 x workers - 1 for the local workers (1 for one worker:
        Real et al.'s Algorithm 1 exactly; a smaller lag makes workers wait,
        benchmarks/evolution_lag.py); on several machines, count the workers of all.
      top_k: architectures of the front retrained with `retrain_seeds` fresh seeds, beside
        the B0-shaped proxy and random search's best.
      max_repeats: racing of the retraining (search/racing.py): after `retrain_seeds`, one
        fresh seed more per round for the retrained candidates whose mean accuracy is still
        within seed noise of the best, until one is left or each has this many (default
        null: `retrain_seeds`, no racing). Its looks share `1 - confidence` (Bonferroni,
        search/stats.py). Raising it on a finished run adds rounds to it.
      workers, threads, heartbeat_interval, grace_period, trials_per_process, confidence,
        study_name: as in the grid's search section.
    """

    algorithms: tuple[str, ...] = ("evolution", "random")
    trials: int = 20
    search_seeds: tuple[int, ...] = (0,)
    seed: int = 0
    population: int = 8
    sample_size: int = 3
    evolution_lag: int | None = None
    top_k: int = 3
    retrain_seeds: int = 3
    max_repeats: int | None = None
    workers: int = 1
    threads: int | None = None
    heartbeat_interval: int = 20
    grace_period: int = 60
    trials_per_process: int = 0
    confidence: float = 0.95
    study_name: str | None = None

    def __post_init__(self) -> None:
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown or len(set(self.algorithms)) != len(self.algorithms):
            raise config_lib.ConfigError(
                f"search.algorithms {list(self.algorithms)}: each must be one of "
                f"{list(ALGORITHMS)}, once")
        if "random" not in self.algorithms:
            raise config_lib.ConfigError(
                f"search.algorithms {list(self.algorithms)} lack random: a NAS result means "
                "little without random search on the same budget; add random")
        for name in ("trials", "population", "sample_size", "top_k", "retrain_seeds",
                     "workers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(
                    f"search.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_repeats is not None and self.max_repeats < self.retrain_seeds:
            raise config_lib.ConfigError(
                f"search.max_repeats={self.max_repeats} is below search.retrain_seeds="
                f"{self.retrain_seeds}: set it to at least {self.retrain_seeds} (racing adds "
                "fresh seeds up to it), or leave it out for no racing")
        if self.evolution_lag is not None and self.evolution_lag < 1:
            raise config_lib.ConfigError(
                f"search.evolution_lag must be >= 1 or null, got {self.evolution_lag}")
        if self.sample_size > self.population or not self.search_seeds:
            raise config_lib.ConfigError(
                f"search.sample_size ({self.sample_size}) must not exceed search.population "
                f"({self.population}), and search.search_seeds must not be empty")
        if self.grace_period <= self.heartbeat_interval:
            raise config_lib.ConfigError(
                f"search.grace_period ({self.grace_period}) must exceed "
                f"search.heartbeat_interval ({self.heartbeat_interval})")

    @property
    def race_repeats(self) -> int:
        """Most fresh seeds a retrained candidate gets: `max_repeats`, else `retrain_seeds`."""
        return self.retrain_seeds if self.max_repeats is None else self.max_repeats

    def lag_for(self, workers: int) -> int:
        """Evolution's lag on `workers` workers (see evolution_lag)."""
        return self.evolution_lag or 2 * workers - 1

    @property
    def main(self) -> str:
        """The algorithm whose result is the search's answer."""
        return self.algorithms[0]


@dataclasses.dataclass(frozen=True)
class NasConfig:
    """A whole architecture search. `proxy.blocks` is the baseline whose stages are searched
    (and the B0-shaped reference); every candidate is trained with the proxy's recipe at
    its base width, depth and resolution."""

    name: str = "nas"
    space: SpaceConfig = dataclasses.field(default_factory=SpaceConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: PROXY_DATA)
    search: NasSearchConfig = dataclasses.field(default_factory=NasSearchConfig)

    def __post_init__(self) -> None:
        multi = self.objective.kind == "pareto"
        if "nsga2" in self.search.algorithms and not multi:
            raise config_lib.ConfigError(
                "search.algorithms has nsga2, a multi-objective sampler, but objective.kind "
                "is reward; set objective.kind=pareto or drop nsga2")
