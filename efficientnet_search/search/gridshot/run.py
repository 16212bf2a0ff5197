"""The scaling grid scored from a supernet, its best points then trained stand-alone.

    efficientnet-search gridshot --config configs/grid/gridshot_smoke.yaml \\
        --run_dir runs/gridshot_smoke [--workers 2] [--storage URL] [--seed 0]

1. Every point of the grid's box at the supernet's step (the paper's 0.05) within the grid's
   cost constraint (`candidates`: measured cost within tolerance of the target, grid/plan.py
   `admit`), plus the single-dimension points and the paper's point, is checked to be a
   subnet of the supernet's largest (space.py); one that is not fails with one line before
   anything is written.
2. One supernet over those points (oneshot's, on the grid's training split) is trained with
   the sandwich rule (RUN/supernet/, resumed), and every point is scored after BN
   recalibration on the grid's validation split (RUN/scored.csv per network,
   RUN/grid_scores.csv per point).
3. The best-scored networks, more spread over the ranking, and the grid's references train
   stand-alone through the grid's own queue and study (RUN/standalone/: exactly once,
   resumable, `--workers`, `--storage`), with the grid's seeds and report.
4. RUN/results.json and RUN/report.md put supernet scores beside stand-alone accuracy, with
   Spearman/Kendall against MACs and params alone (oneshot/ranking.py) and whether the
   supernet's best point is in the stand-alone grid's best set.

Re-running the same command resumes every step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.search.grid import costs, plan
from efficientnet_search.search.grid import run as grid_run
from efficientnet_search.search.gridshot import report as report_lib
from efficientnet_search.search.gridshot import scores as scores_lib
from efficientnet_search.search.gridshot.config import GridshotConfig, load_gridshot_config
from efficientnet_search.search.gridshot.space import build_scaling_space, check_covered
from efficientnet_search.search.nas.oneshot import ranking
from efficientnet_search.search.trials import storage as storage_lib

STANDALONE = "standalone"


def check(config: GridshotConfig, num_classes: int = 10):
    """(space, points to score, cost meter, notes); raises ConfigError on a point the
    supernet does not hold or a cost constraint that admits none."""
    meter = costs.CostMeter(config.proxy, config.candidates.latency, config.data.batch_size)
    points, notes = plan.admit(config.scored_grid(), meter)
    space = build_scaling_space(config.proxy, [(c.alpha, c.beta, c.gamma) for c in points],
                                high=config.supernet.largest, num_classes=num_classes,
                                sample_by=config.supernet.sample_by)
    check_covered(space, points)
    return space, points, meter, notes


@dataclasses.dataclass(frozen=True)
class TrainedSupernet:
    """A config's supernet, trained, and what scores its points.

    Attributes:
      space: the supernet's elastic space (space.py).
      points: the grid points to score, in the grid's order.
      meter: the grid's cost meter (measured cost ratios).
      notes: the cost constraint's notes (`plan.admit`).
      scorer: scores subnets (BN recalibrated; cached in RUN/scored.csv).
      losses: this call's sandwich-step losses (none when the checkpoint was complete).
      resumed_at: the step training resumed at (0: trained from scratch).
    """

    space: Any
    points: tuple
    meter: Any
    notes: Any
    scorer: Any
    losses: list[float]
    resumed_at: int


def train_supernet(config: GridshotConfig, run_dir: str | Path) -> TrainedSupernet:
    """Trains (or resumes) the supernet of `config` in `run_dir` (config.yaml, supernet/) on
    the grid's training split, and returns it with a scorer over the grid's validation split
    (RUN/scored.csv). Shared by `run_gridshot` and benchmarks/gridshot_ablation.py."""
    from efficientnet_search.search.grid import worker
    from efficientnet_search.search.nas.oneshot.prepare import images, subset
    from efficientnet_search.search.nas.oneshot.scoring import Scorer
    from efficientnet_search.search.nas.oneshot.supernet import Supernet
    from efficientnet_search.search.nas.oneshot.train import SandwichTrainer
    from efficientnet_search.search.proxy.trainer import configure_threads

    run_dir, section = Path(run_dir), config.supernet
    configure_threads(section.threads)
    splits = worker.load_data(config.grid())  # the grid's own split (search.seed)
    space, points, meter, notes = check(config, splits.num_classes)
    config_lib.save_config(config, run_dir)
    logging.info("gridshot %s: %d grid points at step %g, %d resolutions, largest subnet "
                 "a%g_b%g_g%g", config.name, len(points), section.step,
                 len(space.resolutions), *space.high)  # fmt: skip
    train, val = images(splits.train, space.resolutions), images(splits.val, space.resolutions)
    net = Supernet(space, channels=train.by_resolution[space.resolutions[0]].shape[-1],
                   mode=section.train.mode, seed=section.seed)  # fmt: skip
    trainer = SandwichTrainer(net, train, section.train, config.data.batch_size, section.seed,
                              run_dir / "supernet")  # fmt: skip
    resumed_at = int(trainer.step)
    losses = trainer.fit()
    calib = np.sort(np.random.default_rng(section.seed).permutation(len(train))[
        :section.recalibration_images])
    scorer = Scorer(net, subset(train, calib), subset(val, slice(0, section.score_images)),
                    run_dir / "scored.csv")  # fmt: skip
    return TrainedSupernet(space, tuple(points), meter, notes, scorer, losses, resumed_at)


def run_gridshot(config: GridshotConfig, run_dir: str | Path, *, storage: str | None = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Runs (or resumes) the gridshot of `config` in `run_dir`; returns results.json's
    payload."""
    run_dir, section, start = Path(run_dir), config.supernet, time.perf_counter()
    check(config)  # bad input fails before anything is read or written
    storage_lib.check_storage(storage)
    supernet = train_supernet(config, run_dir)
    trained = time.perf_counter()
    rows = scores_lib.score_points(supernet.points, supernet.space, supernet.scorer,
                                   supernet.meter, config.candidates.cost)  # fmt: skip
    scores_lib.write_rows(rows, run_dir / "grid_scores.csv")
    scored = time.perf_counter()
    points, meter, notes, losses = supernet.points, supernet.meter, supernet.notes, supernet.losses
    resumed_at = supernet.resumed_at
    del supernet  # the stand-alone workers need the memory
    chosen = scores_lib.standalone_set(rows, section.top, section.spread, points)
    grid = config.grid(study_name=config.search.study_name or _study(config, chosen))
    table = plan.CandidatePlan(tuple(chosen), {c.key: meter.record(
        c.alpha, c.beta, c.gamma, config.candidates.cost) for c in chosen}, notes)
    (run_dir / STANDALONE).mkdir(exist_ok=True)
    plan.store_plan(grid, table, run_dir / STANDALONE)  # the grid trains exactly these
    result = grid_run.run_grid_search(grid, run_dir=run_dir / STANDALONE, storage=storage,
                                      workers=workers)  # fmt: skip
    payload = summarize(config, rows, result.results, losses)
    payload["seconds"] = {"supernet": round(trained - start, 1),
                          "scoring": round(scored - trained, 1),
                          "standalone": round(time.perf_counter() - scored, 1),
                          "resumed_at_step": resumed_at}  # > 0: earlier invocations not counted
    write_json(run_dir / "results.json", payload)
    report_lib.write_report(run_dir / "report.md", payload)
    print(payload["verdict"])
    print(f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.md'}")
    return payload


def summarize(config: GridshotConfig, rows: list[dict[str, Any]], grid: dict[str, Any],
              losses: list[float]) -> dict[str, Any]:
    """The comparison of supernet scores with the stand-alone grid's results."""
    by_key = {r["key"]: r for r in rows}
    both = [{**by_key[c["key"]], "standalone": c["accuracies"], "mean": c["mean"]}
            for c in grid["candidates"] if c["key"] in by_key and c.get("accuracies")]
    best = min(rows, key=lambda r: (r["rank"], r["network"], r["key"]))
    trained_best = [r for r in both if r["network"] == best["network"]]
    best_set = grid.get("best_set") or []  # none with one seed: no noise to tie within
    in_best_set = bool(trained_best) and trained_best[0]["key"] in best_set
    out: dict[str, Any] = {
        "kind": "grid", "method": "gridshot", "points": len(rows),
        "networks": len({r["network"] for r in rows}), "step": config.supernet.step,
        "cost": config.candidates.cost,
        "cost_ratio": [min(r["cost_ratio"] for r in rows), max(r["cost_ratio"] for r in rows)],
        "supernet_best": {k: best[k] for k in ("key", "score", "cost_ratio", "network")},
        "standalone_best_set": best_set,
        "best_in_best_set": in_best_set, "standalone": both,
        "supernet_loss": {"first": losses[0] if losses else None,
                          "last": losses[-1] if losses else None, "steps": len(losses)},
    }  # fmt: skip
    truth = [r["mean"] for r in both]
    if len(both) >= ranking.MIN_POINTS:
        comparison = ranking.compare(truth, {
            "supernet": [r["score"] for r in both], "macs": [r["macs"] for r in both],
            "params": [r["params"] for r in both]}, samples=config.supernet.bootstrap,
            seed=config.supernet.seed)  # fmt: skip
        if all(len(r["standalone"]) >= 2 for r in both):  # the ceiling: seed 0 vs seed 1
            first, second = ([r["standalone"][s] for r in both] for s in (0, 1))
            comparison["seed_to_seed"] = {
                "spearman": ranking.spearman(first, second),
                "spearman_ci": ranking.bootstrap(first, second, ranking.spearman,
                                                 samples=config.supernet.bootstrap)}
        out["ranking"] = comparison
    out["verdict"] = _verdict(out)
    return out


def _verdict(out: dict[str, Any]) -> str:
    best = out["supernet_best"]
    text = (f"{out['points']} grid points at step {out['step']:g} ({out['networks']} distinct "
            f"networks) scored by the supernet; its best, {best['key']} (score "
            f"{best['score']:.4f}), ")
    if out["standalone_best_set"]:
        text += (f"is {'' if out['best_in_best_set'] else 'not '}in the stand-alone grid's "
                 f"best set ({', '.join(out['standalone_best_set'])}).")
    else:
        text += "cannot be checked against a best set: one seed gives no seed noise."
    comparison = out.get("ranking")
    if not comparison:
        return text + (f" Only {len(out['standalone'])} points trained stand-alone: too few "
                       "for a rank correlation (raise supernet.top or supernet.spread).")
    gain = comparison["supernet_minus_cost"]
    rho = comparison["predictors"]["supernet"]["spearman"]
    text += (f" Over {comparison['n']} points trained stand-alone, Spearman(supernet, "
             f"stand-alone mean) {rho:.2f}; minus the best of MACs/params alone "
             f"{gain['gain']:.2f} [{gain['ci'][0]:.2f}, {gain['ci'][1]:.2f}]: "
             f"{'a finding' if gain['finding'] else 'not a finding'}.")
    given = comparison.get("supernet_given_cost")
    return text + (f" {ranking.given_cost_sentence(given)}" if given else "")


def _study(config: GridshotConfig, chosen) -> str:
    """The stand-alone study: the grid's config and the chosen points (another choice is
    another study, also in a shared storage)."""
    data = {"config": config_lib.to_dict(config.grid()), "points": [c.key for c in chosen]}
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"gridshot-{config.name}-{digest}"


def main(args) -> None:
    """CLI entry: `efficientnet-search gridshot` (see the module docstring)."""
    config = load_gridshot_config(args.config, list(args.set or []), getattr(args, "seed", None))
    run_gridshot(config, args.run_dir or str(Path("runs") / config.name),
                  storage=getattr(args, "storage", None), workers=getattr(args, "workers", None))

