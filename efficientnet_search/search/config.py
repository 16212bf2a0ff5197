"""The grid search's config: candidates, data, search settings (the proxy's is in proxy.py)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from efficientnet_search.search.costs import LatencyConfig
from efficientnet_search.search.proxy import ProxyConfig

DATA_SCHEMES = ("npz", "folder", "csv", "tfds", "medmnist", "synthetic")


@dataclasses.dataclass(frozen=True)
class CandidatesConfig:
    """The grid: ranges and step of alpha (depth), beta (width), gamma (resolution).

    `cost` says what "equal budget" means (search/costs.py): `macs`, `activations` or
    `latency` measured on the proxy as built, relative to the proxy baseline, or `nominal`
    (the paper's alpha * beta^2 * gamma^2). Grid points whose ratio lies within `tolerance`
    of `target` are kept; `single_dimension` adds the depth-, width- and resolution-only
    points whose measured ratio comes closest to the target (Table 3's comparison). The
    paper's point (1.2, 1.1, 1.15) is always trained, as the reference. `latency` sets how
    latency is timed; with `latency.record` every candidate's latency is recorded too.
    """

    alpha_range: tuple[float, float] = (1.0, 2.0)
    beta_range: tuple[float, float] = (1.0, 1.5)
    gamma_range: tuple[float, float] = (1.0, 1.5)
    step: float = 0.05
    target: float = 2.0
    tolerance: float = 0.1
    single_dimension: bool = True
    cost: Literal["nominal", "macs", "activations", "latency"] = "macs"
    latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)

    def __post_init__(self) -> None:
        if not self.tolerance > 0 or not self.target > 1:
            raise ValueError(
                f"candidates.tolerance must be > 0 and candidates.target > 1, got "
                f"tolerance={self.tolerance}, target={self.target}"
            )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The data source (`fashion_mnist`, `npz:PATH`, `folder:PATH`, `csv:PATH`, `tfds:NAME`,
    `medmnist:NAME`, or `synthetic[:CLASSES]` for tests) and the proxy's subset sizes."""

    source: str = "fashion_mnist"
    validation_fraction: float = 0.1
    max_train: int | None = 10_000
    max_val: int | None = 5_000
    data_dir: str | None = None

    def __post_init__(self) -> None:
        scheme, sep, rest = self.source.partition(":")
        if self.source in ("fashion_mnist", "synthetic") or (sep and rest and
                                                              scheme in DATA_SCHEMES):
            return
        raise ValueError(
            f"unknown data source {self.source!r}; accepted: fashion_mnist | npz:PATH | "
            "folder:PATH | csv:PATH | tfds:NAME[:SPLIT] | medmnist:NAME | synthetic[:CLASSES]"
        )


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Seeds, pruning, workers and the statistics of the choice.

    Attributes:
      repeats: seeds per candidate (>= 2 to judge seed noise). Seed r is `seed + r` for every
        candidate (common random numbers: candidates differ in architecture, not luck).
      seed: base seed (also chooses the validation split and the queue order).
      pruner: none; candidate_halving (synchronous successive halving over candidates,
        rungs.py: cost known in advance, independent of trial order); or Optuna's
        asynchronous successive_halving / hyperband on single trials, deciding at each
        validation pass (`proxy.evals_per_epoch` an epoch).
      pruner_min_epochs, pruner_reduction_factor: the pruner's first rung (in epochs, may be
        a fraction: 1/3 with three passes an epoch) and its ratio.
      workers, threads: local worker processes and TensorFlow threads per worker (default:
        the CPU cores divided by the workers).
      heartbeat_interval, grace_period: seconds; a trial silent for the grace period is
        retried (RDB storages).
      trials_per_process: with local workers, restart each worker process after this many
        trials (0: never). TensorFlow keeps ~40-130 MB per trained model even after
        `clear_session` and gc (measured here), so a fresh process keeps memory flat.
      confidence: of the t-test that decides which candidates tie with the best.
      study_name: Optuna study name (default: the config name and a digest of the config).
    """

    repeats: int = 2
    seed: int = 0
    pruner: Literal["none", "candidate_halving", "successive_halving", "hyperband"] = "none"
    pruner_min_epochs: float = 1.0
    pruner_reduction_factor: int = 3
    workers: int = 1
    threads: int | None = None
    heartbeat_interval: int = 20
    grace_period: int = 60
    trials_per_process: int = 0
    confidence: float = 0.95
    study_name: str | None = None

    def min_passes(self, proxy: ProxyConfig) -> int:
        """The pruner's first rung in validation passes (at least one)."""
        return max(1, round(self.pruner_min_epochs * proxy.evals_per_epoch))

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.workers < 1:
            raise ValueError(
                f"search.repeats and search.workers must be >= 1, got repeats={self.repeats}, "
                f"workers={self.workers}"
            )
        if not self.pruner_min_epochs > 0 or self.pruner_reduction_factor < 2:
            raise ValueError(
                f"search.pruner_min_epochs must be > 0 and search.pruner_reduction_factor >= 2, "
                f"got {self.pruner_min_epochs} and {self.pruner_reduction_factor}"
            )
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"search.grace_period ({self.grace_period}) must exceed "
                f"search.heartbeat_interval ({self.heartbeat_interval})"
            )


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """Phi values (>= 2) at which verify.py checks the grid's answer after the grid; empty:
    not run (`efficientnet-search verify` runs it later)."""

    phi: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(phi < 2 for phi in self.phi):
            raise ValueError(f"verify.phi values must be >= 2 (phi=1 is the grid), got "
                             f"{list(self.phi)}")


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """A whole grid search: candidates, proxy, data and search settings, and the check at
    larger phi run after it."""

    name: str = "grid"
    candidates: CandidatesConfig = dataclasses.field(default_factory=CandidatesConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    verify: VerifyConfig = dataclasses.field(default_factory=VerifyConfig)
