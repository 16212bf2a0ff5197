"""What the grid trains: candidates, de-duplication by built architecture, the queued points,
the study's name and pruner, and its rungs. Every worker computes the same plan from the config.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import optuna
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.arch.scaling import Candidate, grid_candidates
from efficientnet_search.search import rungs as rungs_lib
from efficientnet_search.search import study as study_lib
from efficientnet_search.search.config import CandidatesConfig, GridConfig, SearchConfig
from efficientnet_search.search.proxy import ProxyConfig


def enumerate_candidates(config: CandidatesConfig) -> tuple[Candidate, ...]:
    """The deterministic candidate list; single-dimension points replace equal grid points."""
    grid = grid_candidates(
        alpha_range=config.alpha_range, beta_range=config.beta_range,
        gamma_range=config.gamma_range, step=config.step, target=config.target,
        tolerance=config.tolerance, include_single_dimension=config.single_dimension,
    )  # fmt: skip
    by_key: dict[str, Candidate] = {}
    for candidate in grid:
        if candidate.key not in by_key or candidate.kind != "compound":
            by_key[candidate.key] = candidate
    if not any(c.kind == "compound" for c in by_key.values()):
        raise config_lib.ConfigError(
            f"the grid admits no candidate: no alpha in {config.alpha_range}, beta in "
            f"{config.beta_range}, gamma in {config.gamma_range} (step {config.step}) has "
            f"|alpha*beta^2*gamma^2 - {config.target}| < tolerance {config.tolerance}; "
            "widen the ranges or the tolerance"
        )
    return tuple(by_key.values())


def distinct_architectures(
    candidates: tuple[Candidate, ...], proxy: ProxyConfig
) -> list[Candidate]:
    """Drops candidates whose proxy model is identical to another's, keeping one of each.

    Channel rounding, ceil of repeats and integer resolutions map nearby coefficients to the
    same network (on the quick proxy, alpha 1.8 and 2.0 both give every stage 1 extra block).
    Training both would spend compute twice and count one model's seed noise twice. The
    single-dimension point is kept where it has a compound twin, as the report needs it.
    """
    kept: dict[tuple, Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.kind == "compound"):
        spec = proxy.spec(candidate.alpha, candidate.beta, candidate.gamma, num_classes=1)
        signature = (spec.scaling.resolution, tuple(b.args for b in spec.planned_blocks()),
                     spec.stem_channels, spec.head_channels)
        if signature in kept:
            logging.info("%s builds the same proxy as %s: trained once", candidate.key,
                         kept[signature].key)
            continue
        kept[signature] = candidate
    survivors = set(map(id, kept.values()))
    return [c for c in candidates if id(c) in survivors]


def grid_points(config: GridConfig) -> list[study_lib.Point]:
    """Every (candidate, seed), seed rounds in order, candidates shuffled (seeded) per round.

    The shuffle spreads early trials over the grid, which pruners and partial results need;
    it depends only on the config, so every worker computes the same list.
    """
    candidates = distinct_architectures(enumerate_candidates(config.candidates), config.proxy)
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
                       "gamma": c.gamma, "seed": seed},
            ))  # fmt: skip
    return points


def study_name(config: GridConfig) -> str:
    """The study shared by workers: the config name and a digest of what changes results."""
    if config.search.study_name:
        return config.search.study_name
    data = config_lib.to_dict(config)
    for runtime in ("workers", "threads", "heartbeat_interval", "grace_period", "confidence",
                    "trials_per_process", "reuse_models", "data_cache", "max_memory_growth",
                    "worker_memory_gb", "validation"):
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


def open_ladder(config: GridConfig, run_dir: Path, storage: str | None) -> rungs_lib.Ladder:
    """Opens (or joins) the study of `config`: its rungs, every grid point queued once."""
    return rungs_lib.open_ladder(
        grid_points(config), budgets(config), config.search.pruner_reduction_factor,
        study_lib.storage_url(storage, run_dir), study_name(config),
        pruner=make_pruner(config.search, config.proxy),
        heartbeat_interval=config.search.heartbeat_interval,
        grace_period=config.search.grace_period,
    )  # fmt: skip
