"""A grid's results.json and trials.csv (search/grid/results.py) and halving's promotion
(search/grid/rungs.py), from plain trial records."""

from __future__ import annotations

import csv

from efficientnet_search.search import stats
from efficientnet_search.search.grid import results, rungs
from tests.search.test_stats import _records


def test_results_json_and_trials_csv(tmp_path):
    records = _records({"a1_b1_g1": [0.8, 0.82], "a2_b1_g1": [0.7, 0.72]})
    payload = results.to_json(stats.summarize(records), records)
    assert set(payload["best"]) >= {"alpha", "beta", "gamma", "val_accuracy_mean",
                                    "val_accuracy_std"}  # fmt: skip
    assert len(payload["trials"]) == 4
    path = results.write_trials_csv(records, tmp_path / "trials.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 4 and rows[0]["candidate"] == "a1_b1_g1"


def test_halving_promotes_the_best_third_by_mean_and_skips_failed_candidates():
    records = _records({"a1_b1_g1": [0.5, 0.7], "a2_b1_g1": [0.65, 0.64],
                        "a1_b2_g1": [0.3, 0.2], "a1_b1_g2": [0.9, 0.1]})  # fmt: skip
    records += _records({"a3_b1_g1": [0.99]}, state="FAIL")
    assert rungs.promoted(records, 3) == ["a2_b1_g1", "a1_b1_g1"]  # ceil(4 / 3) = 2
    assert rungs.promoted(records, 4) == ["a2_b1_g1"]
    assert rungs.promoted([], 3) == []
