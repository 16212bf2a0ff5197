"""The grid search end to end: outputs, resume after a kill, workers, PostgreSQL, failures."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from efficientnet_search import config as config_lib
from efficientnet_search.search.grid import plan
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.trials import storage as storage_lib
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS

SMOKE = str(CONFIGS / "grid" / "smoke.yaml")
# Even smaller than the smoke config: two stages, two steps, generated data (~seconds a trial).
TINY = [
    "proxy.blocks=[r1_k3_s11_e1_i32_o16_se0.25, r1_k3_s22_e6_i16_o24_se0.25]",
    "proxy.steps_per_epoch=2",
    "data.batch_size=16",
    "data.source=synthetic",
    "data.max_train=64",
    "data.max_val=32",
    "search.heartbeat_interval=2",
    "search.grace_period=10",
    # Latency is timed for every candidate only where a test asks for it (it builds each one).
    "candidates.latency.record=false",
]


def _config(*extra: str) -> grid.GridConfig:
    return grid.load_grid_config(SMOKE, [*TINY, *extra], None)


def _cli(run_dir: Path, *extra: str) -> list[str]:
    sets = [arg for item in TINY for arg in ("--set", item)]
    return [sys.executable, "-m", "efficientnet_search.cli.main", "grid", "--config", SMOKE,
            "--run_dir", str(run_dir), *sets, *extra]  # fmt: skip


def _trials(run_dir: Path, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    config = grid.load_grid_config(SMOKE, TINY, None)
    url = storage_lib.storage_url(storage, run_dir)
    return optuna.load_study(study_name=grid.study_name(config), storage=url).get_trials()


def _assert_each_point_completed_once(trials, points: int = 4) -> None:
    done = [t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == points and len(set(done)) == points


def test_nominal_candidates_are_deterministic_and_single_dimension_points_are_marked():
    config = grid.GridConfig(candidates=grid.CandidatesConfig(step=0.2, tolerance=0.2,
                                                              cost="nominal"))
    first, second = grid.enumerate_candidates(config), grid.enumerate_candidates(config)
    assert first == second
    kinds = {c.key: c.kind for c in first}
    assert kinds["a2.00_b1.00_g1.00"] == "depth"  # the grid point equal to depth-only
    assert kinds["a1.00_b1.41_g1.00"] == "width" and kinds["a1.00_b1.00_g1.41"] == "resolution"
    assert kinds["a1.20_b1.10_g1.15"] == "paper"  # the reference is always there
    assert len(kinds) == len(first) == 10
    points = grid.grid_points(_config("search.repeats=2"))
    again = grid.grid_points(_config("search.repeats=2"))
    assert [p.key for p in points] == [p.key for p in again]
    assert len({p.key for p in points}) == 8 and {p.params["seed"] for p in points} == {0, 1}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("proxy.widht=0.5", "unknown config key proxy.'widht'"),
        ("candidates.tolerance=0.0001", "candidates.tolerance=0.0001 admits no grid point at "
         "measured macs: the closest to target 2.0 is a1.20_b1.10_g1.15 at 1.778; raise "
         "candidates.tolerance to at least 0.223"),
        ("candidates.cost=flops", "candidates.cost must be one of ['nominal', 'macs', "
         "'activations', 'latency'], got 'flops'"),
        ("data.source=imagenet_from_the_moon", "unknown data source 'imagenet_from_the_moon'"),
        ("search.repeats=0", "search.repeats and search.workers must be >= 1"),
        ("search.pruner=halving", "search.pruner"),
        ("search.pruner_reduction_factor=1", "search.pruner_reduction_factor >= 2"),
        ("proxy.evals_per_epoch=0", "proxy.evals_per_epoch must be >= 1"),
    ],
)
def test_bad_configs_fail_with_one_clear_line(tmp_path, capsys, override, message):
    argv = ["grid", "--config", SMOKE, "--run_dir", str(tmp_path), "--set", override]
    assert message in fails_with_one_line(argv, capsys)
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--set", "data.source=npz:MISSING.npz"], "npz file not found: 'MISSING.npz'"),
        (["--set", "data.source=npz:{text}"], "is not an npz archive (it starts b'hello"),
        (["--storage", "bogus://x"], "cannot open the study storage bogus://x"),
        (["--storage", "postgresql://u:pw@127.0.0.1:1/db"],
         "cannot open the study storage postgresql+psycopg2://u:***@127.0.0.1:1/db: "
         "connection to server"),
    ],
)
def test_bad_data_and_storage_fail_before_planning_and_write_nothing(tmp_path, capsys, caplog,
                                                                    flags, message):
    text = tmp_path / "TEXTFILE.npz"
    text.write_text("hello\n")
    run_dir = tmp_path / "run"
    argv = ["grid", "--config", SMOKE, "--run_dir", str(run_dir),
            *[flag.format(text=text) for flag in flags]]  # fmt: skip
    with caplog.at_level("INFO"):
        assert message in fails_with_one_line(argv, capsys)
    assert not run_dir.exists()
    planned = [r.getMessage() for r in caplog.records if "point: x" in r.getMessage()]
    assert planned == []  # the grid was not planned (it used to be, twice, before the error)


def test_end_to_end_tiny_grid_writes_every_output_and_resumes(tmp_path):
    config = _config("candidates.latency.record=true")
    result = grid.run_grid_search(config, run_dir=tmp_path)
    payload = json.loads((tmp_path / "results.json").read_text())
    assert set(payload["best"]) >= {"alpha", "beta", "gamma", "val_accuracy_mean",
                                    "val_accuracy_std"}  # fmt: skip
    assert len(payload["trials"]) == 4
    for trial in payload["trials"]:
        assert trial["state"] == "COMPLETE" and len(trial["epoch_accuracies"]) == 1
        assert trial["params"] > 0 and trial["macs"] > 0 and trial["seconds"] > 0
        assert trial["macs_ratio"] >= 1 and trial["cost"] == "macs"
        assert trial["activations_ratio"] > 1 and trial["latency_ms"] > 0
        assert trial["latency_device"].startswith(("CPU", "GPU", "TPU"))
    kinds = {t["kind"]: t for t in payload["trials"]}
    assert set(kinds) == {"paper", "depth", "width", "resolution"}
    # Solved to equal measured multiply-adds, not set to 2, sqrt 2, sqrt 2 (nominal).
    assert kinds["resolution"]["gamma"] > 1.3 and kinds["width"]["beta"] > 3
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"macs_ratio", "activations_ratio", "latency_ms", "latency_device"} <= set(header)
    report = (tmp_path / "report.md").read_text()
    assert "cannot be told apart from noise" in report  # one seed: no winner claimed
    # One validation pass a trial (one epoch): no learning curves to draw.
    assert {p.name for p in (tmp_path / "plots").glob("*.png")} == {
        "accuracy_vs_cost.png", "beta_gamma_plane.png"}
    assert (tmp_path / "trials.csv").read_text().count("\n") == 5
    assert result.summary.best is not None

    again = grid.run_grid_search(config, run_dir=tmp_path)  # resumes: nothing to retrain
    assert [t["seconds"] for t in again.results["trials"]] == [
        t["seconds"] for t in payload["trials"]]


def test_nan_trial_is_recorded_failed_and_the_search_finishes(tmp_path):
    config = _config("proxy.learning_rate=1.0e+30", "proxy.steps_per_epoch=3",
                     "candidates.single_dimension=false")  # fmt: skip
    result = grid.run_grid_search(config, run_dir=tmp_path)
    (trial,) = result.results["trials"]
    assert trial["state"] == "FAIL" and "NonFiniteLossError" in trial["error"]
    assert result.results["best"] is None
    assert "Failed trials" in (tmp_path / "report.md").read_text()


# The kill-and-retry machinery is the study's (tests/search/trials/test_study.py kills fake
# trials in seconds); this runs it through the grid command with real trials.
@pytest.mark.slow
def test_resume_after_kill_during_the_second_trial(tmp_path):
    first = subprocess.Popen(_cli(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    states: list = []
    while time.monotonic() < deadline and first.poll() is None:
        try:
            states = [t.state for t in _trials(tmp_path)]
        except Exception:  # the study is not created yet
            states = []
        if states.count(TrialState.COMPLETE) == 1 and TrialState.RUNNING in states:
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert states.count(TrialState.COMPLETE) == 1, "did not catch the second trial running"
    before = _trials(tmp_path)
    finished = next(t for t in before if t.state == TrialState.COMPLETE)

    rerun = subprocess.run(_cli(tmp_path), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    after = _trials(tmp_path)
    assert after[finished.number].datetime_complete == finished.datetime_complete
    _assert_each_point_completed_once(after)
    killed = [t for t in after if t.state == TrialState.FAIL]
    assert len(killed) == 1 and "error" not in killed[0].user_attrs  # retried, not an error
    assert "results:" in rerun.stdout and "vs best" in rerun.stdout  # the candidates table


def test_two_local_workers_complete_the_grid_exactly_once(tmp_path):
    # One trial per process: each worker process is replaced after every trial (flat memory).
    command = _cli(tmp_path, "--workers", "2", "--set", "search.trials_per_process=1")
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    trials = _trials(tmp_path)
    assert len(trials) == 4
    _assert_each_point_completed_once(trials)
    assert "2 local worker processes" in run.stderr
    # Every trial names the process that trained it: four fresh processes on this host.
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 4 and {w.split(":")[0] for w in workers} == {socket.gethostname()}


# ----------------------------------------------------------------------------- PostgreSQL
def test_two_workers_on_postgresql_share_the_grid(tmp_path, postgres_url):
    # Two separate commands, as on two machines: their own run directories, one storage.
    runs = [subprocess.Popen(_cli(tmp_path / f"machine{i}", "--storage", postgres_url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    trials = _trials(tmp_path, postgres_url)
    assert len(trials) == 4
    _assert_each_point_completed_once(trials)
    for i in range(2):
        payload = json.loads((tmp_path / f"machine{i}" / "results.json").read_text())
        assert len(payload["trials"]) == 4  # each machine reports the whole grid


def test_candidates_that_build_the_same_proxy_are_trained_once():
    quick = CONFIGS / "grid" / "fashion_mnist_quick.yaml"
    config = config_lib.load_config(grid.GridConfig, quick)
    config = dataclasses.replace(config, candidates=dataclasses.replace(
        config.candidates, cost="nominal", step=0.2, tolerance=0.2, alpha_range=(1.0, 2.0),
        beta_range=(1.0, 1.5), gamma_range=(1.0, 1.5),
        latency=dataclasses.replace(config.candidates.latency, record=False)))
    keys = {c.key for c in grid.distinct_architectures(
        grid.enumerate_candidates(config), config.proxy)}
    # alpha 1.8 and 2.0 add the same blocks at depth 0.25; gamma 1.40 and 1.41 are both 45 px.
    assert "a2.00_b1.00_g1.00" in keys and "a1.80_b1.00_g1.00" not in keys
    assert "a1.00_b1.00_g1.41" in keys and "a1.00_b1.00_g1.40" not in keys
    assert len(keys) == 8  # with the paper's point
    points = grid.grid_points(config)
    assert len(points) == 8 * config.search.repeats


# ----------------------------------------------------------------------------- halving
HALVING = ["proxy.epochs=2", "proxy.evals_per_epoch=2", "proxy.steps_per_epoch=4",
           "search.repeats=2", "search.pruner=candidate_halving",
           "search.pruner_reduction_factor=2", "search.pruner_min_epochs=0.5"]  # fmt: skip


def test_rung_budgets_shrink_by_the_factor_down_to_the_first_rung():
    assert rungs_lib.budgets(9, 1, 3, halving=True) == (1, 3, 9)
    assert rungs_lib.budgets(3, 1, 3, halving=True) == (1, 3)
    assert rungs_lib.budgets(9, 2, 3, halving=True) == (3, 9)
    assert rungs_lib.budgets(9, 1, 4, halving=True) == (2, 9)
    assert rungs_lib.budgets(9, 1, 3, halving=False) == (9,)
    assert plan.budgets(_config(*HALVING)) == (1, 2, 4)
    # The quick grid: 7 candidates at 1/3 epoch, 3 at 1, 1 at 3 (of 3 epochs each).
    assert rungs_lib.planned_share(7, (1, 3, 9), 3) == pytest.approx((7 + 9 + 9) / 63)


def test_candidate_halving_trains_the_best_candidates_longer(tmp_path):
    # In one process: rungs with several worker processes share the queue the same way
    # (test_two_local_workers_complete_the_grid_exactly_once).
    one_seed = [*HALVING, "search.repeats=1"]  # half the trials; promotion reads the means
    grid.run_grid_search(_config(*one_seed), run_dir=tmp_path)
    payload = json.loads((tmp_path / "results.json").read_text())
    trials = payload["trials"]
    by_rung = {r: [t for t in trials if t["rung"] == r] for r in range(3)}
    assert [len(by_rung[r]) for r in range(3)] == [4, 2, 1]  # 4 -> 2 -> 1 candidates
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert len({(t["rung"], t["candidate"], t["seed"]) for t in trials}) == 7  # each once
    assert [t["epochs"] for t in (by_rung[0][0], by_rung[1][0], by_rung[2][0])] == [0.5, 1, 2]
    for lower, upper in ((0, 1), (1, 2)):
        means = {c["key"]: c["mean"] for c in payload["rungs"][lower]["candidates"]}
        moved = {t["candidate"] for t in by_rung[upper]}
        assert min(means[k] for k in moved) >= max(means[k] for k in set(means) - moved)
        assert set(payload["rungs"][lower]["promoted"]) == moved
    # Only epoch ends and the rung's budget are validated, and a restart with the same seed
    # repeats the shorter run: rung 2's first epoch is rung 1's.
    assert [len(t["curve"]) for t in trials] == [1] * 4 + [1] * 2 + [2] * 1
    shorter = {(t["candidate"], t["seed"]): t["curve"] for t in by_rung[1]}
    for t in by_rung[2]:
        assert t["curve"][0] == shorter[t["candidate"], t["seed"]][0]
    (winner,) = {t["candidate"] for t in by_rung[2]}
    assert payload["best"]["key"] == winner and payload["best"]["seeds"] == 1
    assert "seed noise is unknown" in payload["verdict"]  # one seed: no winner claimed
    assert "Candidate halving: 4 -> 2 -> 1 candidates at 0.5, 1, 2 epochs" in payload["verdict"]
    assert "## Successive halving" in (tmp_path / "report.md").read_text()

    again = grid.run_grid_search(_config(*one_seed), run_dir=tmp_path)  # resumes: trains nothing
    assert [t["seconds"] for t in again.results["trials"]] == [t["seconds"] for t in trials]


# ----------------------------------------------------------------------------- GPUs
