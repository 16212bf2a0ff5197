"""Which supernet training ranks the scaling grid like stand-alone training? (issue 30)

    python benchmarks/gridshot_ablation.py --run_dir runs/gridshot_quick_lead \\
        --out_dir runs/gridshot_ablation \\
        --setting nodistill:supernet.train.distill=false \\
        --setting epochs9:supernet.train.epochs=9 [--setting NAME:KEY=VALUE ...]

RUN is a finished `efficientnet-search gridshot` run: its stand-alone results are the truth
(RUN/results.json's "standalone" entries, else RUN/standalone/results.json), and it is only
read. Each setting is RUN/config.yaml with its `--set`-style overrides (a NAME given twice
collects both; `NAME:` alone is the run's config unchanged); its supernet trains in
OUT_DIR/NAME/ (gridshot's `train_supernet`: config.yaml, supernet/ checkpoints, scored.csv;
resumed after a kill) and scores only the points RUN trained stand-alone. Nothing is trained
stand-alone here. `summarize` (gridshot's own) compares each setting's scores with the truth:
Spearman and Kendall with bootstrap intervals, the paired gain over the better of MACs and
params alone, the seed-to-seed ceiling, and whether the supernet's best point (of the
trained ones) lies in the stand-alone best set. RUN's own supernet scores (RUN/grid_scores.csv)
are the first row, "run", untrained here.

A finished setting is kept in OUT_DIR/NAME/setting.json and read back on a re-run, so one
setting per command (each under `timeout`) and then one command listing them all prints the
whole table. The table is also written to OUT_DIR/ablation.json.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
RUN_ROW = "run"  # RUN's own supernet, as it was trained


def parse_settings(items: list[str]) -> dict[str, list[str]]:
    """{name: overrides} from `NAME:KEY=VALUE` items, in order; raises ValueError."""
    settings: dict[str, list[str]] = {}
    for item in items:
        name, sep, override = item.partition(":")
        if not sep or not NAME.match(name) or name == RUN_ROW:
            raise ValueError(f"--setting must look like NAME:KEY=VALUE (NAME of letters, "
                             f"digits, _.-, not {RUN_ROW!r}), got {item!r}")  # fmt: skip
        settings.setdefault(name, [])
        if override:
            settings[name].append(override)
    return settings


def read_truth(run: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """RUN's stand-alone results as the grid writes them ({key, accuracies, mean}) and its
    best set; raises ValueError when RUN has none."""
    results = run / "results.json"
    if results.exists():
        payload = json.loads(results.read_text())
        if payload.get("standalone"):
            truth = [{"key": r["key"], "accuracies": r["standalone"], "mean": r["mean"]}
                     for r in payload["standalone"]]  # fmt: skip
            return truth, list(payload.get("standalone_best_set") or [])
    grid = run / "standalone" / "results.json"
    if grid.exists():
        payload = json.loads(grid.read_text())
        truth = [{k: c[k] for k in ("key", "accuracies", "mean")}
                 for c in payload.get("candidates", []) if c.get("accuracies")]  # fmt: skip
        if truth:
            return truth, list(payload.get("best_set") or [])
    raise ValueError(f"--run_dir {run} holds no stand-alone results (results.json's "
                     "'standalone' or standalone/results.json): give a finished gridshot run")


def run_row(run: Path, config, truth, best_set) -> dict[str, Any] | None:
    """RUN's own supernet scores of the truth's points (RUN/grid_scores.csv), compared."""
    from efficientnet_search.search.gridshot.run import summarize

    path = run / "grid_scores.csv"
    if not path.exists():
        return None
    keys = {t["key"] for t in truth}
    with path.open(newline="") as handle:
        rows = [_typed(r) for r in csv.DictReader(handle) if r["key"] in keys]
    payload = json.loads((run / "results.json").read_text()) if (
        run / "results.json").exists() else {}
    loss = payload.get("supernet_loss", {})
    compared = summarize(config, _reranked(rows), _grid(truth, best_set), [])
    compared["supernet_loss"] = {"first": loss.get("first"), "last": loss.get("last")}
    return _row(RUN_ROW, [], compared, loss.get("steps"),
                payload.get("seconds", {}).get("supernet"), None, 0)  # fmt: skip


def run_setting(name: str, overrides: list[str], run: Path, out_dir: Path, truth,
                best_set) -> dict[str, Any]:
    """Trains (or resumes, or reads back) setting `name`'s supernet and compares its scores
    of the truth's points; raises ConfigError on a bad override or a truth point the
    setting's grid does not hold."""
    from efficientnet_search import config as config_lib
    from efficientnet_search.search.gridshot import scores as scores_lib
    from efficientnet_search.search.gridshot.config import load_gridshot_config
    from efficientnet_search.search.gridshot.run import check, summarize, train_supernet

    directory = out_dir / name
    done = directory / "setting.json"
    config = load_gridshot_config(str(run / "config.yaml"), overrides)
    if done.exists():
        row = json.loads(done.read_text())
        if row["overrides"] == overrides:
            return row
        raise config_lib.ConfigError(
            f"{directory} holds setting {name!r} with overrides {row['overrides']}, not "
            f"{overrides}: give the setting another name")  # fmt: skip
    _, points, _, _ = check(config)
    held = {p.key for p in points}
    missing = [t["key"] for t in truth if t["key"] not in held]
    if missing:
        raise config_lib.ConfigError(
            f"setting {name!r} does not score {missing[0]} (and {len(missing) - 1} more) of "
            f"{run}'s stand-alone points: keep the run's candidates and supernet.step")
    start = time.perf_counter()
    supernet = train_supernet(config, directory)
    trained = time.perf_counter()
    keys = {t["key"] for t in truth}
    rows = scores_lib.score_points([p for p in supernet.points if p.key in keys],
                                   supernet.space, supernet.scorer, supernet.meter,
                                   config.candidates.cost)  # fmt: skip
    scores_lib.write_rows(rows, directory / "grid_scores.csv")
    scored = time.perf_counter()
    steps = supernet.resumed_at + len(supernet.losses)
    payload = summarize(config, rows, _grid(truth, best_set), supernet.losses)
    row = _row(name, overrides, payload, steps, round(trained - start, 1),
               round(scored - trained, 1), supernet.resumed_at)  # fmt: skip
    done.write_text(json.dumps(row, indent=1) + "\n")
    del supernet
    gc.collect()
    return row


def _grid(truth, best_set) -> dict[str, Any]:
    """The truth in the shape of the grid's results (what `summarize` reads)."""
    return {"candidates": truth, "best_set": best_set}


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for k in ("alpha", "beta", "gamma", "score", "cost_ratio"):
        out[k] = float(row[k])
    for k in ("resolution", "rank", "macs", "params", "activations"):
        out[k] = int(row[k])
    return out


def _reranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranks within `rows` (1: best network; ties share the better rank), as score_points."""
    scores = sorted({r["network"]: r["score"] for r in rows}.values(), reverse=True)
    return [{**r, "rank": scores.index(r["score"]) + 1} for r in rows]


def _row(name, overrides, payload, steps, train_s, score_s, resumed_at) -> dict[str, Any]:
    comparison = payload["ranking"]
    loss = payload["supernet_loss"]
    return {"setting": name, "overrides": overrides, "steps": steps, "train_seconds": train_s,
            "score_seconds": score_s, "resumed_at": resumed_at,
            "loss_first": loss["first"], "loss_last": loss["last"],
            "n": comparison["n"], "predictors": comparison["predictors"],
            "supernet_minus_cost": comparison["supernet_minus_cost"],
            "seed_to_seed": comparison.get("seed_to_seed"),
            "supernet_best": payload["supernet_best"]["key"],
            "best_in_best_set": payload["best_in_best_set"]}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the settings, then MACs, params and the ceiling."""

    def ci(p, name):
        return f"{p[name]:+.2f} [{p[name + '_ci'][0]:+.2f}, {p[name + '_ci'][1]:+.2f}]"

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    lines = ["| setting | steps | train s | score s | loss last | Spearman | Kendall | "
             "minus best cost | best in best set (its best) |", "|---" * 9 + "|"]
    for r in rows:
        p, gain = r["predictors"]["supernet"], r["supernet_minus_cost"]
        lines.append(
            f"| {r['setting']} | {num(r['steps'], 'd')} | {num(r['train_seconds'], '.0f')}"
            f"{' (resumed)' if r['resumed_at'] else ''} | {num(r['score_seconds'], '.0f')} | "
            f"{num(r['loss_last'], '.2f')} | {ci(p, 'spearman')} | {ci(p, 'kendall')} | "
            f"{gain['gain']:+.2f} [{gain['ci'][0]:+.2f}, {gain['ci'][1]:+.2f}] | "
            f"{'yes' if r['best_in_best_set'] else 'no'} ({r['supernet_best']}) |")
    first = rows[0]
    lines.append("")
    for name in ("macs", "params"):
        p = first["predictors"][name]
        lines.append(f"{name} alone: Spearman {ci(p, 'spearman')}, Kendall {ci(p, 'kendall')}"
                     f" ({first['n']} points)")  # fmt: skip
    ceiling = first["seed_to_seed"]
    if ceiling:
        low, high = ceiling["spearman_ci"]
        lines.append(f"ceiling (stand-alone seed 0 vs seed 1): Spearman "
                     f"{ceiling['spearman']:+.2f} [{low:+.2f}, {high:+.2f}]")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--out_dir", default="runs/gridshot_ablation")
    parser.add_argument("--setting", action="append", default=[],
                        help="NAME:KEY=VALUE (repeat a NAME for more overrides)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
    from efficientnet_search.search.gridshot.config import load_gridshot_config

    run, out_dir = Path(args.run_dir), Path(args.out_dir)
    try:
        settings = parse_settings(args.setting)
        if not (run / "config.yaml").exists():
            raise ValueError(f"--run_dir {run} has no config.yaml: give a finished gridshot run")
        if out_dir.resolve() == run.resolve() or run.resolve() in out_dir.resolve().parents:
            raise ValueError(f"--out_dir {out_dir} lies in --run_dir {run}, which is only read")
        truth, best_set = read_truth(run)
        config = load_gridshot_config(str(run / "config.yaml"), [])
        rows = [r for r in [run_row(run, config, truth, best_set)] if r]
        for name, overrides in settings.items():
            rows.append(run_setting(name, overrides, run, out_dir, truth, best_set))
            print(f"{name}: done", flush=True)
    except ValueError as error:  # ConfigError included
        print(f"error: {error}")
        sys.exit(2)
    if not rows:
        print("nothing to compare: RUN has no grid_scores.csv and no --setting was given")
        sys.exit(2)
    print(table(rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(
        {"run_dir": str(run), "points": len(truth), "best_set": best_set, "settings": rows},
        indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
