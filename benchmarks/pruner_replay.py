"""Replays pruners on the learning curves of a finished exhaustive grid run (no training).

    python benchmarks/pruner_replay.py runs/NAME [--orders 200]

A grid run records each trial's validation accuracy at every pass (`proxy.evals_per_epoch`
a epoch). Feeding those curves to an Optuna pruner, trial by trial, tells what the pruned
search would have kept and what it would have cost, for many settings in seconds. Trials are
replayed in the run's queue order and in `--orders` random orders within each seed round
(the order of arrival at a rung changes what successive halving keeps). Prints, per setting,
the share of the exhaustive epochs it trains and how often its winner lies inside the
exhaustive run's best set. `benchmarks/grid_cost.py` then checks the chosen setting for real.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import optuna

from efficientnet_search.search import stats
from efficientnet_search.search.grid import run as grid

optuna.logging.set_verbosity(optuna.logging.WARNING)


def replay(trials: list[dict], pruner: optuna.pruners.BasePruner, evaluations: int,
           confidence: float) -> tuple[float, str | None]:
    """(epochs trained, winner) of a sequential pruned search over recorded curves."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    records, epochs = [], 0.0
    for record in trials:
        trial = study.ask()
        state, last = "COMPLETE", None
        for step, (done, accuracy) in enumerate(record["curve"], 1):
            trial.report(accuracy, step)
            last = (done, accuracy)
            if step < evaluations and trial.should_prune():
                state = "PRUNED"
                break
        study.tell(trial, None if state == "PRUNED" else last[1],
                   state=optuna.trial.TrialState.PRUNED if state == "PRUNED" else None)
        epochs += last[0]
        records.append({**record, "state": state, "val_accuracy": last[1]})
    best = stats.summarize(records, confidence).best
    return epochs, best.key if best else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    run = Path(args.run_dir)
    payload = json.loads((run / "results.json").read_text())
    config = grid.load_grid_config(str(run / "config.yaml"), [], None)
    trials = sorted((t for t in payload["trials"] if t["state"] == "COMPLETE"),
                    key=lambda t: t["number"])  # fmt: skip
    per_epoch, evaluations = config.proxy.evals_per_epoch, config.proxy.evaluations
    full = sum(t["curve"][-1][0] for t in trials)
    best_set = set(payload["best_set"] or [payload["best"]["key"]])
    print(f"{run}: {len(trials)} trials, {full:g} epochs, best set {sorted(best_set)}")
    print(f"{'pruner':<34} {'epochs (queue order)':>22} {'same':>5} "
          f"{'mean share (orders)':>20} {'same answer':>12}")
    rng = random.Random(0)
    rounds = sorted({t["seed"] for t in trials})
    orders = [trials]
    for _ in range(args.orders):
        order = []
        for seed in rounds:
            group = [t for t in trials if t["seed"] == seed]
            rng.shuffle(group)
            order += group
        orders.append(order)
    for name in ("successive_halving", "hyperband"):
        for min_epochs in sorted({1 / per_epoch, 2 / per_epoch, 1.0}):
            for factor in (2, 3, 4):
                search = grid.SearchConfig(pruner=name, pruner_min_epochs=min_epochs,
                                           pruner_reduction_factor=factor)  # fmt: skip
                runs = [replay(order, grid.make_pruner(search, config.proxy), evaluations,
                               config.search.confidence) for order in orders]  # fmt: skip
                shares = [epochs / full for epochs, _ in runs]
                same = [winner in best_set for _, winner in runs]
                label = f"{name} min {min_epochs:.2f} x{factor}"
                print(f"{label:<34} {shares[0]:>21.0%} {str(same[0]):>5} "
                      f"{sum(shares) / len(shares):>20.0%} {sum(same) / len(same):>12.0%}")


if __name__ == "__main__":
    main()
