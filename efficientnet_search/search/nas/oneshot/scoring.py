"""Scoring a subnet with the supernet's weights: BN recalibrated, then validation accuracy.

SPOS (Guo et al. 2019, Section 3.3) and OFA (Cai et al. 2020, Section 3.2, 2,000 training
images) recompute batch-norm statistics per subnet before evaluating it: shared weights
trained across subnets carry no statistics that fit any one of them. Here the statistics
come from a fixed training subset (the same images, in the same batches, for every subnet)
and the score is the top-1 accuracy on the validation split, so a subnet always gets the
same score. Scores are cached by the network actually built (`objective.trained_key`:
parameters that round to one network are scored once) and every scored architecture is
appended to a CSV (block strings, resolution, score, multiply-adds, params, activations);
a resumed run reads the CSV back instead of scoring again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.search.nas.objective import trained_key
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, ElasticSpace
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import Images
from efficientnet_search.tables import append_csv_row

CSV_FIELDS = ("number", "key", "resolution", "score", "macs", "params", "activations",
              "blocks", "params_json")  # fmt: skip


def costs(elastic: ElasticSpace, blocks, resolution: int) -> dict[str, int]:
    """Counted costs of the stand-alone network (arch/cost.py: per image, 3 channels)."""
    cost = spec_cost(elastic.spec(blocks, resolution))
    return {"macs": cost.macs, "params": cost.params, "activations": cost.activations}


class Scorer:
    """Scores subnets of `supernet`; caches them and records each in `csv_path`.

    Args:
      supernet: the trained supernet.
      calibration: the fixed BN-recalibration subset (every resolution).
      val: the validation split (every resolution).
      csv_path: where every scored architecture is recorded (read back on resume).
      batch_size: images per inference call.
    """

    def __init__(self, supernet: Supernet, calibration: Images, val: Images,
                 csv_path: str | Path, batch_size: int = 500):
        self.net, self.calibration, self.val = supernet, calibration, val
        self.elastic = supernet.elastic
        self.path, self.batch_size = Path(csv_path), batch_size
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    self.records[row["key"]] = _parsed(row)

    def key(self, params: Mapping[str, Any]) -> str:
        """The built network's identity (resolution included)."""
        return trained_key(self.elastic.spec(self.elastic.blocks(params), params[RESOLUTION]))

    def score(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The record of subnet `params` (scored now, or from the cache)."""
        key = self.key(params)
        if key in self.records:
            return self.records[key]
        return self.add(self.measure(params))

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keeps `record` (from `measure`, here or in a worker process) numbered next and
        appended to the CSV; the one already kept when its network was scored before."""
        if record["key"] in self.records:
            return self.records[record["key"]]
        record = {**record, "number": len(self.records)}
        self.records[record["key"]] = record
        self._append(record)
        return record

    def measure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Scores subnet `params` now (neither cached nor recorded; `add` keeps it)."""
        key = self.key(params)
        resolution = int(params[RESOLUTION])
        blocks = self.elastic.blocks(params)
        choices = self.elastic.encode(blocks, resolution)
        self.net.recalibrate(_batches(self.calibration.by_resolution[resolution],
                                      self.batch_size), choices)  # fmt: skip
        correct = 0
        for images, labels in zip(_batches(self.val.by_resolution[resolution], self.batch_size),
                                  _batches(self.val.labels, self.batch_size), strict=True):
            predicted = np.argmax(self.net.infer(images, choices).numpy(), axis=-1)
            correct += int(np.sum(predicted == labels))
        return {"number": None, "key": key, "resolution": resolution,
                "score": correct / len(self.val), **costs(self.elastic, blocks, resolution),
                "blocks": list(blocks), "choice": dict(params)}  # fmt: skip

    def _append(self, record: dict[str, Any]) -> None:
        append_csv_row(self.path, CSV_FIELDS, {
            **{k: record[k] for k in CSV_FIELDS[:7]}, "blocks": " ".join(record["blocks"]),
            "params_json": json.dumps(record["choice"], sort_keys=True)})  # fmt: skip


def _parsed(row: Mapping[str, str]) -> dict[str, Any]:
    return {"number": int(row["number"]), "key": row["key"],
            "resolution": int(row["resolution"]), "score": float(row["score"]),
            "macs": int(row["macs"]), "params": int(row["params"]),
            "activations": int(row["activations"]), "blocks": row["blocks"].split(" "),
            "choice": json.loads(row["params_json"])}  # fmt: skip


def _batches(array: np.ndarray, size: int):
    return [array[i:i + size] for i in range(0, len(array), size)]
