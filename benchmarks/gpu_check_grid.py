"""Section 3 of benchmarks/gpu_check.py: the quick grid with 1 and N local workers.

Each setting is one `efficientnet-search grid` run (the CLI, as a user runs it) in its own
run directory, given an equal share of the section's time. Trials per minute count the
trials the study completed over the command's wall time (start-up, data and plan included,
as a user waits for them), so a run stopped at its share still gives a rate, on the same
footing as the others (`timed_out` says which were stopped). A finished run's
results.json gives the best set and the per-candidate means; these are compared with the
CPU reference in units of seed noise: (GPU mean - CPU mean) / (pooled seed SD * sqrt(1/n_gpu
+ 1/n_cpu)), the two-sample z of a candidate (GPU kernels are not bitwise the CPU's, so
equal seeds do not give equal numbers).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from benchmarks.gpu_check import Settings

# |z| above this for any candidate: the GPU's results differ from the CPU's by more than
# seed noise (3 standard errors: with 8 candidates, a false alarm in ~2% of runs).
MAX_Z = 3.0


def grid_runs(settings: Settings, record, run_command: Callable[..., dict[str, Any]]) -> None:
    """Runs the grid once per worker count in `settings.workers`, recording each as it ends."""
    reference = read_summary(Path(settings.cpu_reference)) if settings.cpu_reference else None
    if reference is not None:
        record.put("cpu_reference", {"path": settings.cpu_reference, **reference})
    runs: dict[str, dict[str, Any]] = {}
    for index, workers in enumerate(settings.workers):
        left = settings.deadline - time.time() - 5.0
        limit = left / (len(settings.workers) - index)
        run_dir = Path(settings.work_dir) / f"grid_workers{workers}"
        command = [sys.executable, "-m", "efficientnet_search.cli", "grid", "--config",
                   settings.grid_config, "--run_dir", str(run_dir), "--workers", str(workers)]
        for item in settings.grid_overrides:
            command += ["--set", item]
        record.step(f"grid with {workers} worker(s)")
        run = run_command(command, limit, run_dir.parent / f"grid_workers{workers}.log", record)
        run["workers"] = workers
        run["completed_trials"] = completed_trials(run_dir)
        run["trials_per_min"] = run["completed_trials"] / (run["wall_s"] / 60)
        results = run_dir / "results.json"
        if results.is_file():
            run.update(read_summary(results))
            if reference is not None:
                run["against_cpu"] = compare(run, reference)
        runs[str(workers)] = run
        record.put("runs", runs)
    record.step(None)
    # A run stopped at its time share still gives its rate (equal shares, equal footing);
    # a run that failed on its own is an error.
    failed = [r for r in runs.values() if r["rc"] != 0 and not r["timed_out"]]
    if failed:
        first = failed[0]
        raise RuntimeError(f"grid with {first['workers']} worker(s) exited with {first['rc']}: "
                           f"{' | '.join(first['output_tail'])}")


def completed_trials(run_dir: Path) -> int:
    """Completed trials in every study of the run's SQLite storage (0 before it exists)."""
    path = run_dir / "study.db"
    if not path.is_file():
        return 0
    url = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return sum(
        len(optuna.load_study(study_name=name, storage=url).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        for name in optuna.get_all_study_names(storage=url)
    )  # fmt: skip


def read_summary(path: Path) -> dict[str, Any]:
    """Best set, pooled seed SD and per-candidate means from a grid's results.json."""
    payload = json.loads(path.read_text())
    return {
        "best": (payload.get("best") or {}).get("key"),
        "best_set": payload.get("best_set"),
        "pooled_std": (payload.get("noise") or {}).get("pooled_std"),
        "candidates": {c["key"]: {"mean": c["mean"], "n": c["n"]}
                       for c in payload.get("candidates", [])},
    }  # fmt: skip


def compare(run: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Each shared candidate's two-sample z against the CPU run, with the larger pooled SD."""
    known = [s for s in (run.get("pooled_std"), reference.get("pooled_std")) if s]
    sd = max(known) if known else None
    z = {}
    for key, ours in run["candidates"].items():
        theirs = reference["candidates"].get(key)
        if theirs is None or sd is None or ours["mean"] is None or theirs["mean"] is None:
            continue
        error = sd * math.sqrt(1 / ours["n"] + 1 / theirs["n"])
        z[key] = (ours["mean"] - theirs["mean"]) / error
    shared_best = sorted(set(run.get("best_set") or ()) & set(reference.get("best_set") or ()))
    return {"z": z, "max_abs_z": max((abs(v) for v in z.values()), default=None),
            "within_noise": bool(z) and all(abs(v) <= MAX_Z for v in z.values()),
            "pooled_std_used": sd, "best_sets_overlap": shared_best,
            "only_cpu": sorted(set(reference["candidates"]) - set(run["candidates"])),
            "only_gpu": sorted(set(run["candidates"]) - set(reference["candidates"]))}
