"""What verify trains: the three families, their members at each phi matched in measured
cost, and the queued (member, seed) points of the verify study (verify.py runs them); and
the budget check's points, the grid's own candidates at k times its epochs (budget.py).

Its own module so that a spawned worker (worker.process_main) can open the verify study
without importing the runner that spawns it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.arch.scaling import PAPER_COEFFICIENTS
from efficientnet_search.jsonio import write_json
from efficientnet_search.search.grid import costs, plan
from efficientnet_search.search.grid import results as results_lib
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.grid.config import GridConfig
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib

SINGLE = ("depth", "width", "resolution")
PLAN_FILE = "verify_plan.json"


def families(results: Mapping[str, Any]) -> dict[str, tuple[float, float, float]]:
    """found (the grid's best by mean), paper, and the best single-dimension candidate that
    is not the found one; a family equal to an earlier one is left out."""
    best = results.get("best")
    if not best:
        raise ValueError("the grid has no completed candidate to verify; finish the grid first")
    singles = [c for c in results["candidates"] if c["kind"] in SINGLE and c["key"] != best["key"]]
    chosen = {"found": (best["alpha"], best["beta"], best["gamma"]),
              "paper": tuple(PAPER_COEFFICIENTS[k] for k in ("alpha", "beta", "gamma"))}
    if singles:
        top = max(singles, key=lambda c: (c["mean"], c["key"]))
        chosen[top["kind"]] = (top["alpha"], top["beta"], top["gamma"])
    unique: dict[str, tuple[float, float, float]] = {}
    for name, coefficients in chosen.items():
        if coefficients not in unique.values():
            unique[name] = coefficients  # type: ignore[assignment]
    return unique


def members(config: GridConfig, fams: Mapping[str, tuple[float, float, float]],
            phis: Sequence[int]) -> list[dict[str, Any]]:
    """Each family's member at each phi, matched in measured cost, with all its measures."""
    cost = "macs" if config.candidates.cost == "nominal" else config.candidates.cost
    meter = costs.CostMeter(config.proxy, config.candidates.latency,
                            config.data.batch_size)
    found = []
    for phi in phis:
        target = config.candidates.target**phi
        for family, (alpha, beta, gamma) in fams.items():
            t, ratio = costs.solve_exponent(meter, (alpha, beta, gamma), cost, target, phi)
            coefficients = (round(alpha**t, 4), round(beta**t, 4), round(gamma**t, 4))
            logging.info("phi=%d %s: t=%.2f, measured %s ratio %.3f (target %.3g)", phi,
                         family, t, cost, ratio, target)  # fmt: skip
            found.append({"phi": phi, "family": family, "exponent": t,
                          "alpha": coefficients[0], "beta": coefficients[1],
                          "gamma": coefficients[2], "target": target,
                          **meter.record(*coefficients, cost)})  # fmt: skip
    return found


def verify_plan(config: GridConfig, results: Mapping[str, Any], phis: Sequence[int],
                run_dir: Path) -> list[dict[str, Any]]:
    """The members, measured once and kept in `run_dir/verify_plan.json` (per phi list)."""
    path = run_dir / PLAN_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    key = ",".join(map(str, phis))
    if key not in stored:
        stored[key] = members(config, families(results), phis)
        write_json(path, stored)
    return stored[key]


def points(config: GridConfig, planned: Sequence[Mapping[str, Any]]) -> list[study_lib.Point]:
    """Every (member, seed) with the grid's seeds."""
    out = []
    for repeat in range(config.search.repeats):
        seed = config.search.seed + repeat
        for m in planned:
            name = f"phi{m['phi']}_{m['family']}"
            out.append(study_lib.Point(
                key=f"{name}_s{seed}",
                params={"alpha": m["alpha"], "beta": m["beta"], "gamma": m["gamma"],
                        "seed": seed},
                attrs={**m, "candidate": name, "kind": m["family"], "seed": seed},
            ))  # fmt: skip
    return out


def open_ladder(config: GridConfig, run_dir: Path, storage: str | None,
                phis: Sequence[int]) -> rungs_lib.Ladder:
    """The verify study (one rung, no pruning) in the grid's storage; with the grid's
    `search.max_repeats` each phi races on its own (search/racing.py)."""
    results = load_results(run_dir)
    planned = verify_plan(config, results, phis, run_dir)
    return rungs_lib.open_ladder(
        points(config, planned), (config.proxy.evaluations,), 2,
        storage_lib.storage_url(storage, run_dir), f"{plan.study_name(config)}-verify",
        pruner=optuna.pruners.NopPruner(), heartbeat_interval=config.search.heartbeat_interval,
        grace_period=config.search.grace_period, race=plan.race_plan(config, group="phi"),
    )  # fmt: skip


def check_factors(factors: Sequence[Any]) -> tuple[float, ...]:
    """The budget check's factors, sorted and unique; each must be a finite number > 0."""
    bad = [f for f in factors if isinstance(f, bool) or not isinstance(f, (int, float))
           or not math.isfinite(f) or f <= 0]  # fmt: skip
    if bad or not factors:
        raise ValueError(
            f"epochs_factor values must be numbers > 0 (2: twice the proxy's epochs), got "
            f"{list(factors)}; e.g. --epochs_factor 2 4"
        )
    return tuple(sorted({float(f) for f in factors}))


def budget_candidates(results: Mapping[str, Any]) -> list[str]:
    """What the budget check retrains: the grid's best set (the best alone when noise was
    unknown) and its single-dimension points, in the grid's order (best first)."""
    best = results.get("best")
    if not best:
        raise ValueError("the grid has no completed candidate to retrain; finish the grid first")
    keep = set(results.get("best_set") or [best["key"]])
    return [c["key"] for c in results["candidates"] if c["key"] in keep or c["kind"] in SINGLE]


def budget_points(config: GridConfig, results: Mapping[str, Any],
                  factor: float) -> list[study_lib.Point]:
    """Every (candidate, seed) of `budget_candidates` with the seeds it completed in the grid
    (the same seeds, so a difference between budgets is the budget's, not luck's), up to the
    grid's first `search.repeats` seeds: racing's extra seeds decide which candidates are
    retrained, not how many times, so the check costs what it costs on an unraced grid
    (measured on the quick grid: 22.5 min on 2 cores, BUILD_NOTES.md, issue 26)."""
    chosen = budget_candidates(results)
    seeds = range(config.search.seed, config.search.seed + config.search.repeats)
    done = [t for t in results["trials"] if t["state"] == "COMPLETE"
            and t["candidate"] in chosen and t["seed"] in seeds]  # fmt: skip
    seen, out = set(), []
    for trial in sorted(done, key=lambda t: (t["seed"], chosen.index(t["candidate"]))):
        if (trial["candidate"], trial["seed"]) in seen:  # a halving's lower rungs
            continue
        seen.add((trial["candidate"], trial["seed"]))
        attrs = {k: trial.get(k) for k in ("candidate", "kind", "alpha", "beta", "gamma", "seed",
                                           "params", "macs", *results_lib.COST_FIELDS)}
        out.append(study_lib.Point(
            key=f"{trial['candidate']}_s{trial['seed']}",
            params={"alpha": trial["alpha"], "beta": trial["beta"], "gamma": trial["gamma"],
                    "seed": trial["seed"]},
            attrs={**{k: v for k, v in attrs.items() if v is not None}, "epochs_factor": factor},
        ))  # fmt: skip
    return out


def budget_passes(config: GridConfig, factor: float) -> int:
    """Validation passes of a run `factor` times the proxy's (at least one)."""
    return max(1, round(factor * config.proxy.evaluations))


def open_budget_ladder(config: GridConfig, run_dir: Path, storage: str | None,
                       factor: float) -> rungs_lib.Ladder:
    """The budget study of `factor` (`<grid study>-budget<factor>`, one rung of
    `budget_passes`, no pruning, no racing) in the grid's storage."""
    results = load_results(run_dir)
    return rungs_lib.open_ladder(
        budget_points(config, results, factor), (budget_passes(config, factor),), 2,
        storage_lib.storage_url(storage, run_dir), f"{plan.study_name(config)}-budget{factor:g}",
        pruner=optuna.pruners.NopPruner(), heartbeat_interval=config.search.heartbeat_interval,
        grace_period=config.search.grace_period,
    )  # fmt: skip


def load_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no results.json in {str(run_dir)!r}: verify needs a finished grid; run "
            f"`efficientnet-search grid --run_dir {run_dir}` there first"
        )
    return json.loads(path.read_text())


def load_run_config(run_dir: Path) -> GridConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no config.yaml in {str(run_dir)!r}; is it a grid run directory?")
    return config_lib.from_dict(GridConfig, yaml.safe_load(path.read_text()))
