"""The honesty check: a few scored architectures, spread over cost, trained stand-alone.

Supernet scores can rank poorly (EPS, Yu et al. 2020) and lean toward model size (Ning et
al. 2020), so every run trains a calibration set stand-alone with the proxy's own recipe
(`proxy.trainer.train_proxy`, what the multi-trial search trains) and compares rankings:
supernet score, multiply-adds alone and params alone against stand-alone accuracy
(`ranking.compare`). The set is spread evenly over the scored architectures' multiply-adds
(the cheapest and the dearest included). Each training is appended to `calibration.csv`, so
a resumed run trains only what is missing.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.proxy.config import ProxyConfig
from efficientnet_search.search.proxy.trainer import train_proxy
from efficientnet_search.tables import append_csv_row

FIELDS = ("key", "seed", "accuracy", "seconds")


def spread_over_cost(records: Sequence[Mapping[str, Any]], size: int,
                     measure: str = "macs") -> list[Mapping[str, Any]]:
    """`size` distinct records at evenly spaced ranks of `measure` (fewer if fewer exist)."""
    ordered = sorted(records, key=lambda r: (r[measure], r["key"]))
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, size)).astype(int))
    return [ordered[i] for i in picks]


def train_standalone(records: Sequence[Mapping[str, Any]], proxy: ProxyConfig, splits,
                     data: DataConfig, seeds: int, path: str | Path,
                     label: str = "calibration", first_seed: int = 0) -> dict[str, list[float]]:
    """Stand-alone accuracies per record key (one per seed: `first_seed`, `first_seed + 1`,
    ...), trained or read from `path` (`label` names the trainings in the log: the
    calibration set, the outcome test; a later first seed gives a confirmation its fresh
    seeds)."""
    path = Path(path)
    done: dict[tuple[str, int], float] = {}
    if path.exists():
        with path.open(newline="") as handle:
            done = {(r["key"], int(r["seed"])): float(r["accuracy"])
                    for r in csv.DictReader(handle)}  # fmt: skip
    for i, record in enumerate(records):
        config = dataclasses.replace(proxy, blocks=tuple(record["blocks"]),
                                     base_resolution=int(record["resolution"]))  # fmt: skip
        for seed in range(first_seed, first_seed + seeds):
            if (record["key"], seed) in done:
                continue
            result = train_proxy(config, splits, alpha=1.0, beta=1.0, gamma=1.0, seed=seed,
                                 data=data)  # fmt: skip
            done[(record["key"], seed)] = result.epoch_accuracies[-1]
            logging.info("%s %d/%d seed %d: %.4f stand-alone (supernet %.4f), %.0f s",
                         label, i + 1, len(records), seed, result.epoch_accuracies[-1],
                         record["score"], result.seconds)  # fmt: skip
            _append(path, {"key": record["key"], "seed": seed,
                           "accuracy": result.epoch_accuracies[-1],
                           "seconds": round(result.seconds, 2)})  # fmt: skip
    return {r["key"]: [done[(r["key"], s)] for s in range(first_seed, first_seed + seeds)]
            for r in records}  # fmt: skip


def _append(path: Path, row: dict) -> None:
    append_csv_row(path, FIELDS, row)
