"""report.md and plots regenerated from a run directory's results.json."""

from __future__ import annotations

import argparse
import json

import pytest

from efficientnet_search import report
from efficientnet_search.search import results


def _run_dir(tmp_path, accuracies):
    records = []
    for number, (key, kind, values) in enumerate(accuracies):
        alpha, beta, gamma = (float(part[1:]) for part in key.split("_"))
        for seed, value in enumerate(values):
            records.append({
                "number": number * 10 + seed, "candidate": key, "kind": kind, "alpha": alpha,
                "beta": beta, "gamma": gamma, "seed": seed, "state": "COMPLETE",
                "val_accuracy": value, "epoch_accuracies": [value - 0.1, value], "epochs": 2,
                "curve": [[0.5, value - 0.2], [1, value - 0.1], [1.5, value], [2, value]],
                "macs_ratio": 2.0 + 0.1 * number, "nominal_cost": alpha * beta**2 * gamma**2,
                "params": 1000, "seconds": 3.0, "rss_mb": 500.0,
            })  # fmt: skip
    records.append({**records[0], "number": 99, "state": "FAIL", "val_accuracy": None,
                    "epoch_accuracies": [], "curve": [], "epochs": 0,
                    "error": "NonFiniteLossError: nan"})
    payload = results.to_json(results.summarize(records), records)
    (tmp_path / "results.json").write_text(json.dumps(payload))
    (tmp_path / "config.yaml").write_text("name: handmade\n")
    return payload


def test_report_regenerates_markdown_and_plots(tmp_path, capsys):
    _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "compound", [0.80, 0.81]),
                        ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71]),
                        ("a1.0_b1.0_g1.41", "resolution", [0.805, 0.80])])  # fmt: skip
    report.main(argparse.Namespace(run_dir=str(tmp_path)))
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Grid search: handmade")
    assert "indistinguishable" in text  # the two close candidates tie
    assert "| a2.0_b1.0_g1.0 | depth |" in text
    assert "NonFiniteLossError" in text and "Pooled seed std" in text
    for name in ("accuracy_vs_macs.png", "beta_gamma_plane.png", "learning_curves.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
        assert f"plots/{name}" in text
    assert "report:" in capsys.readouterr().out


def test_report_without_results_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.json.*run a grid search first"):
        report.main(argparse.Namespace(run_dir=str(tmp_path)))
