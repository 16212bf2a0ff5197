"""The compound-scaling grid search (Tan & Le 2019, Section 3.3, step 1).

Fix phi=1, enumerate (alpha, beta, gamma) with alpha * beta^2 * gamma^2 close to the target
(2: each step of phi doubles the multiply-adds), train every candidate `repeats` times on a
small proxy, and keep the candidates whose mean validation accuracy is best, honestly: a
candidate that leads by less than seed noise is reported as tied, not as a finding.

    efficientnet-search grid --config configs/grid/fashion_mnist_quick.yaml \\
        --run_dir runs/fashion_mnist_quick [--workers 2] [--storage URL] [--seed 0]

Every (candidate, seed) is queued once in an Optuna study (`study.py`), so re-running the
command resumes, and workers on many machines (`--storage postgresql://...`) share the grid.
With `search.pruner: candidate_halving` the grid is climbed in rungs of growing budget, each
its own study (`rungs.py`). The run directory gets config.yaml, study.db, trials.csv,
results.json, report.md, plots/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import optuna
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.scaling import Candidate, grid_candidates
from efficientnet_search.search import results as results_lib
from efficientnet_search.search import rungs as rungs_lib
from efficientnet_search.search import study as study_lib
from efficientnet_search.search.proxy import ProxyConfig

DATA_SCHEMES = ("npz", "folder", "csv", "tfds", "medmnist", "synthetic")


@dataclasses.dataclass(frozen=True)
class CandidatesConfig:
    """The grid: ranges and step of alpha (depth), beta (width), gamma (resolution).

    Points with |alpha * beta^2 * gamma^2 - target| < tolerance are kept; `single_dimension`
    adds depth-only, width-only and resolution-only points of the same budget (Table 3).
    """

    alpha_range: tuple[float, float] = (1.0, 2.0)
    beta_range: tuple[float, float] = (1.0, 1.5)
    gamma_range: tuple[float, float] = (1.0, 1.5)
    step: float = 0.05
    target: float = 2.0
    tolerance: float = 0.1
    single_dimension: bool = True


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
class GridConfig:
    """A whole grid search: candidates, proxy, data and search settings."""

    name: str = "grid"
    candidates: CandidatesConfig = dataclasses.field(default_factory=CandidatesConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)


@dataclasses.dataclass(frozen=True)
class GridResult:
    """Where the outputs went and the noise-aware summary."""

    run_dir: Path
    results_path: Path
    report_path: Path
    summary: results_lib.Summary
    results: dict[str, Any]


def enumerate_candidates(config: CandidatesConfig) -> tuple[Candidate, ...]:
    """The deterministic candidate list; single-dimension points replace equal grid points."""
    grid = grid_candidates(
        alpha_range=config.alpha_range, beta_range=config.beta_range,
        gamma_range=config.gamma_range, step=config.step, target=config.target,
        tolerance=config.tolerance, include_single_dimension=config.single_dimension,
    )  # fmt: skip
    by_key: dict[str, Candidate] = {}
    for candidate in grid:
        if candidate.key not in by_key or candidate.kind != "compound":
            by_key[candidate.key] = candidate
    if not any(c.kind == "compound" for c in by_key.values()):
        raise config_lib.ConfigError(
            f"the grid admits no candidate: no alpha in {config.alpha_range}, beta in "
            f"{config.beta_range}, gamma in {config.gamma_range} (step {config.step}) has "
            f"|alpha*beta^2*gamma^2 - {config.target}| < tolerance {config.tolerance}; "
            "widen the ranges or the tolerance"
        )
    return tuple(by_key.values())


def distinct_architectures(
    candidates: tuple[Candidate, ...], proxy: ProxyConfig
) -> list[Candidate]:
    """Drops candidates whose proxy model is identical to another's, keeping one of each.

    Channel rounding, ceil of repeats and integer resolutions map nearby coefficients to the
    same network (on the quick proxy, alpha 1.8 and 2.0 both give every stage 1 extra block).
    Training both would spend compute twice and count one model's seed noise twice. The
    single-dimension point is kept where it has a compound twin, as the report needs it.
    """
    kept: dict[tuple, Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.kind == "compound"):
        spec = proxy.spec(candidate.alpha, candidate.beta, candidate.gamma, num_classes=1)
        signature = (spec.scaling.resolution, tuple(b.args for b in spec.planned_blocks()),
                     spec.stem_channels, spec.head_channels)
        if signature in kept:
            logging.info("%s builds the same proxy as %s: trained once", candidate.key,
                         kept[signature].key)
            continue
        kept[signature] = candidate
    survivors = set(map(id, kept.values()))
    return [c for c in candidates if id(c) in survivors]


def grid_points(config: GridConfig) -> list[study_lib.Point]:
    """Every (candidate, seed), seed rounds in order, candidates shuffled (seeded) per round.

    The shuffle spreads early trials over the grid, which pruners and partial results need;
    it depends only on the config, so every worker computes the same list.
    """
    candidates = distinct_architectures(enumerate_candidates(config.candidates), config.proxy)
    points = []
    for repeat in range(config.search.repeats):
        order = candidates[:]
        random.Random(config.search.seed * 1000 + repeat).shuffle(order)
        seed = config.search.seed + repeat
        for c in order:
            points.append(study_lib.Point(
                key=f"{c.key}_s{seed}",
                params={"alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "seed": seed},
                attrs={"candidate": c.key, "kind": c.kind, "alpha": c.alpha, "beta": c.beta,
                       "gamma": c.gamma, "seed": seed},
            ))  # fmt: skip
    return points


def study_name(config: GridConfig) -> str:
    """The study shared by workers: the config name and a digest of what changes results."""
    if config.search.study_name:
        return config.search.study_name
    data = config_lib.to_dict(config)
    for runtime in ("workers", "threads", "heartbeat_interval", "grace_period", "confidence",
                    "trials_per_process"):
        data["search"].pop(runtime)
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"grid-{config.name}-{digest}"


def make_pruner(config: SearchConfig, proxy: ProxyConfig) -> optuna.pruners.BasePruner:
    """The configured Optuna pruner; its steps are validation passes 1..proxy.evaluations.

    Candidate halving prunes between rungs (rungs.py), so inside a rung nothing is pruned.
    """
    min_resource = config.min_passes(proxy)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=config.pruner_reduction_factor,
        )  # fmt: skip
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=proxy.evaluations,
            reduction_factor=config.pruner_reduction_factor,
        )  # fmt: skip
    return optuna.pruners.NopPruner()


def budgets(config: GridConfig) -> tuple[int, ...]:
    """Validation passes trained at each rung (one rung unless candidate halving)."""
    search = config.search
    return rungs_lib.budgets(
        config.proxy.evaluations, search.min_passes(config.proxy),
        search.pruner_reduction_factor, search.pruner == rungs_lib.HALVING,
    )  # fmt: skip


def open_ladder(config: GridConfig, run_dir: Path, storage: str | None) -> rungs_lib.Ladder:
    """Opens (or joins) the study of `config`: its rungs, every grid point queued once."""
    return rungs_lib.open_ladder(
        grid_points(config), budgets(config), config.search.pruner_reduction_factor,
        study_lib.storage_url(storage, run_dir), study_name(config),
        pruner=make_pruner(config.search, config.proxy),
        heartbeat_interval=config.search.heartbeat_interval,
        grace_period=config.search.grace_period,
    )  # fmt: skip


def run_grid_search(
    config: GridConfig,
    *,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    workers: int | None = None,
) -> GridResult:
    """Runs (or resumes, or joins) the grid search of `config`; writes and returns results.

    Args:
      config: the search.
      run_dir: output directory (default `runs/<config.name>`).
      storage: Optuna storage URL or journal path (default: SQLite in `run_dir`).
      workers: local worker processes (default `config.search.workers`).
    """
    from efficientnet_search.search import worker

    run_dir = Path(run_dir or Path("runs") / config.name)
    workers = workers or config.search.workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers=}")
    config_lib.save_config(config, run_dir)
    ladder = open_ladder(config, run_dir, storage)
    points = len(ladder.points0)
    logging.info("grid %s: %d candidates x %d seeds = %d trials; storage %s",
                 config.name, points // config.search.repeats, config.search.repeats,
                 points, study_lib.storage_url(storage, run_dir))  # fmt: skip
    if len(ladder.budgets) > 1:
        factor = config.search.pruner_reduction_factor
        logging.info(
            "candidate halving: rungs of %s epochs, the best 1/%d candidates move up; planned "
            "compute %.0f%% of an exhaustive search",
            ", ".join(f"{b / config.proxy.evals_per_epoch:.3g}" for b in ladder.budgets), factor,
            100 * rungs_lib.planned_share(points // config.search.repeats, ladder.budgets, factor),
        )  # fmt: skip
    threads = config.search.threads or (max(1, (os.cpu_count() or 1) // workers)
                                        if workers > 1 else None)
    if workers == 1 and not config.search.trials_per_process:
        worker.work(config, ladder, threads=threads)
    else:
        _run_local_workers(config, ladder, run_dir, storage, workers, threads)
    return write_outputs(config, ladder, run_dir)


def _run_local_workers(
    config: GridConfig, ladder: rungs_lib.Ladder, run_dir: Path, storage: str | None,
    workers: int, threads: int | None,
) -> None:
    """Keeps `workers` spawned worker processes busy, replacing each that exits while trials
    remain (after `trials_per_process` trials, or a crash: its trial is retried)."""
    from efficientnet_search.search import worker

    context = multiprocessing.get_context("spawn")
    args = (config_lib.to_dict(config), str(run_dir), storage, threads)
    slots: list = [None] * workers
    every = config.search.trials_per_process
    logging.info("%d local worker processes, %s threads each%s", workers, threads or "all",
                 f", a fresh process every {every} trial(s)" if every else "")  # fmt: skip
    devices = gpu_assignments(workers, _local_gpu_ids())
    if devices[0] is not None:
        logging.info("local workers' GPUs: %s", "; ".join(
            f"worker {i}: {ids}" for i, ids in enumerate(devices)))  # fmt: skip
    while True:
        for index, process in enumerate(slots):
            if process is not None and process.exitcode is None:
                continue
            if process is not None and process.exitcode:
                logging.warning("%s exited with code %s", process.name, process.exitcode)
            slots[index] = None
            if not ladder.finished() and (process is None or config.search.trials_per_process
                                          or process.exitcode):  # fmt: skip
                slots[index] = context.Process(target=worker.process_main, args=args,
                                               name=f"grid-worker-{index}")  # fmt: skip
                # A spawned child copies os.environ as it is at start().
                with _gpu_environment(devices[index], shared=workers > len(set(devices))):
                    slots[index].start()
        if all(process is None for process in slots):
            return
        time.sleep(1.0)


def gpu_assignments(workers: int, gpu_ids: list[str]) -> list[str | None]:
    """The GPUs each local worker may see, as CUDA_VISIBLE_DEVICES values (None: no GPUs).

    Each worker's trials run their own `tf.distribute` strategy, which by default takes every
    visible GPU and nearly all its memory, so workers that saw the same GPUs would starve each
    other. With at least as many GPUs as workers each worker gets its own contiguous share;
    with more workers than GPUs they take turns on one GPU each and share it.
    """
    if not gpu_ids:
        return [None] * workers
    if workers <= len(gpu_ids):
        bounds = [len(gpu_ids) * i // workers for i in range(workers + 1)]
        return [",".join(gpu_ids[bounds[i]:bounds[i + 1]]) for i in range(workers)]
    return [gpu_ids[i % len(gpu_ids)] for i in range(workers)]


def _local_gpu_ids() -> list[str]:
    """This host's GPUs as CUDA ids, respecting a CUDA_VISIBLE_DEVICES the user set."""
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [d.strip() for d in visible.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


@contextlib.contextmanager
def _gpu_environment(devices: str | None, *, shared: bool) -> Iterator[None]:
    """Sets CUDA_VISIBLE_DEVICES (and, on shared GPUs, on-demand memory) while spawning."""
    if devices is None:
        yield
        return
    saved = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES",
                                                  "TF_FORCE_GPU_ALLOW_GROWTH")}
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    if shared:  # workers sharing a GPU must not each reserve all of its memory up front
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_outputs(config: GridConfig, ladder: rungs_lib.Ladder, run_dir: Path) -> GridResult:
    """Writes trials.csv, results.json, report.md and plots from the study's trials.

    The verdict is drawn from the highest rung with completed trials (the only rung
    without candidate halving); lower rungs are summarized under `rungs`.
    """
    from efficientnet_search import report

    ladder.current()
    by_rung = {rung.index: [results_lib.trial_record(t) for t in rung.queue.point_trials()]
               for rung in ladder.rungs()}  # fmt: skip
    records = [record for rung in sorted(by_rung) for record in by_rung[rung]]
    top = max((r for r, group in by_rung.items()
               if any(t["state"] == "COMPLETE" for t in group)), default=0)  # fmt: skip
    summary = results_lib.summarize(by_rung.get(top, []), config.search.confidence)
    payload = results_lib.to_json(summary, records)
    payload["study"] = {"name": study_name(config), "points": len(ladder.points0)}
    if len(ladder.budgets) > 1:
        payload["rungs"] = rungs_lib.rung_summaries(
            ladder, by_rung, config.proxy.evals_per_epoch, config.search.confidence)
        payload["verdict"] += rungs_lib.halving_note(payload["rungs"])
    results_lib.write_trials_csv(records, run_dir / "trials.csv")
    results_path = run_dir / "results.json"
    write_json(results_path, payload)
    report_path = report.write_report(run_dir, payload, config_lib.to_dict(config))
    logging.info("%s", payload["verdict"])
    print(report.candidates_text(payload))
    print(f"results: {results_path}\nreport:  {report_path}\nplots:   {run_dir / 'plots'}")
    return GridResult(run_dir, results_path, report_path, summary, payload)


def load_grid_config(path: str, overrides: list[str], seed: int | None) -> GridConfig:
    """Reads a grid YAML with `--set` overrides; `--seed` overrides search.seed."""
    if seed is not None:
        overrides = [*overrides, f"search.seed={seed}"]
    config = config_lib.load_config(GridConfig, path, overrides)
    enumerate_candidates(config.candidates)  # fail early on an empty grid
    return config


def main(args) -> None:
    """CLI entry: `efficientnet-search grid` (see the module docstring)."""
    config = load_grid_config(args.config, list(args.set or []), getattr(args, "seed", None))
    run_dir = args.run_dir or str(Path("runs") / config.name)
    run_grid_search(
        config, run_dir=run_dir, storage=getattr(args, "storage", None),
        workers=getattr(args, "workers", None),
    )  # fmt: skip
