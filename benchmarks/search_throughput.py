"""Search throughput: the quick grid with each speed-up off and on, side by side in one run.

    python benchmarks/search_throughput.py --out_dir runs/throughput      # ~25 min, idle 2 cores
    python benchmarks/search_throughput.py --smoke --out_dir runs/throughput_smoke   # ~4 min
    python benchmarks/search_throughput.py --out_dir runs/throughput_pruned --pruned \
        --variants baseline +data     # halving: does wall time fall with the epochs?

Runs the grid config (default `configs/grid/fashion_mnist_quick.yaml`; `--smoke`: the smoke
grid on generated data, 2 seeds) once per variant, each in a fresh run directory under
`--out_dir`, with the speed-ups added one at a time on top of the baseline (two single-thread
worker processes, a fresh process per trial: the quick config before issue 15):

  baseline      a fresh process per trial, nothing reused
  +keep         worker processes kept for many trials, replaced when their memory after a
                trial exceeds +20% of their first trial's peak (search.max_memory_growth)
  +reuse        ... and the seeds of a candidate share one built, traced model
                (search.reuse_models)
  +data         ... and the data resized once per resolution, memory-mapped by every worker
                (search.data_cache): the quick config's settings
  +val          ... and only the validation passes something reads (search.validation:
                needed; without a pruner the last one: same accuracies, one-point curves)

With `--pruned` the baseline and the last variant chosen run again under candidate halving (three
validation passes an epoch, first rung 1/3 epoch). It prints, per variant: trials, training
epochs, wall time, trial-minutes, the mean per-trial time breakdown (process start, data,
build, first step, other training steps, validation, writing), models reused, after-trial
memory growth over the first trial's peak, and whether the best set and every trial's
accuracies equal the baseline's. The table also goes to `<out_dir>/search_throughput.json`.
Re-running on the same `--out_dir` resumes finished variants (and reports their old times):
use a fresh one to measure. The machine's load (`os.getloadavg`) is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.grid.results import TIMING_FIELDS

# The quick config before issue 15 (it now turns the speed-ups on).
BASE = ["search.workers=2", "search.threads=1", "search.trials_per_process=1",
        "search.max_memory_growth=null", "search.reuse_models=false", "search.data_cache=false"]
KEEP = ["search.trials_per_process=0", "search.max_memory_growth=0.2"]
REUSE = ["search.reuse_models=true"]
DATA = ["search.data_cache=true"]
VAL = ["search.validation=needed"]
VARIANTS = {
    "baseline": [],
    "+keep": KEEP,
    "+reuse": [*KEEP, *REUSE],
    "+data": [*KEEP, *REUSE, *DATA],
    "+val": [*KEEP, *REUSE, *DATA, *VAL],
}
PRUNED = ["search.pruner=candidate_halving", "proxy.evals_per_epoch=3",
          "search.pruner_min_epochs=0.3334"]  # fmt: skip
# The smoke grid on generated data: a tiny proxy, two seeds so that models can be reused.
SMOKE = [
    "proxy.blocks=[r1_k3_s11_e1_i32_o16_se0.25, r1_k3_s22_e6_i16_o24_se0.25]",
    "proxy.steps_per_epoch=3", "data.batch_size=16", "data.source=synthetic",
    "data.max_train=96", "data.max_val=48", "search.repeats=2",
]  # fmt: skip
SHORT_NAMES = {"time_start_s": "start", "time_data_s": "data", "time_build_s": "build",
               "time_first_step_s": "step1", "time_train_s": "train", "time_val_s": "val",
               "time_write_s": "write"}  # fmt: skip


def run_variant(config_path: str, overrides: list[str], run_dir: Path) -> dict:
    """Runs one variant; returns its results.json payload and wall seconds."""
    config = grid.load_grid_config(config_path, overrides, None)
    start = time.perf_counter()
    payload = grid.run_grid_search(config, run_dir=run_dir).results
    return {"results": payload, "wall_s": time.perf_counter() - start}


def summarize(name: str, run: dict, baseline: dict | None) -> dict:
    """One row of the table: cost, breakdown, memory, and agreement with the baseline."""
    res = run["results"]
    trials = [t for t in res["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    breakdown = {field: statistics.fmean(t.get(field) or 0.0 for t in trials) if trials else 0.0
                 for field in TIMING_FIELDS}  # fmt: skip
    best_set = sorted(res["best_set"] or ([res["best"]["key"]] if res["best"] else []))
    row = {
        "variant": name, "trials": len(res["trials"]),
        "epochs": sum(t.get("epochs") or 0 for t in res["trials"]),
        "wall_s": run["wall_s"], "trial_s": sum(t.get("seconds") or 0 for t in trials),
        "breakdown_s": breakdown, "reused": sum(bool(t.get("reused_model")) for t in trials),
        "memory_growth": _memory_growth(res["trials"]), "best_set": best_set,
        "accuracies": {f"{t['rung']}:{t['candidate']}:s{t['seed']}": t["val_accuracy"]
                       for t in res["trials"]},
    }  # fmt: skip
    if baseline is not None:
        row["same_best_set"] = best_set == baseline["best_set"]
        row["same_accuracies"] = row["accuracies"] == baseline["accuracies"]
    return row


def _memory_growth(trials: list[dict]) -> float | None:
    """Largest after-trial RSS over its own process's first peak, as a fraction."""
    growth = None
    by_worker: dict[str, list[dict]] = {}
    for trial in sorted(trials, key=lambda t: t["number"]):
        by_worker.setdefault(trial.get("worker") or "?", []).append(trial)
    for group in by_worker.values():
        peak = group[0].get("peak_rss_mb")
        rss = [t["rss_mb"] for t in group if t.get("rss_mb")]
        if peak and rss:
            value = max(rss) / peak - 1
            growth = value if growth is None else max(growth, value)
    return growth


def print_table(rows: list[dict]) -> None:
    header = (f"{'variant':<16} {'trials':>6} {'epochs':>6} {'wall-min':>8} {'trial-min':>9} "
              f"{'wall %':>6}  " + " ".join(f"{n:>5}" for n in SHORT_NAMES.values())
              + f" {'reused':>6} {'mem':>5}  best set same? acc same?")  # fmt: skip
    print(header)
    base_wall = {}
    for row in rows:
        group = "pruned" if row["variant"].startswith("pruned") else "full"
        base_wall.setdefault(group, row["wall_s"])
        breakdown = " ".join(f"{row['breakdown_s'][f]:>5.1f}" for f in SHORT_NAMES)
        memory = "  n/a" if row["memory_growth"] is None else f"{row['memory_growth']:>+5.0%}"
        same = (f"{_yes(row.get('same_best_set')):>14} {_yes(row.get('same_accuracies')):>9}"
                if "same_best_set" in row else f"{'(reference)':>24}")  # fmt: skip
        print(f"{row['variant']:<16} {row['trials']:>6} {row['epochs']:>6.1f} "
              f"{row['wall_s'] / 60:>8.2f} {row['trial_s'] / 60:>9.2f} "
              f"{row['wall_s'] / base_wall[group]:>6.0%}  {breakdown} {row['reused']:>6} "
              f"{memory}  {same}")  # fmt: skip
    print("per-trial means in seconds: start = process start and imports (a process's first "
          "trial), data = load and resize, build = model build or re-initialization, step1 = "
          "first training step (tracing), train = other steps, val = validation passes, "
          "write = recording; mem = largest after-trial memory over its process's first peak")
    for row in rows:
        print(f"best set {row['variant']}: {', '.join(row['best_set']) or '-'}")


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/grid/fashion_mnist_quick.yaml")
    parser.add_argument("--out_dir", default="runs/throughput")
    parser.add_argument("--smoke", "--quick", dest="smoke", action="store_true",
                        help="the smoke grid on generated data (minutes)")
    parser.add_argument("--pruned", action="store_true",
                        help="also the baseline and all speed-ups under candidate halving")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS),
                        choices=list(VARIANTS), help="variants to run (default: all)")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    config = "configs/grid/smoke.yaml" if args.smoke else args.config
    common = [*BASE, *(SMOKE if args.smoke else []), *args.set]
    plan = [(name, [*common, *VARIANTS[name]]) for name in args.variants]
    if args.pruned:
        plan += [("pruned baseline", [*common, *PRUNED]),
                 ("pruned " + args.variants[-1], [*common, *VARIANTS[args.variants[-1]],
                                                  *PRUNED])]  # fmt: skip
    out = Path(args.out_dir)
    rows: list[dict] = []
    references: dict[str, dict] = {}
    for name, overrides in plan:
        run_dir = out / name.replace(" ", "_").replace("+", "plus_")
        row = summarize(name, run_variant(config, overrides, run_dir),
                        references.get("pruned" if name.startswith("pruned") else "full"))
        references.setdefault("pruned" if name.startswith("pruned") else "full", row)
        rows.append(row)
    load = os.getloadavg()
    print(f"\n{config} ({'smoke, generated data' if args.smoke else 'as configured'}), "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_throughput.json").write_text(json.dumps(
        {"config": config, "load_average": load, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
