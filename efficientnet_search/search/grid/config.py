"""The grid search's config: candidates, data, search settings (the proxy's is proxy/config.py).

The `data` section is every command's `data.config.DataConfig`, with the proxy's defaults
(`proxy.config.PROXY_DATA`: 10k training / 5k validation images, batches of 128).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.proxy.config import PROXY_DATA, ProxyConfig
from efficientnet_search.search.proxy.latency import LatencyConfig


@dataclasses.dataclass(frozen=True)
class CandidatesConfig:
    """The grid: ranges and step of alpha (depth), beta (width), gamma (resolution).

    `cost` says what "equal budget" means (grid/costs.py): `macs`, `activations` or
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
        the CPU cores divided by the workers). `workers: 0` sizes them from the machine: one
        single-thread worker per usable CPU core, as many as the available memory holds at
        `worker_memory_gb` each (two single-thread workers gave ~1.7x the trials of one
        two-thread worker on 2 cores).
      worker_memory_gb: memory one worker may need, for `workers: 0` (a quick-grid worker
        peaks near 1 GB).
      heartbeat_interval, grace_period: seconds; a trial silent for the grace period is
        retried (RDB storages).
      trials_per_process: with local workers, restart each worker process after this many
        trials (0: never). TensorFlow keeps ~40-130 MB per trained model even after
        `clear_session` and gc: after-trial RSS grew 107% over the first trial's peak with
        no recycling, 45% at 3 trials a process, at most 12% at 1 (quick grid, 2 CPU cores;
        `benchmarks/grid_cost.py`), so a fresh process keeps memory flat. Much of it was
        each trial's traced graphs, pinned by TensorFlow's custom-gradient registry; trials
        now purge it (training/graph_memory.py: +15% instead of +30% after 6 trials,
        `benchmarks/graph_memory.py`).
      reuse_models, data_cache, max_memory_growth: speed-ups that leave every result as it
        is (tested; benchmarks/search_throughput.py measures each). `reuse_models`: a worker
        keeps its compiled model and takes the next seed of the same candidate, which
        re-initializes that model instead of building and tracing a new one. `data_cache`:
        the data is resized once per resolution and shared by the run's workers through
        memory-mapped files in `<run_dir>/cache/`. `max_memory_growth`: a local worker process
        is replaced once its resident memory after a trial exceeds its first trial's peak by
        this fraction (0.2: +20%), so processes live for many trials but memory stays flat.
      validation: `all` validates at every epoch end (learning curves in the report);
        `needed` runs only the passes something reads: without an asynchronous pruner, the
        last one (the same final accuracy; the curves then have one point a trial).
      max_repeats: racing (search/racing.py): after the first `repeats` seeds, one seed more
        per round for the candidates still tied with the best, until one is left or each has
        this many (default null: `repeats`, no racing). Its looks share `1 - confidence`
        (Bonferroni, search/stats.py). Raising it on a finished run adds rounds to it.
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
    worker_memory_gb: float = 1.5
    heartbeat_interval: int = 20
    grace_period: int = 60
    trials_per_process: int = 0
    reuse_models: bool = False
    data_cache: bool = False
    max_memory_growth: float | None = None
    validation: Literal["all", "needed"] = "all"
    max_repeats: int | None = None
    confidence: float = 0.95
    study_name: str | None = None

    def min_passes(self, proxy: ProxyConfig) -> int:
        """The pruner's first rung in validation passes (at least one)."""
        return max(1, round(self.pruner_min_epochs * proxy.evals_per_epoch))

    @property
    def race_repeats(self) -> int:
        """Most seeds a candidate gets: `max_repeats`, or `repeats` without racing."""
        return self.repeats if self.max_repeats is None else self.max_repeats

    def __post_init__(self) -> None:
        if self.max_repeats is not None and self.max_repeats < self.repeats:
            raise ValueError(
                f"search.max_repeats={self.max_repeats} is below search.repeats={self.repeats}: "
                f"set it to at least {self.repeats} (racing adds seeds up to it), or leave it "
                "out for no racing"
            )
        if self.repeats < 1 or self.workers < 0:
            raise ValueError(
                f"search.repeats and search.workers must be >= 1 (workers: 0 sizes them from "
                f"the machine), got repeats={self.repeats}, workers={self.workers}"
            )
        if not self.pruner_min_epochs > 0 or self.pruner_reduction_factor < 2:
            raise ValueError(
                f"search.pruner_min_epochs must be > 0 and search.pruner_reduction_factor >= 2, "
                f"got {self.pruner_min_epochs} and {self.pruner_reduction_factor}"
            )
        if self.max_memory_growth is not None and not self.max_memory_growth > 0:
            raise ValueError(
                f"search.max_memory_growth must be > 0 (0.2: +20%) or null, got "
                f"{self.max_memory_growth}")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"search.grace_period ({self.grace_period}) must exceed "
                f"search.heartbeat_interval ({self.heartbeat_interval})"
            )


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """Phi values (>= 2) at which verify.py checks the grid's answer after the grid, and
    factors (> 0) of the proxy's epochs at which budget.py retrains its best set and
    single-dimension points; empty: not run (`efficientnet-search verify` runs them later)."""

    phi: tuple[int, ...] = ()
    epochs_factor: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if any(not math.isfinite(f) or f <= 0 for f in self.epochs_factor):
            raise ValueError(f"verify.epochs_factor values must be numbers > 0 (2: twice the "
                             f"proxy's epochs), got {list(self.epochs_factor)}")
        if any(phi < 2 for phi in self.phi):
            raise ValueError(f"verify.phi values must be >= 2 (phi=1 is the grid), got "
                             f"{list(self.phi)}")


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """A whole grid search: candidates, proxy (its model and training), data, search, and the
    check at larger phi run after it."""

    name: str = "grid"
    candidates: CandidatesConfig = dataclasses.field(default_factory=CandidatesConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: PROXY_DATA)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    verify: VerifyConfig = dataclasses.field(default_factory=VerifyConfig)
