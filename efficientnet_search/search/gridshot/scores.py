"""Every grid point's supernet score in one table, and the points trained stand-alone.

Many grid points build one network (channels round to 8, repeats round up, sides are
integers), so the supernet scores each network once (`oneshot.scoring.Scorer`, cached in
RUN/scored.csv) and RUN/grid_scores.csv lists every point beside its network's score and
its measured cost, in the grid's deterministic order. The stand-alone set is chosen from
distinct networks: the `top` best-scored, `spread` more evenly spaced over the rest of the
score ranking, and the grid's references (the paper's point and the single-dimension
points, which the grid always trains).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from efficientnet_search.arch.scaling import Candidate

FIELDS = ("key", "kind", "alpha", "beta", "gamma", "resolution", "score", "rank", "macs",
          "params", "activations", "cost_ratio", "network")  # fmt: skip
REFERENCE_KINDS = ("paper", "depth", "width", "resolution")


def score_points(candidates: Sequence[Candidate], space, scorer, meter,
                 cost: str) -> list[dict[str, Any]]:
    """One row per grid point: its network's supernet score and rank (1: best of the
    distinct networks; ties share the better rank), costs and `cost`'s measured ratio."""
    rows = []
    for c in candidates:
        record = scorer.score(space.params((c.alpha, c.beta, c.gamma)))
        rows.append({"key": c.key, "kind": c.kind, "alpha": c.alpha, "beta": c.beta,
                     "gamma": c.gamma, "resolution": record["resolution"],
                     "score": record["score"], "macs": record["macs"],
                     "params": record["params"], "activations": record["activations"],
                     "cost_ratio": meter.ratio(c.alpha, c.beta, c.gamma, cost),
                     "network": record["key"]})  # fmt: skip
    scores = sorted({r["network"]: r["score"] for r in rows}.values(), reverse=True)
    for row in rows:
        row["rank"] = scores.index(row["score"]) + 1
    return rows


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Writes grid_scores.csv (rewritten whole: the rows depend only on the scores)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in FIELDS} for row in rows)
    return path


def standalone_set(rows: Sequence[dict[str, Any]], top: int, spread: int,
                   candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates to train stand-alone, one per distinct network (see the module
    docstring), in the grid's order. A network's point is its reference point if it has one
    (the grid's rule in `plan.distinct_architectures`), else its first grid point."""
    by_key = {c.key: c for c in candidates}
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:  # a network's reference point replaces a compound twin
        held = chosen.get(row["network"])
        if held is None or (row["kind"] in REFERENCE_KINDS
                            and held["kind"] not in REFERENCE_KINDS):  # fmt: skip
            chosen[row["network"]] = row
    ranked = sorted(chosen.values(), key=lambda r: (-r["score"], r["network"]))
    picks = ranked[:top]
    rest = ranked[top:]
    if spread and rest:
        index = np.unique(np.round(np.linspace(0, len(rest) - 1, min(spread, len(rest)))))
        picks += [rest[int(i)] for i in index]
    picks += [r for r in ranked if r["kind"] in REFERENCE_KINDS]
    keys = {r["key"] for r in picks}
    return [by_key[r["key"]] for r in rows if r["key"] in keys and r["key"] in by_key
            and chosen[r["network"]] is r]  # fmt: skip
