"""Random search, regularized evolution, TPE and NSGA-II compared by lookup on the reference
table (issue 30, item 7): hundreds of repeats per budget, no training.

    python benchmarks/lookup_search.py --table benchmarks/reference_table_quick.csv \
        --config configs/nas/fashion_mnist_quick.yaml --repeats 200 --budgets 5 10 20 30

Each algorithm is the multi-trial search's own Optuna sampler (`nas.algorithms.
make_sampler`) over the NAS space, in an in-memory ask/tell study. The table holds only a
few dozen architectures of a space of billions, so each proposal is snapped to the
tabulated architecture nearest to it (fewest differing per-stage choices; ties to the
first in table order) and the sampler is told that architecture's result: this measures
whether an algorithm's guidance helps *on this table*, not in the whole space. A search
sees one seed's accuracy (repeat r reads seed r mod seeds: the noise a real search trains
with) and keeps its best by MnasNet's reward (accuracy x (MACs / T)^-0.07, T the config's
baseline, `nas.objective.reward`); it is judged on the seed mean. Budget = distinct
tabulated architectures looked up (a repeat snap is a free cache hit; at most 5 x budget
proposals; the mean reached is printed). Per algorithm and budget: the mean regret (best
true reward in the table minus the true reward of the search's pick, in reward points x
100) and how often the pick is among the table's true top 5, each with a 95% bootstrap
interval over repeats. Where intervals overlap the answer is "no difference shown", not a
ranking.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import warnings
from collections.abc import Iterator

import numpy as np

ALGORITHMS = ("random", "evolution", "tpe", "nsga2")
# Proposals allowed per distinct lookup: evolution's one-choice mutations often snap back to
# an architecture already seen, and each Optuna proposal scans the whole study (5x: about
# 0.5 s a search at budget 20 here; 20x took 7 s for evolution alone).
PROPOSALS_PER_LOOKUP = 5


def read_table(path: str) -> list[dict]:
    """Architectures with every seed's accuracy: choices, MACs, per-seed and mean accuracy."""
    by_arch: dict[int, dict] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            arch = by_arch.setdefault(int(row["arch"]), {
                "choices": json.loads(row["choices"]), "macs": int(row["macs"]),
                "seeds": {}})  # fmt: skip
            arch["seeds"][int(row["seed"])] = float(row["accuracy"])
    seeds = max(len(a["seeds"]) for a in by_arch.values())
    table = [a for _, a in sorted(by_arch.items()) if len(a["seeds"]) == seeds]
    for arch in table:
        arch["accuracy"] = [arch["seeds"][s] for s in sorted(arch["seeds"])]
    return table


def nearest(table: list[dict], params: dict) -> int:
    """Index of the tabulated architecture with the fewest choices differing from `params`."""
    return min(range(len(table)), key=lambda i: sum(
        table[i]["choices"][k] != v for k, v in params.items()))


def search(algorithm: str, space, table: list[dict], rewards: np.ndarray, budget: int,
           repeat: int) -> tuple[int, int]:
    """One search of `budget` distinct lookups: the index of its pick (best observed reward)
    and how many distinct architectures it looked up (fewer if its proposals kept snapping
    to ones already seen)."""
    import optuna

    from efficientnet_search.search.nas.algorithms import SCORE_ATTR, make_sampler

    sampler = make_sampler(algorithm, space, seed=repeat, population=min(10, budget),
                           sample_size=min(3, budget))  # fmt: skip
    directions = ["maximize", "minimize"] if algorithm == "nsga2" else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=sampler)
    seen: dict[int, float] = {}
    for _ in range(PROPOSALS_PER_LOOKUP * budget):
        if len(seen) == budget:
            break
        trial = study.ask(space.distributions)
        i = nearest(table, trial.params)
        seen.setdefault(i, float(rewards[i, repeat % rewards.shape[1]]))
        trial.set_user_attr(SCORE_ATTR, seen[i])
        study.tell(trial, [seen[i], table[i]["macs"]] if algorithm == "nsga2" else seen[i])
    return max(seen, key=seen.__getitem__), len(seen)


def bootstrap_mean(values: np.ndarray, samples: int = 2000, seed: int = 0) -> tuple:
    """Mean and 95% percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(
        np.percentile(means, 97.5))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def compare(table: list[dict], space, target: float, exponent: float, budgets: list[int],
            repeats: int, algorithms=ALGORITHMS) -> list[dict]:
    """Rows of (algorithm, budget, regret and top-5 rate with intervals)."""
    from efficientnet_search.search.nas.objective import reward

    rewards = np.array([[reward(a, t["macs"], target, exponent) for a in t["accuracy"]]
                        for t in table])  # fmt: skip
    truth = rewards.mean(axis=1)
    top5 = set(np.argsort(-truth)[:5].tolist())
    rows = []
    with quiet():
        for budget in budgets:
            for algorithm in algorithms:
                runs = [search(algorithm, space, table, rewards, budget, r)
                        for r in range(repeats)]  # fmt: skip
                picks, looked = [p for p, _ in runs], [n for _, n in runs]
                regret = 100 * (truth.max() - truth[picks])
                hits = np.array([p in top5 for p in picks], dtype=float)
                rows.append({"algorithm": algorithm, "budget": budget,
                             "regret": bootstrap_mean(regret), "top5": bootstrap_mean(hits),
                             "looked_up": float(np.mean(looked))})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="benchmarks/reference_table_quick.csv")
    parser.add_argument("--config", default="configs/nas/fashion_mnist_quick.yaml")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    from efficientnet_search.search.nas.objective import resolve_objective
    from efficientnet_search.search.nas.run import load_nas_config

    table = read_table(args.table)
    if len(table) < 10 or max(args.budgets) > len(table) or args.repeats < 1:
        print(f"--table {args.table} has {len(table)} complete architectures; budgets "
              f"{args.budgets} must not exceed it (and it needs >= 10) and --repeats >= 1")
        sys.exit(2)
    config = load_nas_config(args.config, [], None)
    objective = resolve_objective(config)
    rows = compare(table, objective.space, objective.target, objective.exponent,
                   args.budgets, args.repeats)  # fmt: skip
    print(f"{len(table)} architectures, {args.repeats} repeats; regret in reward points x 100 "
          "(mean [95% CI]); top-5: share of picks among the table's true top 5")
    print(f"{'budget':>6} {'algorithm':>10} {'looked up':>9} {'regret':>22} {'top-5':>22}")
    for row in rows:
        r, t = row["regret"], row["top5"]
        print(f"{row['budget']:>6} {row['algorithm']:>10} {row['looked_up']:>9.1f} "
              f"{r[0]:>7.2f} [{r[1]:.2f}, {r[2]:.2f}] {t[0]:>7.2f} [{t[1]:.2f}, {t[2]:.2f}]")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"table": args.table, "architectures": len(table),
                       "repeats": args.repeats, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
