"""The oneshot command: bad input is one line and exit 2, before anything is written."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from tests.cli_errors import fails_with_one_line

SMOKE = "configs/nas/oneshot_smoke.yaml"


def _oneshot(tmp_path, *sets):
    args = [sys.executable, "-m", "efficientnet_search.cli", "oneshot", "--config", SMOKE,
            "--run_dir", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override, message", [
    ("proxy.blocks=[r1_k3_s11_e1_i32_o16_c1, r2_k3_s22_e6_i16_o24]",
     "Fused-MBConv.*only MBConv stages elastic"),
    ("oneshot.calibration_size=3", "calibration_size=3 is too small for a rank correlation"),
    ("oneshot.latency_check=-1", "oneshot.latency_check must be >= 0"),
    ("oneshot.nsga2_trials=-2", "tpe_trials and nsga2_trials must be >= 0"),
    ("objective.kind=pareto", "objective kind='pareto'.*set objective.kind=reward"),
    ("oneshot.outcome_seeds=2", "outcome_seeds=2 is too few .* at least 3, or 0 to skip"),
    ("oneshot.noninferiority_margin=-1", "noninferiority_margin=-1.0 must be in accuracy "
     "points, above 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, override, message):
    err = fails_with_one_line(["oneshot", "--config", SMOKE, "--run_dir", str(tmp_path / "run"),
                               "--set", override], capsys)  # fmt: skip
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_the_quick_config_asks_for_over_a_thousand_networks():
    # issue 30's target: >= 1,000 distinct architectures scored in the quick run (1,100
    # proposals gave 1,003 distinct; BUILD_NOTES.md, session 20)
    from efficientnet_search.search.nas.oneshot.run import load_oneshot_config

    section = load_oneshot_config("configs/nas/oneshot_quick.yaml", [], None).oneshot
    proposals = (section.random_trials + section.evolution_trials + section.tpe_trials
                 + section.nsga2_trials)  # fmt: skip
    assert proposals >= 1100 and section.random_trials >= 500


@pytest.mark.slow
def test_smoke_run_writes_results_the_grid_reads_and_resumes(tmp_path):
    from efficientnet_search.arch.family import read_baseline
    from efficientnet_search.jsonio import read_json

    small = ["data.source=synthetic", "data.max_train=128", "data.max_val=64",
             "oneshot.train.epochs=1", "oneshot.train.steps_per_epoch=2",
             "oneshot.random_trials=8", "oneshot.evolution_trials=8", "oneshot.population=4",
             "oneshot.sample_size=2", "proxy.steps_per_epoch=1", "oneshot.bootstrap=50",
             "oneshot.recalibration_images=64", "oneshot.tpe_trials=6",
             "oneshot.nsga2_trials=6", "objective.cost=latency", "objective.latency.warmup=1",
             "objective.latency.repeats=3", "oneshot.latency_check=3",
             "oneshot.outcome_seeds=0"]  # the outcome test: test_outcome.py
    result = _oneshot(tmp_path, *small)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    payload = read_json(run / "results.json")
    assert payload["kind"] == "nas" and payload["method"] == "oneshot"
    assert read_baseline(run / "results.json") == tuple(payload["chosen"]["blocks"])
    rows = (run / "scored.csv").read_text().splitlines()
    assert len(rows) - 1 == payload["scored"] >= 5
    assert len(payload["calibration"]["architectures"]) == 5
    report = (run / "report.md").read_text()
    assert "finding" in report and "Within equal-MACs bins (1 bin: 5 architectures)" in report
    assert payload["tpe_best"]["algorithm"] == "tpe"
    assert payload["nsga2_best"]["algorithm"] == "nsga2"
    assert all(math.isfinite(a["synflow"]) for a in payload["calibration"]["architectures"])
    assert "synflow" in payload["calibration"]["ranking"]["within_bins"]["predictors"]
    assert payload["plots"] == ["scores_vs_macs.png", "calibration.png"]
    check = payload["latency_table"]  # latency from the per-block table, the search's cost
    assert len(check["networks"]) == 3 and payload["chosen"]["latency"] > 0
    assert "Latency from a per-block table" in report
    assert payload["outcome"] is None and not (run / "outcome.csv").exists()
    assert "Outcome test off (oneshot.outcome_seeds=0)" in report
    assert all((run / name).stat().st_size > 10_000 for name in payload["plots"])
    calibration = (run / "calibration.csv").read_text()
    again = _oneshot(tmp_path, *small)  # resumes: nothing trained or scored twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "calibration.csv").read_text() == calibration
    assert (run / "scored.csv").read_text().splitlines() == rows
    assert read_json(run / "results.json")["chosen"] == payload["chosen"]
