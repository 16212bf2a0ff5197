"""benchmarks/medmnist.py: a config over seeds on a MedMNIST-layout file, beside the
published figures kept in benchmarks/medmnist_published.py."""

from __future__ import annotations

import json

import pytest

from benchmarks import medmnist
from benchmarks.medmnist_published import PUBLISHED, published_for
from tests.medical.test_finetune import SMOKE, TINY, _npz


def test_published_rows_are_found_by_file_name_and_hold_auc_and_accuracy():
    assert published_for("breastmnist.npz") == PUBLISHED["breastmnist"]
    assert published_for("pneumoniamnist_224") == PUBLISHED["pneumoniamnist"]
    assert published_for("my_xrays") == {}
    for rows in PUBLISHED.values():
        assert all(0.5 <= auc <= 1 and 0 < acc <= 1 for auc, acc in rows.values())


@pytest.mark.slow  # one smoke fine-tuning, ~30 s on 2 idle cores
def test_a_run_prints_auc_argmax_and_headline_accuracy_beside_the_published_rows(
        tmp_path, capsys):
    data = _npz(tmp_path / "breastmnist.npz")
    sets = [*TINY, "data.max_val=null", "eval.gradcam_images=0", "eval.bootstrap_resamples=20"]
    medmnist.main([str(data), "--seeds", "0", "--config", str(SMOKE), "--out_dir",
                   str(tmp_path / "runs"), *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr().out
    row = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    results = json.loads((tmp_path / "runs" / "breastmnist_seed0" / "results.json").read_text())
    assert row["auc"] == results["test"]["auc"]
    assert row["argmax_accuracy"] == results["test_at_0.5"]["accuracy"]
    assert row["accuracy"] == results["test"]["accuracy"]
    assert "ResNet-18 (28)" in out and "0.901" in out  # BreastMNIST's published row
