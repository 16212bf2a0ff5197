"""A model family (phi = 1, 2, ...) from compound-scaling coefficients (Section 3.3, step 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from efficientnet_search.arch.blocks import B0_BLOCKS, BlockArgs, decode_blocks
from efficientnet_search.arch.cost import ModelCost, spec_cost
from efficientnet_search.arch.model import ModelSpec
from efficientnet_search.arch.scaling import (
    PAPER_COEFFICIENTS,
    compound_scaling,
    nominal_cost_ratio,
)
from efficientnet_search.jsonio import read_json

PRESETS: dict[str, dict[str, float]] = {"paper": PAPER_COEFFICIENTS}


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """alpha (depth), beta (width), gamma (resolution) per unit of phi."""

    alpha: float
    beta: float
    gamma: float

    @property
    def cost_ratio(self) -> float:
        return nominal_cost_ratio(self.alpha, self.beta, self.gamma)


@dataclasses.dataclass(frozen=True)
class FamilyMember:
    """One scaled model of the family, with its cost next to the nominal prediction."""

    phi: int
    spec: ModelSpec
    cost: ModelCost
    macs_ratio: float
    nominal_ratio: float


def _run_results(source: str | Path, missing: str) -> tuple[Path, Any]:
    """(path, parsed JSON) of a run's results.json, given as the file or its run directory;
    `missing` is the error when there is none. Unreadable JSON is a ValueError naming it."""
    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(missing)
    return path, read_json(path)


def read_coefficients(source: str | Path) -> Coefficients:
    """Coefficients from a preset name ("paper") or a grid run's results.json (its `best`)."""
    if str(source) in PRESETS:
        return Coefficients(**PRESETS[str(source)])
    path, data = _run_results(source, f"coefficients not found: {str(source)!r}; give a grid "
                                      f"run's results.json or a preset ({', '.join(PRESETS)})")
    best = data.get("best") if isinstance(data, dict) else None
    if not isinstance(best, dict) or not {"alpha", "beta", "gamma"} <= set(best):
        raise ValueError(
            f"{str(path)!r} has no best {{alpha, beta, gamma}}; is it a finished grid run?"
        )
    return Coefficients(float(best["alpha"]), float(best["beta"]), float(best["gamma"]))


def coefficients_caveat(source: str | Path) -> str | None:
    """One sentence when a grid run's `best` is not a finding on its own, else None.

    The family is built from the best candidate by mean, but the grid may have found several
    candidates within seed noise of it (its best set), or judged nothing (one seed). Whoever
    scales from such a result should hear so, and how to separate the tied candidates: the
    verify stage trains them at larger phi. A verify section in the file adds its verdict.
    Presets and files without a best set (written by hand) get None.
    """
    if str(source) in PRESETS:
        return None
    path, data = _run_results(source, f"coefficients not found: {str(source)!r}")
    if not isinstance(data, dict) or "best_set" not in data or not data.get("best"):
        return None
    best, best_set = data["best"], data["best_set"]
    check = f"`efficientnet-search verify --run_dir {path.parent} --phi 2 3`"
    if best_set is None:
        text = (f"{best.get('key', 'the best')} is best by mean of one seed per candidate: seed "
                "noise is unknown, so it is not a finding (rerun the grid with "
                "search.repeats >= 2).")
    elif len(best_set) > 1:
        others = ", ".join(k for k in best_set if k != best.get("key"))
        text = (f"{best.get('key', 'the best')} is best by mean only: the grid could not tell "
                f"it apart from {others} (within seed noise); {check} trains them at larger "
                "phi.")
    else:
        return None
    verify = data.get("verify")
    if isinstance(verify, dict) and verify.get("verdict"):
        text += f" Verify: {verify['verdict']}"
    return text


def read_baseline(source: str | Path) -> tuple[str, ...]:
    """The baseline block strings of a NAS run's results.json (its `chosen` architecture)
    or of a grid run's (the baseline it scaled), or of their run directories.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is neither a NAS nor a grid result, or the NAS chose nothing.
    """
    path, data = _run_results(source, f"blocks_from: {str(source)!r} not found; give a NAS "
                                      "or grid run's results.json")
    if isinstance(data, dict) and data.get("kind") == "nas":
        chosen = data.get("chosen")
        if not isinstance(chosen, dict) or not chosen.get("blocks"):
            raise ValueError(f"blocks_from: the NAS run {str(path)!r} chose no architecture "
                             "(no retrained candidate finished); finish or re-run the search")
        return _checked(chosen["blocks"], path)
    if isinstance(data, dict) and isinstance(data.get("blocks"), list):
        return _checked(data["blocks"], path)  # a grid result names the baseline it scaled
    raise ValueError(f"blocks_from: {str(path)!r} is not a NAS or grid result (it lacks "
                     "'kind: nas' with 'chosen.blocks', and 'blocks'); give the results.json "
                     "of an `efficientnet-search nas` or `grid` run")


def _checked(blocks: Sequence[str], path: Path) -> tuple[str, ...]:
    try:
        decode_blocks(blocks)
    except (TypeError, ValueError) as err:
        raise ValueError(f"blocks_from: {str(path)!r} holds bad block strings: {err}") from None
    return tuple(blocks)


def scale_family(
    coefficients: Coefficients,
    phis: Iterable[int] = range(1, 8),
    *,
    base_resolution: int = 224,
    blocks: Sequence[BlockArgs] = B0_BLOCKS,
    num_classes: int = 1000,
) -> list[FamilyMember]:
    """Specs and costs of the family members, with multiply-adds relative to phi = 0."""
    phis = sorted(set(int(p) for p in phis))
    if not phis or phis[0] < 0:
        raise ValueError(f"phi values must be integers >= 0, got {phis}")

    def spec_for(phi: int) -> ModelSpec:
        scaling = compound_scaling(coefficients.alpha, coefficients.beta, coefficients.gamma,
                                   phi, base_resolution=base_resolution)
        return ModelSpec(scaling=scaling, blocks=tuple(blocks), num_classes=num_classes)

    base_macs = spec_cost(spec_for(0)).macs
    members = []
    for phi in phis:
        spec = spec_for(phi)
        cost = spec_cost(spec)
        members.append(FamilyMember(phi, spec, cost, cost.macs / base_macs,
                                    coefficients.cost_ratio**phi))
    return members
