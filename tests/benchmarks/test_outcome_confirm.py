"""benchmarks/outcome_confirm.py: a finished run's outcome test judged again on fresh seeds
only, resumed, and the run's own files left as they were."""

from __future__ import annotations

import csv
import json
import types

import pytest

from benchmarks import outcome_confirm
from efficientnet_search.config import save_config
from efficientnet_search.search.nas.oneshot import calibration
from efficientnet_search.search.nas.oneshot import outcome as outcome_lib
from efficientnet_search.search.nas.oneshot.run import load_oneshot_config
from tests.paths import CONFIGS

BLOCKS = {"c": "r1_k3_s11_e1_i32_o16_se0.25", "b": "r1_k5_s11_e6_i32_o16_se0.25"}
# the fresh seeds tell another story than the run's: the chosen network 5 points better
FRESH = {BLOCKS["c"]: 0.85, BLOCKS["b"]: 0.80}


def _record(key: str, macs: int) -> dict:
    return {"key": key, "macs": macs, "blocks": [BLOCKS[key]], "resolution": 32, "score": 0.5}


def _finished_run(tmp_path, outcome: bool = True):
    run = tmp_path / "run"
    config = load_oneshot_config(str(CONFIGS / "nas" / "oneshot_smoke.yaml"),
                                 ["data.source=synthetic", "data.max_train=64",
                                  "data.max_val=32"], None)  # fmt: skip
    save_config(config, run)
    named = {"chosen": _record("c", 500), "baseline": _record("b", 1000),
             "random_best": _record("c", 500)}  # fmt: skip
    results = {name: {"score": 0.5} for name in named}
    if outcome:  # the run's own seeds 0-2: the two networks tie
        results["outcome"] = outcome_lib.outcome(
            named, {"c": (0.80, 0.81, 0.79), "b": (0.80, 0.79, 0.81)}, 1.0)
    (run / "results.json").write_text(json.dumps(results))
    return run


def _fake(calls):
    def training(config, splits, *, seed, **_):
        calls.append((config.blocks[0], seed))
        accuracy = FRESH[config.blocks[0]] + 0.001 * (seed % 3)
        return types.SimpleNamespace(epoch_accuracies=(accuracy,), seconds=1.0)
    return training


def test_fresh_seeds_are_trained_judged_alone_and_resumed(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(calibration, "train_proxy", _fake(calls))
    run = _finished_run(tmp_path)
    results_before = (run / "results.json").read_text()
    outcome_confirm.main(["--run_dir", str(run), "--seeds", "4"])
    # two distinct networks (chosen is also random's best), seeds 3-6: after the run's 0-2
    assert sorted(calls) == sorted((BLOCKS[k], s) for k in "cb" for s in range(3, 7))
    with (run / "outcome_confirm.csv").open(newline="") as handle:
        assert sorted(int(r["seed"]) for r in csv.DictReader(handle)) == [3, 3, 4, 4, 5, 5,
                                                                          6, 6]  # fmt: skip
    confirmed = json.loads((run / "outcome_confirm.json").read_text())
    assert confirmed["fresh_seeds"] == [3, 4, 5, 6] and confirmed["seeds"] == 4
    baseline = confirmed["comparisons"]["baseline"]
    # judged on the fresh seeds alone: +5 points, where the run's own seeds tied
    assert baseline["difference_points"] == pytest.approx(5.0)
    assert baseline["verdict"] == outcome_lib.BEATS
    assert confirmed["comparisons"]["random_best"]["same_network"]
    out = capsys.readouterr().out
    assert "fresh seeds [3, 4, 5, 6]" in out and outcome_lib.BEATS in out
    assert (run / "results.json").read_text() == results_before
    outcome_confirm.main(["--run_dir", str(run), "--seeds", "4"])
    assert len(calls) == 8  # read back: nothing trained twice


@pytest.mark.parametrize(("args", "outcome", "message"), [
    (["--first_seed", "1"], True, "reuses the run's own seeds 0-2"),
    (["--seeds", "2"], True, "needs >= 3 seeds"),
    ([], False, "no outcome test"),
])
def test_bad_requests_exit_2_and_train_nothing(tmp_path, monkeypatch, capsys, args, outcome,
                                               message):
    calls = []
    monkeypatch.setattr(calibration, "train_proxy", _fake(calls))
    run = _finished_run(tmp_path, outcome=outcome)
    with pytest.raises(SystemExit) as exit_:
        outcome_confirm.main(["--run_dir", str(run), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().out
    assert not calls and not (run / "outcome_confirm.csv").exists()


def test_a_directory_without_results_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        outcome_confirm.main(["--run_dir", str(tmp_path)])
    assert exit_.value.code == 2 and "no results.json" in capsys.readouterr().out
