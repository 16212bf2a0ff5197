"""What the grid trains: candidates admitted by measured cost, de-duplication by built
architecture, the queued points, the study's name and pruner, and its rungs. Every worker
gets the same plan: computed from the config, measured once, kept in the run directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.arch.scaling import (
    PAPER_COEFFICIENTS,
    Candidate,
    grid_box,
    grid_candidates,
)
from efficientnet_search.jsonio import write_json
from efficientnet_search.search import racing
from efficientnet_search.search.grid import costs
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.grid.config import GridConfig, SearchConfig
from efficientnet_search.search.proxy.config import ProxyConfig
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib

COSTS_FILE = "costs.json"


@dataclasses.dataclass(frozen=True)
class CandidatePlan:
    """The candidates to train, each one's measured costs (trial attributes), and notes on
    single-dimension points that could not reach the target."""

    candidates: tuple[Candidate, ...]
    attrs: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"candidates": [dataclasses.asdict(c) for c in self.candidates],
                "attrs": {k: dict(v) for k, v in self.attrs.items()}, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidatePlan:
        return cls(tuple(Candidate(**c) for c in data["candidates"]), dict(data["attrs"]),
                   tuple(data.get("notes", ())))  # fmt: skip


def enumerate_candidates(config: GridConfig,
                         meter: costs.CostMeter | None = None) -> tuple[Candidate, ...]:
    """The deterministic candidate list (see `admit`), before de-duplication."""
    return admit(config, meter)[0]


def admit(config: GridConfig, meter: costs.CostMeter | None = None
          ) -> tuple[tuple[Candidate, ...], tuple[str, ...]]:
    """The admitted grid points, the single-dimension points and the paper's point; notes.

    With a measured cost (`candidates.cost`: macs, activations, latency) a grid point is
    admitted when its measured ratio to the proxy baseline lies within `tolerance` of
    `target`, and each single-dimension point is the multiplier whose built proxy comes
    closest to the target. With `nominal`, the paper's rule alpha*beta^2*gamma^2 and the
    single-dimension points target, sqrt(target), sqrt(target). The paper's point
    (PAPER_COEFFICIENTS) is always added, as kind "paper": the reference, whatever its cost.
    A single-dimension point or the paper's point replaces a grid point of the same key.
    """
    spec = config.candidates
    if spec.cost == "nominal":
        grid = grid_candidates(
            alpha_range=spec.alpha_range, beta_range=spec.beta_range,
            gamma_range=spec.gamma_range, step=spec.step, target=spec.target,
            tolerance=spec.tolerance, include_single_dimension=spec.single_dimension,
        )  # fmt: skip
        compound = [c for c in grid if c.kind == "compound"]
        singles, notes = [c for c in grid if c.kind != "compound"], ()
    else:
        meter = meter or costs.CostMeter(config.proxy, spec.latency, config.data.batch_size)
        compound = _admitted_by_measure(config, meter)
        singles, notes = _solved_singles(config, meter) if spec.single_dimension else ([], ())
    if not compound:
        raise config_lib.ConfigError(
            f"the grid admits no candidate: no alpha in {spec.alpha_range}, beta in "
            f"{spec.beta_range}, gamma in {spec.gamma_range} (step {spec.step}) has "
            f"|alpha*beta^2*gamma^2 - {spec.target}| < tolerance {spec.tolerance}; "
            "widen the ranges or the tolerance"
        )
    by_key: dict[str, Candidate] = {c.key: c for c in compound}
    for candidate in [*singles, Candidate(**PAPER_COEFFICIENTS, kind="paper")]:
        by_key[candidate.key] = candidate
    return tuple(by_key.values()), tuple(notes)


def _admitted_by_measure(config: GridConfig, meter: costs.CostMeter) -> list[Candidate]:
    spec = config.candidates
    box = grid_box(spec.alpha_range, spec.beta_range, spec.gamma_range, spec.step)
    ratios = [(c.key, meter.ratio(c.alpha, c.beta, c.gamma, spec.cost)) for c in box]
    admitted = [c for c, (_, r) in zip(box, ratios, strict=True)
                if abs(r - spec.target) <= spec.tolerance]  # fmt: skip
    if not admitted:
        key, ratio = costs.closest_miss(ratios, spec.target)
        raise config_lib.ConfigError(
            f"candidates.tolerance={spec.tolerance} admits no grid point at measured "
            f"{spec.cost}: the closest to target {spec.target} is {key} at {ratio:.3f}; raise "
            f"candidates.tolerance to at least {abs(ratio - spec.target) + 5e-4:.3f} or widen "
            "the ranges"
        )
    return admitted


def _solved_singles(config: GridConfig, meter: costs.CostMeter
                    ) -> tuple[list[Candidate], list[str]]:
    spec = config.candidates
    singles, notes = [], []
    for dimension in costs.DIMENSIONS:
        solved = costs.solve_single(meter, dimension, spec.cost, spec.target, spec.tolerance)
        alpha, beta, gamma = solved.coefficients
        singles.append(Candidate(alpha, beta, gamma, dimension))
        logging.info("%s-only point: x%g, measured %s ratio %.3f", dimension,
                     solved.multiplier, spec.cost, solved.ratio)  # fmt: skip
        if not solved.reachable:
            note = costs.unreachable_note(solved, config.proxy, spec.cost, spec.target,
                                          spec.tolerance)  # fmt: skip
            logging.warning("%s", note)
            notes.append(note)
    return singles, notes


def candidate_plan(config: GridConfig, run_dir: Path | None = None) -> CandidatePlan:
    """The candidates (de-duplicated by architecture) with all their measures.

    Measured once per run: the plan is kept in `run_dir/costs.json` under the study's name,
    and every later worker or resume reads it from there, so a latency-admitted grid is the
    same for all of them (a worker on another machine needs that file copied into its run
    directory; otherwise it measures its own machine).
    """
    cache = Path(run_dir) / COSTS_FILE if run_dir else None
    name = study_name(config)
    stored = json.loads(cache.read_text()) if cache and cache.is_file() else {}
    if name in stored:
        return CandidatePlan.from_json(stored[name])
    meter = costs.CostMeter(config.proxy, config.candidates.latency, config.data.batch_size)
    admitted, notes = admit(config, meter)
    candidates = distinct_architectures(admitted, config.proxy)
    attrs = {c.key: meter.record(c.alpha, c.beta, c.gamma, config.candidates.cost)
             for c in candidates}  # fmt: skip
    return CandidatePlan(tuple(candidates), attrs, notes)


def store_plan(config: GridConfig, table: CandidatePlan, run_dir: Path) -> Path:
    """Adds the plan to `run_dir/costs.json` (other studies' plans in it are kept)."""
    path = Path(run_dir) / COSTS_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored.setdefault(study_name(config), table.to_json())
    write_json(path, stored)
    return path


def distinct_architectures(
    candidates: tuple[Candidate, ...] | list[Candidate], proxy: ProxyConfig
) -> list[Candidate]:
    """Drops candidates whose proxy model is identical to another's, keeping one of each.

    Channel rounding, ceil of repeats and integer resolutions map nearby coefficients to the
    same network (on the quick proxy, alpha 1.8 and 2.0 both give every stage 1 extra block).
    Training both would spend compute twice and count one model's seed noise twice. The
    paper's or single-dimension point is kept where it has a compound twin, as the report
    needs it.
    """
    kept: dict[tuple, Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.kind == "compound"):
        spec = proxy.spec(candidate.alpha, candidate.beta, candidate.gamma, num_classes=1)
        key = costs.signature(spec)
        if key in kept:
            logging.info("%s builds the same proxy as %s: trained once", candidate.key,
                         kept[key].key)
            continue
        kept[key] = candidate
    survivors = set(map(id, kept.values()))
    return [c for c in candidates if id(c) in survivors]


def grid_points(config: GridConfig, table: CandidatePlan | None = None) -> list[study_lib.Point]:
    """Every (candidate, seed), seed rounds in order, candidates shuffled (seeded) per round.

    The shuffle spreads early trials over the grid, which pruners and partial results need;
    it depends only on the config, so every worker computes the same list. Each point
    carries its candidate's measured costs (`table`, default: measured now).
    """
    table = table or candidate_plan(config)
    candidates = list(table.candidates)
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
                       "gamma": c.gamma, "seed": seed, **table.attrs.get(c.key, {})},
            ))  # fmt: skip
    return points


def study_name(config: GridConfig) -> str:
    """The study shared by workers: the config name and a digest of what changes results."""
    if config.search.study_name:
        return config.search.study_name
    data = config_lib.to_dict(config)
    data.pop("verify", None)  # what runs after the grid does not change the grid
    # Racing rounds are studies of their own (search/racing.py): the first seeds are the same grid.
    for runtime in ("workers", "threads", "heartbeat_interval", "grace_period", "confidence",
                    "trials_per_process", "reuse_models", "data_cache", "max_memory_growth",
                    "worker_memory_gb", "validation", "max_repeats"):
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


def open_ladder(config: GridConfig, run_dir: Path, storage: str | None,
                table: CandidatePlan | None = None) -> rungs_lib.Ladder:
    """Opens (or joins) the study of `config`: its rungs, every grid point queued once."""
    table = table or candidate_plan(config, run_dir)
    return rungs_lib.open_ladder(
        grid_points(config, table), budgets(config), config.search.pruner_reduction_factor,
        storage_lib.storage_url(storage, run_dir), study_name(config),
        pruner=make_pruner(config.search, config.proxy),
        heartbeat_interval=config.search.heartbeat_interval,
        grace_period=config.search.grace_period, race=race_plan(config),
    )  # fmt: skip


def race_plan(config: GridConfig, group: str | None = None) -> racing.RacePlan:
    """The racing of `config` (no racing unless `search.max_repeats` exceeds `repeats`)."""
    search = config.search
    return racing.RacePlan(search.repeats, search.race_repeats, search.confidence, group)
