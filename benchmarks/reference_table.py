"""The NAS space's reference table: architectures stratified by MACs, each trained
stand-alone with several seeds at one recipe (issue 30, item 7).

    python benchmarks/reference_table.py --config configs/nas/fashion_mnist_quick.yaml \
        --architectures 60 --seeds 2 --out benchmarks/reference_table_quick.csv

The recipe is the NAS config's own (`proxy` and `data`: for fashion_mnist_quick.yaml the
quick NAS proxy, width 0.25, depth 0.5, 32 px, 5k/5k Fashion-MNIST, 2 epochs of Adam 2e-3),
so the table is the truth that proxy's searches chase. How the architectures are chosen:
`--pool` architectures drawn uniformly from the space (`--pick_seed`; duplicates of one
trained network dropped), sorted by multiply-adds and cut into `--architectures` strata of
equal count; one architecture drawn from each. They train in a shuffled order, every seed of
one architecture before the next, so a table cut short is still spread over MACs and every
row pair gives a seed-to-seed point.

`--like TABLE.csv` trains another table's architectures instead (the same arch numbers,
strata and training order) at this call's recipe, so two recipes compare on identical
networks: OUT.json then also gives TABLE's own seed-to-seed Spearman over the same complete
architectures and the Spearman between the two tables' architecture means (does the other
recipe rank the networks alike?).

Resumable: each training is one appended CSV row (arch, seed, accuracy, costs, choices); a
re-run with the same arguments trains only what is missing. Beside the CSV, OUT.json holds
the command, the recipe and the table's own statistics, rewritten after every architecture:
rows, complete architectures, the seed-to-seed Spearman and Kendall (seed 0 against seed 1,
with bootstrap intervals: the ceiling any predictor of this proxy can reach) and the between-
architecture and seed standard deviations. A recipe that differs from the one OUT.json
records exits 2 without training (give a new --out).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ("arch", "stratum", "seed", "accuracy", "seconds", "macs", "params", "activations",
          "resolution", "blocks", "choices")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Pick:
    """One architecture of the table: its stratum of MACs, costs and choices."""

    arch: int  # its position in the training order
    stratum: int  # 0 = cheapest
    blocks: tuple[str, ...]
    choices: dict[str, Any]
    costs: dict[str, Any]


def pick_architectures(config, architectures: int, pool: int, seed: int) -> list[Pick]:
    """`architectures` networks of the space, one per equal-count stratum of MACs, shuffled."""
    from efficientnet_search.search.nas.objective import (
        COST_CLASSES,
        cost_measures,
        proxy_spec,  # fmt: skip
        trained_key,
    )
    from efficientnet_search.search.nas.space import build_space

    space = build_space(config.space, config.proxy.blocks)
    rng = random.Random(seed)
    drawn: dict[str, tuple[dict, tuple[str, ...]]] = {}
    for _ in range(pool):
        choices = space.sample(rng)
        blocks = space.decode(choices)
        drawn.setdefault(trained_key(proxy_spec(config.proxy, blocks, COST_CLASSES)),
                         (choices, blocks))  # fmt: skip
    if len(drawn) < architectures:
        raise ValueError(f"--pool {pool} gave {len(drawn)} distinct networks, fewer than "
                         f"--architectures {architectures}; raise --pool")  # fmt: skip
    measured = sorted(((cost_measures(config.proxy, b), c, b) for c, b in drawn.values()),
                      key=lambda t: (t[0]["macs"], " ".join(t[2])))  # fmt: skip
    strata = np.array_split(np.arange(len(measured)), architectures)
    picks = [(s, measured[int(rng.choice(list(members)))]) for s, members in enumerate(strata)]
    rng.shuffle(picks)
    return [Pick(i, s, blocks, choices, costs)
            for i, (s, (costs, choices, blocks)) in enumerate(picks)]  # fmt: skip


def picks_like(config, table: Path) -> list[Pick]:
    """The architectures of the table at `table`, in its training order, with their costs at
    `config`'s proxy (a changed resolution changes them)."""
    from efficientnet_search.search.nas.objective import cost_measures

    first: dict[int, dict[str, Any]] = {}
    for row in read_rows(table):
        first.setdefault(int(row["arch"]), row)
    if not first:
        raise ValueError(f"--like {table}: no rows; give a table made by this script")
    picks = []
    for arch in sorted(first):
        row = first[arch]
        blocks = tuple(row["blocks"].split(" "))
        picks.append(Pick(arch, int(row["stratum"]), blocks, json.loads(row["choices"]),
                          cost_measures(config.proxy, blocks)))  # fmt: skip
    return picks


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The table's rows so far (none when the file does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def summarize(rows: list[dict[str, Any]], seeds: int, samples: int = 1000) -> dict[str, Any]:
    """The table's own statistics: its size, the seed-to-seed rank correlation (the ceiling)
    and the spreads between architectures and between seeds."""
    from efficientnet_search.search.nas.oneshot.ranking import MIN_POINTS, bootstrap, kendall
    from efficientnet_search.search.stats import spearman

    full = _seed_table(rows, seeds)
    out: dict[str, Any] = {"rows": len(rows), "architectures_complete": len(full),
                           "seeds": seeds}  # fmt: skip
    if seeds < 2 or len(full) < MIN_POINTS:
        out["note"] = f"seed-to-seed statistics need >= {MIN_POINTS} architectures with 2 seeds"
        return out
    table = np.array(list(full.values()))
    first, second = table[:, 0], table[:, 1]
    out.update({
        "seed_to_seed_spearman": spearman(first, second),
        "seed_to_seed_spearman_ci": bootstrap(first, second, spearman, samples=samples),
        "seed_to_seed_kendall": kendall(first, second),
        "seed_to_seed_kendall_ci": bootstrap(first, second, kendall, samples=samples),
        "mean_accuracy": float(table.mean()),
        "between_architecture_sd": float(table.mean(axis=1).std(ddof=1)),
        "seed_sd": float(np.sqrt(table.var(axis=1, ddof=1).mean())),
        "accuracy_range": [float(table.mean(axis=1).min()), float(table.mean(axis=1).max())],
        # A seed's shared effect (its shuffle order, its dropout) moves every architecture
        # alike: it shifts these means without touching the rank correlations above.
        "seed_means": [float(m) for m in table.mean(axis=0)],
        # The seed SD with each seed's shared shift removed: the noise that reorders.
        "seed_sd_within": float(np.sqrt((table - table.mean(axis=0)).var(
            axis=1, ddof=1).mean())),
    })  # fmt: skip
    return out


def compare_with(rows: list[dict[str, Any]], like_rows: list[dict[str, Any]], seeds: int,
                 samples: int = 1000) -> dict[str, Any]:
    """This table beside the `--like` table on the architectures complete in both: the other
    table's seed-to-seed Spearman on them (its ceiling on the same networks) and how alike the
    two tables rank them (Spearman of architecture means), with bootstrap intervals."""
    from efficientnet_search.search.nas.oneshot.ranking import MIN_POINTS, bootstrap
    from efficientnet_search.search.stats import spearman

    mine, theirs = _seed_table(rows, seeds), _seed_table(like_rows, seeds)
    common = sorted(set(mine) & set(theirs))
    out: dict[str, Any] = {"architectures": len(common)}
    if len(common) < MIN_POINTS:
        out["note"] = f"the comparison needs >= {MIN_POINTS} architectures complete in both"
        return out
    other = np.array([theirs[a] for a in common])
    means = np.array([np.mean(mine[a]) for a in common]), other.mean(axis=1)
    out.update({
        "like_seed_to_seed_spearman": spearman(other[:, 0], other[:, 1]),
        "like_seed_to_seed_spearman_ci": bootstrap(other[:, 0], other[:, 1], spearman,
                                                   samples=samples),
        "means_spearman": spearman(*means),
        "means_spearman_ci": bootstrap(*means, spearman, samples=samples),
    })  # fmt: skip
    return out


def _seed_table(rows: list[dict[str, Any]], seeds: int) -> dict[int, list[float]]:
    """Architecture -> its accuracies by seed, for architectures with every seed."""
    by_arch: dict[int, dict[int, float]] = {}
    for row in rows:
        by_arch.setdefault(int(row["arch"]), {})[int(row["seed"])] = float(row["accuracy"])
    return {arch: [accs[s] for s in range(seeds)] for arch, accs in by_arch.items()
            if len(accs) >= seeds}  # fmt: skip


def recipe_of(config, args) -> dict[str, Any]:
    """What makes two tables comparable: the config's proxy and data, and the picking."""
    return {"proxy": dataclasses.asdict(config.proxy), "data": dataclasses.asdict(config.data),
            "space": dataclasses.asdict(config.space), "data_seed": config.search.seed,
            "architectures": args.architectures, "pool": args.pool,
            "pick_seed": args.pick_seed, "seeds": args.seeds,
            **({"like": str(args.like)} if args.like else {})}  # fmt: skip


def build_table(config, args, out: Path, argv: list[str]) -> dict[str, Any]:
    """Trains what is missing of the table at `out`; returns its summary."""
    from efficientnet_search.data import config as data_config
    from efficientnet_search.search.proxy import trainer as proxy

    side = out.with_suffix(".json")
    recipe = json.loads(json.dumps(recipe_of(config, args)))  # tuples as JSON lists
    if side.exists() and json.loads(side.read_text()).get("recipe") != recipe:
        print(f"--out {out} was made with another recipe (see {side}); give a new --out")
        sys.exit(2)
    picks = (picks_like(config, Path(args.like)) if args.like else
             pick_architectures(config, args.architectures, args.pool, args.pick_seed))
    proxy.configure_threads(args.threads)
    done = {(int(r["arch"]), int(r["seed"])) for r in read_rows(out)}
    splits = None
    for pick in picks[: args.limit]:
        for seed in range(args.seeds):
            if (pick.arch, seed) in done:
                continue
            if splits is None:
                splits = data_config.load(config.data, config.search.seed)
            trained = proxy.train_proxy(
                dataclasses.replace(config.proxy, blocks=pick.blocks), splits, alpha=1.0,
                beta=1.0, gamma=1.0, seed=seed, data=config.data)  # fmt: skip
            _append(out, {"arch": pick.arch, "stratum": pick.stratum, "seed": seed,
                          "accuracy": round(trained.epoch_accuracies[-1], 5),
                          "seconds": round(trained.seconds, 1),
                          **{k: pick.costs[k] for k in ("macs", "params", "activations")},
                          "resolution": config.proxy.base_resolution,
                          "blocks": " ".join(pick.blocks),
                          "choices": json.dumps(pick.choices, sort_keys=True)})  # fmt: skip
            print(f"arch {pick.arch + 1}/{len(picks)} (stratum {pick.stratum}) seed {seed}: "
                  f"{trained.epoch_accuracies[-1]:.4f} in {trained.seconds:.0f} s", flush=True)
        _write_side(side, argv, recipe, out, args)
    return _write_side(side, argv, recipe, out, args)


def _write_side(side: Path, argv: list[str], recipe: dict, out: Path, args) -> dict:
    rows = read_rows(out)
    summary = summarize(rows, args.seeds)
    if args.like:
        summary["like"] = compare_with(rows, read_rows(Path(args.like)), args.seeds)
    side.write_text(json.dumps({
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/reference_table.py",
                                                     *argv]),
        "recipe": recipe, "summary": summary,
        "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=1) + "\n")
    return summary


def _append(path: Path, row: dict) -> None:
    from efficientnet_search.tables import append_csv_row

    append_csv_row(path, FIELDS, row)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/nas/fashion_mnist_quick.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides (key=value)")
    parser.add_argument("--architectures", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--pick_seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2,
                        help="TensorFlow CPU threads (0: TensorFlow's default)")
    parser.add_argument("--limit", type=int, default=None,
                        help="train at most this many architectures this call (resume later)")
    parser.add_argument("--like", default=None,
                        help="train this table's architectures instead of picking (CSV)")
    parser.add_argument("--out", default="benchmarks/reference_table_quick.csv")
    args = parser.parse_args(argv)
    if args.like and not Path(args.like).exists():
        print(f"--like {args.like}: no such table; give the CSV of a finished table")
        sys.exit(2)
    if args.architectures < 1 or args.seeds < 1 or args.pool < args.architectures:
        print(f"--architectures {args.architectures}, --seeds {args.seeds} and --pool "
              f"{args.pool} must be >= 1 with pool >= architectures; fix the values")
        sys.exit(2)
    from efficientnet_search.search.nas.run import load_nas_config

    try:
        config = load_nas_config(args.config, args.set, None)
    except (ValueError, FileNotFoundError) as err:
        print(f"{args.config}: {err}")
        sys.exit(2)
    try:
        summary = build_table(config, args, Path(args.out), argv)
    except ValueError as err:
        print(err)
        sys.exit(2)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
