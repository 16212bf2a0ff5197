"""The one-shot search's config: the NAS sections (space, objective, proxy, data) plus
`oneshot` (supernet training, scoring, search and calibration).

    efficientnet-search oneshot --config configs/nas/oneshot_smoke.yaml --run_dir runs/os

The space, objective, proxy and data sections mean what they mean for `nas`
(search/nas/config.py): the supernet is the NAS space at the proxy's base width and depth.
"""

from __future__ import annotations

import dataclasses

from efficientnet_search import config as config_lib
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.nas.config import ObjectiveConfig
from efficientnet_search.search.nas.oneshot.outcome import MIN_OUTCOME_SEEDS
from efficientnet_search.search.nas.oneshot.ranking import MIN_POINTS
from efficientnet_search.search.nas.oneshot.train import TrainConfig
from efficientnet_search.search.nas.space import SpaceConfig
from efficientnet_search.search.proxy.config import PROXY_DATA, ProxyConfig


@dataclasses.dataclass(frozen=True)
class OneShotSection:
    """Supernet training, scoring, the search on scores, and the calibration set.

    Attributes:
      resolutions: the elastic input sides (null: the proxy's base resolution only).
      train: the supernet's sandwich training (train.py).
      recalibration_images: the fixed training subset BN statistics are recomputed on before
        each score (OFA: 2,000).
      score_images: validation images a score is measured on (the first of the split; null:
        all). Stand-alone calibration accuracies use the whole validation split.
      random_trials, evolution_trials: proposals of random search and regularized evolution
        over supernet scores (an architecture already scored is not scored again).
      tpe_trials, nsga2_trials: proposals of Optuna's TPE (on the reward) and NSGA-II (score
        up, cost down) over supernet scores (optuna_search.py; 0: not run).
      population, sample_size: regularized evolution's (Real et al. 2019); `population` is
        also TPE's random start-up proposals and NSGA-II's population, as in `nas`.
      latency_table: time a per-block latency table on this machine (latency_table.py;
        on by itself when objective.cost is latency) and record each scored architecture's
        latency from it (ms per batch, timed as objective.latency says).
      latency_check: architectures spread over MACs timed whole to check the table (0: none).
      calibration_size: architectures, spread over multiply-adds, trained stand-alone with
        the proxy's recipe to check the supernet's ranking (at least 5).
      calibration_seeds: stand-alone seeds per calibration architecture.
      outcome_seeds: stand-alone seeds of the outcome test (outcome.py): the chosen network,
        the baseline and random search's best each retrained this many times with the
        proxy's recipe and compared (at least 3, issue 30; 0: no outcome test).
      noninferiority_margin: the accuracy points the chosen network may lose to a network
        of more measured MACs and still be called non-inferior, fixed here before the run
        (a margin picked after seeing the results could be picked to pass). 1 point by
        default: about one seed SD of the NAS proxy where DESIGN.md measured it at 4-6
        epochs (1.1 and 0.6 points), a loss no larger than retraining changes by chance, and
        far below the proxy's between-architecture SD at 2 epochs (4.4 points, the
        reference table).
      bootstrap: resamples of the rank-correlation intervals.
      seed: seeds the supernet, its training, the searches and the calibration choice.
      threads: TensorFlow CPU threads (null: TensorFlow's default).
    """

    resolutions: tuple[int, ...] | None = None
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    recalibration_images: int = 2000
    score_images: int | None = None
    random_trials: int = 500
    evolution_trials: int = 500
    tpe_trials: int = 0
    nsga2_trials: int = 0
    latency_table: bool = False
    latency_check: int = 5
    population: int = 50
    sample_size: int = 10
    calibration_size: int = 8
    calibration_seeds: int = 1
    outcome_seeds: int = 3
    noninferiority_margin: float = 1.0
    bootstrap: int = 1000
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.calibration_size < MIN_POINTS:
            raise config_lib.ConfigError(
                f"oneshot.calibration_size={self.calibration_size} is too small for a rank "
                f"correlation; give at least {MIN_POINTS}")
        for name in ("recalibration_images", "population", "sample_size", "calibration_seeds",
                     "bootstrap"):  # fmt: skip
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(
                    f"oneshot.{name} must be >= 1, got {getattr(self, name)}")
        if self.outcome_seeds != 0 and self.outcome_seeds < MIN_OUTCOME_SEEDS:
            raise config_lib.ConfigError(
                f"oneshot.outcome_seeds={self.outcome_seeds} is too few for the outcome test's "
                f"seed-noise interval; give at least {MIN_OUTCOME_SEEDS}, or 0 to skip the test")
        if not 0 < self.noninferiority_margin < 100:
            raise config_lib.ConfigError(
                f"oneshot.noninferiority_margin={self.noninferiority_margin} must be in "
                "accuracy points, above 0 and below 100 (e.g. 1.0)")
        if self.score_images is not None and self.score_images < 1:
            raise config_lib.ConfigError(
                f"oneshot.score_images must be >= 1 or null (all), got {self.score_images}")
        if self.random_trials < 1 or self.evolution_trials < 0:
            raise config_lib.ConfigError(
                f"oneshot.random_trials must be >= 1 and evolution_trials >= 0, got "
                f"{self.random_trials} and {self.evolution_trials}")
        if self.latency_check < 0:
            raise config_lib.ConfigError(
                f"oneshot.latency_check must be >= 0 (0: no check), got {self.latency_check}")
        if self.tpe_trials < 0 or self.nsga2_trials < 0:
            raise config_lib.ConfigError(
                f"oneshot.tpe_trials and nsga2_trials must be >= 0 (0: not run), got "
                f"{self.tpe_trials} and {self.nsga2_trials}")
        if self.sample_size > self.population:
            raise config_lib.ConfigError(
                f"oneshot.sample_size ({self.sample_size}) must not exceed oneshot.population "
                f"({self.population})")


@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    """A whole one-shot search (see the module docstring)."""

    name: str = "oneshot"
    space: SpaceConfig = dataclasses.field(default_factory=SpaceConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: PROXY_DATA)
    oneshot: OneShotSection = dataclasses.field(default_factory=OneShotSection)

    def __post_init__(self) -> None:
        if self.objective.kind != "reward":
            raise config_lib.ConfigError(
                f"objective kind={self.objective.kind!r}: the one-shot search ranks by "
                "MnasNet's reward (NSGA-II gives its Pareto view through oneshot.nsga2_trials); "
                "set objective.kind=reward")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.oneshot.resolutions or (self.proxy.base_resolution,)
