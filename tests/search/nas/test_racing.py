"""Racing of the NAS's retraining (`search.max_repeats`, search/racing.py): fresh seeds only for
the retrained candidates still tied with the best, as round studies of the same storage.

A stand-in training makes the B0-shaped baseline clearly worse and every searched network
equally good (seed noise only), so the race's course is known in advance: the first look drops
the baseline, the searched candidates stay tied until `max_repeats`.
"""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.search.nas import plan as nas_plan
from efficientnet_search.search.nas import run as nas
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.trials import storage as storage_lib
from tests.cli_errors import fails_with_one_line
from tests.search.nas.test_run import SMALL_REAL, SMOKE, _config, _run_as_machines, _studies

RACE = ("search.top_k=2", "search.retrain_seeds=2")


class TiedFake:
    """Stands in for proxy.train_proxy: the baseline 0.60, any other network 0.80, each +-1
    point by the seed's parity (a pooled seed std of about 1.2 points)."""

    def __init__(self, baseline: tuple[str, ...]) -> None:
        self.baseline = baseline
        self.calls: list[tuple[tuple[str, ...], int]] = []

    def __call__(self, config, splits, *, alpha, beta, gamma, seed, **_):
        self.calls.append((tuple(config.blocks), seed))
        mean = 0.60 if tuple(config.blocks) == self.baseline else 0.80
        accuracy = mean + (0.01 if seed % 2 else -0.01)
        macs = spec_cost(config.spec(alpha, beta, gamma, splits.num_classes)).macs
        return proxy.ProxyResult((accuracy,), ((1.0, accuracy),), 1000, macs, 0.01, False, 1.0)


@pytest.fixture
def tied(monkeypatch) -> TiedFake:
    stand_in = TiedFake(_config().proxy.blocks)
    monkeypatch.setattr(proxy, "train_proxy", stand_in)
    return stand_in


def _each_point_once(studies) -> None:
    for name, trials in studies.items():
        done = [t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == len(set(done)) == len(trials), name


def test_only_candidates_tied_with_the_best_get_more_seeds_and_a_rerun_trains_nothing(
        tmp_path, tied):
    result = nas.run_nas(_config(*RACE, "search.max_repeats=4"), run_dir=tmp_path)
    payload = result.results
    by_role = {role: c for c in payload["retrained"] for role in c["roles"]}
    assert by_role["baseline"]["n"] == 2  # dropped at the first look: 20 points behind
    searched = [c for c in payload["retrained"] if "baseline" not in c["roles"]]
    assert len(searched) >= 2 and all(c["n"] == 4 for c in searched)  # tied to the end
    seeds = [t["seed"] for t in payload["trials"]
             if t["algorithm"] == "retrain" and t["candidate"] == searched[0]["candidate"]]
    assert sorted(seeds) == [1, 2, 3, 4]  # fresh seeds, never the search's 0
    studies = _studies(tmp_path)
    assert {"retrain", "retrain/race-m4-c0.95/round1", "retrain/race-m4-c0.95/round2"} <= set(
        studies)
    _each_point_once(studies)
    retrained = sum(len(v) for k, v in studies.items() if k.startswith("retrain"))
    assert retrained == 2 * len(payload["retrained"]) + 2 * len(searched)
    assert sum(1 for _, seed in tied.calls if seed > 0) == retrained  # each trained once

    race = payload["racing"]
    assert race["look_confidence"] == pytest.approx(1 - 0.05 / 3)
    assert payload["noise"]["confidence"] == pytest.approx(race["look_confidence"])
    assert [len(r["candidates"]) for r in race["rounds"]] == [len(payload["retrained"]),
                                                            len(searched), len(searched)]
    assert "still tied" in payload["verdict"] and "Racing:" in payload["verdict"]
    report = (tmp_path / "report.md").read_text()
    assert "Bonferroni" in report and "98.33%" in report
    assert payload["comparisons"]["baseline"]["accuracy"] == "better"

    calls = len(tied.calls)
    again = nas.run_nas(_config(*RACE, "search.max_repeats=4"), run_dir=tmp_path)
    assert len(tied.calls) == calls and again.results["retrained"] == payload["retrained"]


def test_max_repeats_equal_to_retrain_seeds_is_todays_nas_and_raising_it_races_on(tmp_path,
                                                                                  tied):
    plain = nas.run_nas(_config(*RACE, "search.max_repeats=2"), run_dir=tmp_path).results
    assert plain["racing"] is None and plain["noise"]["confidence"] == 0.95
    assert set(_studies(tmp_path)) == {"evolution/seed0", "random/seed0", "retrain"}
    assert all(c["n"] == 2 for c in plain["retrained"])
    assert "Racing: none" in (tmp_path / "report.md").read_text()
    assert nas_plan.study_name(_config(*RACE)) == nas_plan.study_name(
        _config(*RACE, "search.max_repeats=3"))  # the same first seeds: the same studies

    calls = len(tied.calls)
    raced = nas.run_nas(_config(*RACE, "search.max_repeats=3"), run_dir=tmp_path).results
    searched = [c for c in raced["retrained"] if "baseline" not in c["roles"]]
    assert len(tied.calls) - calls == len(searched)  # only round 1, only the tied ones
    assert all(c["n"] == 3 for c in searched)
    saved = (tmp_path / "config.yaml").read_text()
    assert "max_repeats: 3" in saved  # the run directory records the latest value


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_machines_share_the_rounds_and_train_each_point_once(tmp_path, tied, backend,
                                                                 request):
    storage = (request.getfixturevalue("postgres_url") if backend == "postgresql"
               else f"journal:{tmp_path / 'study.log'}")
    # A study name of its own: the PostgreSQL server is shared by the test session.
    config = _config(*RACE, "search.max_repeats=3", "search.heartbeat_interval=2",
                     "search.grace_period=10", f"search.study_name=race-{tmp_path.name}")
    _run_as_machines(config, [tmp_path / f"machine{i}" for i in range(2)], storage)
    prefix = nas_plan.study_name(config)
    opened = storage_lib.open_storage(storage, heartbeat_interval=None, grace_period=None)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=opened)
             if s.study_name.startswith(f"{prefix}/{nas_plan.RETRAIN}")]
    assert f"{prefix}/retrain/race-m3-c0.95/round1" in names
    payloads = [json.loads((tmp_path / f"machine{i}" / "results.json").read_text())
                for i in range(2)]  # fmt: skip
    assert payloads[0]["retrained"] == payloads[1]["retrained"]
    retrain = [t for t in payloads[0]["trials"] if t["algorithm"] == "retrain"]
    assert all(t["state"] == "COMPLETE" for t in retrain)
    assert len({(t["candidate"], t["seed"]) for t in retrain}) == len(retrain)
    assert sum(1 for _, seed in tied.calls if seed > 0) == len(retrain)  # none twice


def test_max_repeats_below_retrain_seeds_fails_with_one_line_and_writes_nothing(tmp_path,
                                                                                capsys):
    argv = ["nas", "--config", SMOKE, "--run_dir", str(tmp_path / "run"), "--set",
            "search.retrain_seeds=2", "--set", "search.max_repeats=1"]
    line = fails_with_one_line(argv, capsys)
    assert "search.max_repeats=1 is below search.retrain_seeds=2" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # 40-200 s: worker processes train for real (the threads above: in seconds)
def test_two_local_worker_processes_race_the_retraining_for_real(tmp_path):
    # One fresh seed first: seed noise is unknown, so every candidate gets a second one in
    # round 1, trained by the worker processes after the first round's study is done.
    config = _config(*SMALL_REAL, "search.max_repeats=2", "search.workers=2",
                     "search.threads=1")  # fmt: skip
    result = nas.run_nas(config, run_dir=tmp_path)
    studies = _studies(tmp_path)
    _each_point_once(studies)
    assert len(studies["retrain/race-m2-c0.95/round1"]) == len(studies["retrain"]) >= 2
    assert {c["n"] for c in result.results["retrained"]} == {2}
    assert result.results["racing"]["look_confidence"] == pytest.approx(0.975)
