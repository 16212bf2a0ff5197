"""The outcome test of the chosen network (search/nas/oneshot/outcome.py, run.retrain_outcome)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import types

import pytest

from efficientnet_search.config import ConfigError
from efficientnet_search.search import stats
from efficientnet_search.search.nas.oneshot import outcome as outcome_lib
from efficientnet_search.search.nas.oneshot.config import OneShotConfig, OneShotSection
from efficientnet_search.search.nas.oneshot.report import outcome_lines

SMOKE = "configs/nas/oneshot_smoke.yaml"
CHOSEN = (0.800, 0.801, 0.802)  # seed SD 0.1 point


BLOCKS = {"c": "r1_k3_s11_e1_i32_o16_se0.25", "b": "r1_k5_s11_e6_i32_o16_se0.25"}


def _record(key: str, macs: int) -> dict:
    return {"key": key, "macs": macs, "blocks": [BLOCKS[key]], "resolution": 32, "score": 0.5}


def _against_baseline(baseline: tuple[float, ...], chosen_macs: int, margin: float = 1.0):
    named = {"chosen": _record("c", chosen_macs), "baseline": _record("b", 1000)}
    return outcome_lib.outcome(named, {"c": CHOSEN, "b": baseline}, margin)


@pytest.mark.parametrize(("baseline", "chosen_macs", "verdict", "reason"), [
    ((0.700, 0.701, 0.702), 1500, outcome_lib.BEATS, ""),  # +10 points, dearer: still beats
    ((0.803, 0.804, 0.805), 500, outcome_lib.NONINFERIOR, ""),  # -0.3 points at half the MACs
    ((0.830, 0.831, 0.832), 500, outcome_lib.NEITHER, "below -1"),  # -3 points: too much lost
    ((0.803, 0.804, 0.805), 1000, outcome_lib.NEITHER, "not at lower measured MACs"),
])
def test_the_verdict_follows_the_interval_the_margin_and_the_macs(baseline, chosen_macs,
                                                                   verdict, reason):
    section = _against_baseline(baseline, chosen_macs)
    comparison = section["comparisons"]["baseline"]
    assert comparison["verdict"] == verdict and reason in comparison["reason"]
    difference = 100 * (sum(CHOSEN) - sum(baseline)) / 3
    # the grid's pooled test: 2 networks x 3 seeds, 4 df, seed SD 0.1 point
    half = 100 * stats.t_quantile(0.975, 4) * 0.001 * math.sqrt(2 / 3)
    assert comparison["difference_points"] == pytest.approx(difference)
    assert comparison["interval_points"] == pytest.approx([difference - half, difference + half])
    assert section["noise"]["df"] == 4 and section["noise"]["std_points"] == pytest.approx(0.1)
    assert comparison["macs_ratio"] == chosen_macs / 1000
    assert f"**{verdict}**" in section["statement"]
    assert "3 seeds a network" in section["statement"]
    assert "margin 1 point, fixed in the config" in section["statement"]


def test_a_wider_margin_admits_a_larger_loss():
    lost = (0.830, 0.831, 0.832)  # -3 points at half the MACs
    assert _against_baseline(lost, 500)["comparisons"]["baseline"]["verdict"] == \
        outcome_lib.NEITHER
    assert _against_baseline(lost, 500, margin=4.0)["comparisons"]["baseline"]["verdict"] == \
        outcome_lib.NONINFERIOR


def test_neither_says_how_many_seeds_the_difference_would_need():
    close = (0.795, 0.799, 0.803)  # chosen +0.2 points at more MACs: not beyond noise yet
    comparison = _against_baseline(close, 1500)["comparisons"]["baseline"]
    assert comparison["verdict"] == outcome_lib.NEITHER
    assert comparison["seeds_needed"] > 3


def test_the_same_network_twice_is_trained_once_and_not_compared_with_itself():
    named = {"chosen": _record("c", 500), "baseline": _record("b", 1000),
             "random_best": _record("c", 500)}  # fmt: skip
    assert [r["key"] for r in outcome_lib.distinct(named)] == ["c", "b"]
    section = outcome_lib.outcome(named, {"c": CHOSEN, "b": (0.7, 0.71, 0.72)}, 1.0)
    assert section["comparisons"]["random_best"] == {"same_network": True, "verdict": None}
    assert section["comparisons"]["baseline"]["verdict"] == outcome_lib.BEATS
    assert "the chosen network **is** random search's best" in section["statement"]


def test_the_report_puts_the_statement_first_or_says_the_test_was_off():
    section = _against_baseline((0.700, 0.701, 0.702), 1500)
    lines = outcome_lines(section)
    assert lines[0].startswith("## Outcome") and lines[2] == section["statement"]
    assert any(line.startswith("| chosen | 1,500 | 0.8000, 0.8010, 0.8020 |") for line in lines)
    assert outcome_lines(None)[2] == outcome_lib.OFF


@pytest.mark.parametrize(("seeds", "margin", "message"), [
    (2, 1.0, "outcome_seeds=2 is too few .* at least 3, or 0 to skip"),
    (-1, 1.0, "outcome_seeds=-1 is too few"),
    (3, 0.0, "noninferiority_margin=0.0 must be in accuracy points, above 0"),
    (3, 100.0, "noninferiority_margin=100.0 must be"),
])
def test_bad_outcome_settings_are_refused(seeds, margin, message):
    with pytest.raises(ConfigError, match=message):
        OneShotSection(outcome_seeds=seeds, noninferiority_margin=margin)


def test_zero_turns_the_test_off_and_three_is_the_default():
    assert OneShotSection(outcome_seeds=0).outcome_seeds == 0
    assert OneShotSection().outcome_seeds == outcome_lib.MIN_OUTCOME_SEEDS == 3


def test_retraining_resumes_from_outcome_csv(tmp_path, monkeypatch):
    from efficientnet_search.search.nas.oneshot import calibration, run

    calls = []

    def fake_training(config, splits, *, seed, **_):
        calls.append((config.blocks, seed))
        return types.SimpleNamespace(epoch_accuracies=(0.5 + 0.1 * len(calls),), seconds=1.0)

    monkeypatch.setattr(calibration, "train_proxy", fake_training)
    named = {"chosen": _record("c", 500), "baseline": _record("b", 1000),
             "random_best": _record("c", 500)}  # fmt: skip
    config = OneShotConfig()
    first = run.retrain_outcome(config, None, tmp_path, named)
    assert len(calls) == 2 * 3  # two distinct networks, 3 seeds each
    with (tmp_path / "outcome.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["key"], r["seed"]) for r in rows) == [
        (k, str(s)) for k in "bc" for s in range(3)]
    again = run.retrain_outcome(config, None, tmp_path, named)
    assert len(calls) == 6 and again == first  # read back: nothing trained twice
    off = OneShotConfig(oneshot=OneShotSection(outcome_seeds=0))
    assert run.retrain_outcome(off, None, tmp_path / "off", named) is None
    assert len(calls) == 6


@pytest.mark.slow
def test_a_tiny_run_retrains_three_seeds_reports_the_outcome_and_resumes(tmp_path):
    from efficientnet_search.jsonio import read_json

    args = [sys.executable, "-m", "efficientnet_search.cli", "oneshot", "--config", SMOKE,
            "--run_dir", str(tmp_path / "run")]
    for item in ("data.source=synthetic", "data.max_train=128", "data.max_val=64",
                 "oneshot.train.epochs=1", "oneshot.train.steps_per_epoch=2",
                 "oneshot.random_trials=6", "oneshot.evolution_trials=0",
                 "oneshot.tpe_trials=0", "oneshot.nsga2_trials=0", "oneshot.population=4",
                 "oneshot.sample_size=2", "proxy.steps_per_epoch=1", "oneshot.bootstrap=20",
                 "oneshot.recalibration_images=64", "oneshot.latency_check=0"):
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    section = read_json(run / "results.json")["outcome"]
    keys = {n["key"] for n in section["networks"].values()}
    with (run / "outcome.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["key"], int(r["seed"])) for r in rows) == sorted(
        (k, s) for k in keys for s in range(3))
    assert all(len(n["accuracies"]) == 3 for n in section["networks"].values())
    report = (run / "report.md").read_text()
    assert section["statement"] in report and section["statement"] in result.stdout
    assert report.index("## Outcome") < report.index("## Does the supernet rank")
    written = (run / "outcome.csv").read_text()
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "outcome.csv").read_text() == written  # nothing trained again
    assert read_json(run / "results.json")["outcome"] == section
