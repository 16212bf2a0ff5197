"""benchmarks/accuracy_predictor.py: held-out predictions rank like the scores they learn when
the scores follow the choices, and not when they are noise."""

from __future__ import annotations

import csv
import json
import random

import pytest

from benchmarks import accuracy_predictor

FIELDS = ("score", "macs", "params", "params_json")


def _scored(path, rows=200, signal=True):
    rng = random.Random(0)
    effect = {3: 0.0, 5: 0.02}, {1: 0.0, 4: 0.01, 6: 0.03}
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for _ in range(rows):
            choice = {f"stage{s}_kernel": rng.choice([3, 5]) for s in range(3)}
            choice |= {f"stage{s}_expand": rng.choice([1, 4, 6]) for s in range(3)}
            score = (sum(effect[0][choice[f"stage{s}_kernel"]] + effect[1][choice[
                f"stage{s}_expand"]] for s in range(3)) if signal else 0.0) + rng.gauss(0, 0.003)
            writer.writerow({"score": 0.5 + score, "macs": rng.randint(1, 9) * 1000,
                             "params": rng.randint(1, 9) * 100,
                             "params_json": json.dumps(choice)})  # fmt: skip
    return path


def test_scores_that_follow_the_choices_are_predicted_held_out(tmp_path):
    result = accuracy_predictor.check(_scored(tmp_path / "scored.csv"), folds=5)
    assert result["scored"] == 200 and result["features"] == 3 * 2 + 3 * 3
    ridge = result["predictors"]["ridge"]
    assert ridge["spearman"] > 0.9
    assert ridge["spearman_ci"][0] <= ridge["spearman"] <= ridge["spearman_ci"][1]
    assert abs(result["predictors"]["macs"]["spearman"]) < 0.3  # MACs drawn apart from score


def test_noise_is_not_predicted(tmp_path):
    result = accuracy_predictor.check(_scored(tmp_path / "scored.csv", signal=False), folds=5)
    assert abs(result["predictors"]["ridge"]["spearman"]) < 0.3


def test_too_few_rows_or_no_file_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        accuracy_predictor.main([str(_scored(tmp_path / "small.csv", rows=20))])
    assert exit_.value.code == 2 and "needs at least 50" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        accuracy_predictor.main([str(tmp_path / "missing.csv")])
    assert exit_.value.code == 2
