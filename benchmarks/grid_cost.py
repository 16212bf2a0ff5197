"""Cost of the grid search: exhaustive versus pruned, and memory across trials.

    python benchmarks/grid_cost.py --config configs/grid/fashion_mnist_quick.yaml \\
        --out_dir runs/grid_cost [--exhaustive_run_dir runs/fashion_mnist_quick]

Runs the grid exhaustively (or reads a finished exhaustive run: re-running a finished grid
trains nothing) and again pruned (default: candidate halving with three validation passes an
epoch and a first rung of 1/3 epoch; `--pruner successive_halving` or `hyperband` for Optuna's
asynchronous pruners), then prints total training epochs, wall time, whether the pruned
winner lies inside the exhaustive run's best set (candidates indistinguishable from the
best), and the resident memory after each trial (flat memory: growth beyond 20% of the first
trial's peak fails). Target (issue 3): the same answer for at most 40% of the compute.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from efficientnet_search.search.grid import run as grid


def _run(config_path: str, overrides: list[str], run_dir: Path) -> tuple[dict, float]:
    config = grid.load_grid_config(config_path, overrides, None)
    start = time.perf_counter()
    result = grid.run_grid_search(config, run_dir=run_dir)
    return result.results, time.perf_counter() - start


def _epochs(results: dict) -> float:
    return sum(t.get("epochs") or 0 for t in results["trials"])


def _memory(results: dict) -> tuple[float, float, list[float]]:
    """(first trial's peak, largest growth of after-trial RSS over it, RSS per trial)."""
    trials = sorted(results["trials"], key=lambda t: t["number"])
    rss = [t["rss_mb"] for t in trials if t.get("rss_mb")]
    peaks = [t["peak_rss_mb"] for t in trials if t.get("peak_rss_mb")]
    if not rss or not peaks:
        return float("nan"), float("nan"), rss
    return peaks[0], max(rss) - peaks[0], rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/grid/fashion_mnist_quick.yaml")
    parser.add_argument("--out_dir", default="runs/grid_cost")
    parser.add_argument("--exhaustive_run_dir", help="a finished exhaustive run to reuse")
    parser.add_argument("--pruner", default="candidate_halving",
                        choices=["candidate_halving", "successive_halving", "hyperband"])
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--pruned_set", action="append",
                        default=["proxy.evals_per_epoch=3", "search.pruner_min_epochs=0.3334"],
                        help="override for the pruned run only")
    args = parser.parse_args()
    out = Path(args.out_dir)
    exhaustive_dir = Path(args.exhaustive_run_dir or out / "exhaustive")
    exhaustive, exhaustive_s = _run(args.config, args.set, exhaustive_dir)
    if args.exhaustive_run_dir:  # read back, not trained here: its wall time is unknown
        exhaustive_s = float("nan")
    pruned, pruned_s = _run(
        args.config, [*args.set, *args.pruned_set, f"search.pruner={args.pruner}"],
        out / "pruned")  # fmt: skip
    best_set = exhaustive["best_set"] or [exhaustive["best"]["key"]]
    winner = pruned["best"]["key"] if pruned["best"] else None
    ratio = _epochs(pruned) / max(1, _epochs(exhaustive))
    rows = [("exhaustive", exhaustive, exhaustive_s), (args.pruner, pruned, pruned_s)]
    print(f"{'run':<20} {'trials':>6} {'epochs':>6} {'trial-min':>9} {'wall-min':>8}  best")
    for name, res, wall in rows:
        trial_min = sum(t.get("seconds") or 0 for t in res["trials"]) / 60
        best = res["best"]["key"] if res["best"] else "-"
        print(f"{name:<20} {len(res['trials']):>6} {_epochs(res):>6.1f} {trial_min:>9.1f} "
              f"{wall / 60:>8.1f}  {best}")  # fmt: skip
    print(f"exhaustive best set: {', '.join(best_set)}")
    print(f"pruned winner {winner} inside the exhaustive best set: {winner in best_set}")
    print(f"pruned compute: {ratio:.0%} of exhaustive epochs (target <= 40%)")
    for name, res, _ in rows:
        first_peak, growth, rss = _memory(res)
        print(f"memory {name}: first trial peak {first_peak:.0f} MiB, after-trial RSS "
              f"{min(rss, default=0):.0f}-{max(rss, default=0):.0f} MiB, growth "
              f"{growth:+.0f} MiB ({growth / first_peak:+.0%} of the first peak; limit +20%)")
    if pruned.get("rungs"):
        for rung in pruned["rungs"]:
            print(f"rung {rung['rung']}: {rung['epochs']:.3g} epochs, "
                  f"{len(rung['candidates'])} candidates, promoted {rung['promoted'] or '-'}")
    summary = {"epochs_ratio": ratio, "winner_in_best_set": winner in best_set,
               "exhaustive_wall_s": exhaustive_s, "pruned_wall_s": pruned_s}
    (out / "grid_cost.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
