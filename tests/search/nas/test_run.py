"""The architecture search end to end: outputs, exactly-once, resume after a kill, bad input,
and its result feeding the grid, the scaler and the pipeline.

Most tests replace the proxy training by a deterministic stand-in (accuracy from the
architecture's cost and the seed), so they check the search's logic in seconds; the
kill-and-resume test trains for real in a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from efficientnet_search import config as config_lib
from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.cli import main as cli
from efficientnet_search.search import pipeline
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.nas import plan as nas_plan
from efficientnet_search.search.nas import run as nas
from efficientnet_search.search.proxy import trainer as proxy
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS

SMOKE = str(CONFIGS / "nas" / "smoke.yaml")


class FakeTraining:
    """Stands in for proxy.train_proxy: more multiply-adds, higher accuracy, plus seed noise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, config, splits, *, alpha, beta, gamma, seed, **_):
        self.calls.append(tuple(config.blocks))
        spec = config.spec(alpha, beta, gamma, splits.num_classes)
        macs = spec_cost(spec).macs
        noise = random.Random(seed * 7919 + zlib.crc32(" ".join(config.blocks).encode()))
        accuracy = min(0.99, 0.4 + macs / 2e8 + 0.01 * noise.random())
        return proxy.ProxyResult((accuracy,), ((1.0, accuracy),), 1000, macs, 0.01, False, 1.0)


@pytest.fixture
def fake(monkeypatch) -> FakeTraining:
    stand_in = FakeTraining()
    monkeypatch.setattr(proxy, "train_proxy", stand_in)
    return stand_in


def _config(*overrides: str) -> nas.NasConfig:
    return nas.load_nas_config(SMOKE, list(overrides), None)


def _studies(run_dir: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    url = f"sqlite:///{run_dir.resolve() / 'study.db'}"
    return {s.study_name.split("/", 1)[1]: optuna.load_study(study_name=s.study_name,
                                                                storage=url).get_trials()
            for s in optuna.get_all_study_summaries(url)}  # fmt: skip


def test_search_writes_every_output_chooses_honestly_and_resumes(tmp_path, fake):
    result = nas.run_nas(_config(), run_dir=tmp_path)
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["kind"] == "nas" and payload["chosen"]["blocks"]
    assert len(payload["chosen"]["blocks"]) == 3 and payload["chosen"]["n"] == 2
    assert payload["chosen"]["roles"][0] == "top1"
    assert payload["baseline"]["roles"] == ["baseline"] and payload["front"]
    assert {"macs", "params"} <= set(payload["chosen"])
    assert set(payload["comparisons"]) == {"baseline", "random_best"}
    assert "B0-shaped baseline" in payload["verdict"]
    searches = {(s["algorithm"], s["search_seed"]): s for s in payload["searches"]}
    assert set(searches) == {("evolution", 0), ("random", 0)}
    assert all(s["trials"] == 3 and len(s["best_so_far"]) == 3 for s in searches.values())
    for name, trials in _studies(tmp_path).items():  # every budget slot completed once
        done = [t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == len(set(done)) == len(trials), name
    retrained = len(_studies(tmp_path)["retrain"])
    assert retrained == 2 * len(payload["retrained"])
    assert (tmp_path / "trials.csv").read_text().count("\n") == 6 + retrained + 1
    assert {p.name for p in (tmp_path / "plots").glob("*.png")} == {
        "accuracy_vs_cost.png", "best_so_far.png", "architecture.png"}
    report = (tmp_path / "report.md").read_text()
    assert "winner's curse" in report and "random" in report
    assert result.results["chosen"] == payload["chosen"]

    calls = len(fake.calls)
    again = nas.run_nas(_config(), run_dir=tmp_path)  # resumes: nothing is trained again
    assert len(fake.calls) == calls and again.results["chosen"] == payload["chosen"]

    before = (tmp_path / "results.json").read_text()  # another config: refused, kept
    with pytest.raises(config_lib.ConfigError, match="already holds a run"):
        nas.run_nas(_config("search.trials=5"), run_dir=tmp_path)
    assert (tmp_path / "results.json").read_text() == before


def test_identical_architectures_are_trained_once(tmp_path, fake):
    one = ["space.kernels=[3]", "space.expansions=[1]", "space.se_ratios=[0.0]",
           "space.repeat_offsets=[0]", "space.filter_multipliers=[1.0]"]
    result = nas.run_nas(_config(*one), run_dir=tmp_path)
    search = [t for t in result.results["trials"] if t["algorithm"] != "retrain"]
    assert len(search) == 6 and sum(t["duplicate_of"] is None for t in search) == 1
    # One search training, then 2 fresh seeds each for the one candidate and the baseline.
    assert len(fake.calls) == 1 + 2 + 2
    assert result.results["chosen"]["roles"] == ["top1", "random_best"]
    assert "Random search found this same architecture" in result.results["verdict"]


def test_pareto_search_with_nsga2_and_tpe(tmp_path, fake):
    config = _config("objective.kind=pareto", "search.algorithms=[nsga2, tpe, random]")
    result = nas.run_nas(config, run_dir=tmp_path)
    algorithms = {s["algorithm"] for s in result.results["searches"]}
    assert algorithms == {"nsga2", "tpe", "random"}
    studies = _studies(tmp_path)
    assert len(studies["nsga2/seed0"]) == 3 and len(studies["nsga2/seed0"][0].values) == 2
    assert result.results["chosen"] is not None


def test_a_nas_result_feeds_the_grid_the_scaler_and_the_pipeline(tmp_path, fake, capsys):
    nas.run_nas(_config(), run_dir=tmp_path / "nas")
    results = tmp_path / "nas" / "results.json"
    chosen = tuple(json.loads(results.read_text())["chosen"]["blocks"])
    grid_config = grid.load_grid_config(str(CONFIGS / "grid" / "smoke.yaml"),
                                        [f"proxy.blocks_from={results}"], None)  # fmt: skip
    assert grid_config.proxy.blocks == chosen
    cli.main(cli.parse_args(["prog", "scale", "--coefficients", "paper", "--blocks_from",
                             str(results), "--phi", "1", "2"]))  # fmt: skip
    assert f"baseline from {results}" in capsys.readouterr().out

    config = config_lib.load_config(pipeline.PipelineConfig, CONFIGS / "pipeline" / "smoke.yaml")
    record = pipeline.run_pipeline(config, config_dir=CONFIGS / "pipeline",
                                   run_dir=tmp_path / "pipe")  # fmt: skip
    assert (tmp_path / "pipe" / "nas" / "results.json").is_file()
    grid_payload = json.loads((tmp_path / "pipe" / "grid" / "results.json").read_text())
    nas_payload = json.loads((tmp_path / "pipe" / "nas" / "results.json").read_text())
    assert grid_payload["blocks"] == nas_payload["chosen"]["blocks"] == record["blocks"]
    assert [m["phi"] for m in record["members"]] == [1, 2, 3]
    assert (tmp_path / "pipe" / "family.json").is_file()


def test_the_family_records_and_prints_that_its_coefficients_were_tied(tmp_path, capsys):
    from efficientnet_search.arch.blocks import B0_BLOCK_STRINGS

    grid_results = tmp_path / "grid" / "results.json"
    grid_results.parent.mkdir()
    grid_results.write_text(json.dumps({
        "blocks": list(B0_BLOCK_STRINGS), "best_set": ["a1.00_b1.00_g1.19", "a1.20_b1.10_g1.15"],
        "best": {"alpha": 1.0, "beta": 1.0, "gamma": 1.19, "key": "a1.00_b1.00_g1.19"}}))
    record = pipeline.write_family(pipeline.FamilyConfig(phi=(1,)), grid_results, grid_results,
                                   tmp_path / "family.json")  # fmt: skip
    saved = json.loads((tmp_path / "family.json").read_text())
    assert saved["caveat"] == record["caveat"]
    assert "best by mean only" in saved["caveat"] and "a1.20_b1.10_g1.15" in saved["caveat"]
    assert "note: a1.00_b1.00_g1.19 is best by mean only" in capsys.readouterr().out


def _run_as_machines(config: nas.NasConfig, run_dirs: list[Path], storage: str) -> None:
    """One search per run directory, all on `storage`, as on as many machines. Threads stand
    in for the machines so that a monkeypatched stand-in training applies to all."""
    errors: list[BaseException] = []

    def machine(run_dir: Path) -> None:
        try:
            nas.run_nas(config, run_dir=run_dir, storage=storage)
        except BaseException as err:  # noqa: BLE001  (asserted below, in the test's thread)
            errors.append(err)

    threads = [threading.Thread(target=machine, args=(run_dir,)) for run_dir in run_dirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def test_two_machines_on_postgresql_share_the_search_and_train_each_slot_once(tmp_path, fake,
                                                                           postgres_url):
    # Two searches, as on two machines: their own run directories, one PostgreSQL storage.
    config = _config("search.heartbeat_interval=2", "search.grace_period=10")
    _run_as_machines(config, [tmp_path / f"machine{i}" for i in range(2)], postgres_url)
    prefix = nas_plan.study_name(config)
    for study in ("evolution/seed0", "random/seed0", nas_plan.RETRAIN):
        trials = optuna.load_study(study_name=f"{prefix}/{study}", storage=postgres_url
                                   ).get_trials()  # fmt: skip
        done = [t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == len(set(done)) == len(trials), study  # each once, none failed
        assert len(done) == (3 if "seed0" in study else 6), study  # 3 slots; 3 nets x 2 seeds
    payloads = [json.loads((tmp_path / f"machine{i}" / "results.json").read_text())
                for i in range(2)]  # fmt: skip
    assert payloads[0]["trials"] == payloads[1]["trials"] and len(payloads[0]["trials"]) == 12
    assert payloads[0]["chosen"] == payloads[1]["chosen"] is not None
    # Nothing trained twice: one training per new search architecture and per retraining.
    trained = [t for t in payloads[0]["trials"] if t["duplicate_of"] is None]
    assert len(fake.calls) == len(trained)


class SlowFakeTraining(FakeTraining):
    """FakeTraining whose architectures take different times, which differ between runs."""

    def __init__(self, run: int) -> None:
        super().__init__()
        self.run = run

    def __call__(self, config, splits, **kwargs):
        delay = random.Random(f"{self.run} {config.blocks}").uniform(0.0, 0.6)
        time.sleep(delay)
        return super().__call__(config, splits, **kwargs)


def _two_worker_evolution(tmp_path: Path, run: int, monkeypatch) -> list[dict]:
    monkeypatch.setattr(proxy, "train_proxy", SlowFakeTraining(run))
    config = _config("search.algorithms=[evolution,random]", "search.trials=7",
                     "search.population=2", "search.sample_size=1", "search.evolution_lag=2",
                     "search.top_k=1", "search.retrain_seeds=1",
                     "search.heartbeat_interval=2", "search.grace_period=10")  # fmt: skip
    storage = f"journal:{tmp_path / f'run{run}' / 'study.log'}"
    _run_as_machines(config, [tmp_path / f"run{run}" / f"worker{i}" for i in range(2)], storage)
    payload = json.loads((tmp_path / f"run{run}" / "worker0" / "results.json").read_text())
    return sorted(((t["slot"], t["blocks"]) for t in payload["trials"]
                   if t["algorithm"] == "evolution"), key=lambda row: row[0])  # fmt: skip


def test_a_run_resumed_with_another_lag_or_worker_count_opens_the_same_studies():
    names = {nas_plan.study_name(_config(*overrides)) for overrides in
             [(), ("search.evolution_lag=3",), ("search.workers=4",)]}  # fmt: skip
    assert len(names) == 1


def test_evolution_on_two_workers_proposes_the_same_whatever_finishes_first(tmp_path,
                                                                            monkeypatch):
    first = _two_worker_evolution(tmp_path, 0, monkeypatch)
    second = _two_worker_evolution(tmp_path, 1, monkeypatch)  # other timings
    assert [slot for slot, _ in first] == list(range(7))
    assert first == second
    assert len({tuple(blocks) for _, blocks in first}) > 2  # it searched, not one network


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("space.kernels=[]", "space.kernels is empty"),
        ("space.repeat_offsets=[-2]", "no repeats >= 1"),
        ("objective.target_ratio=0.05", "the cheapest architecture in the space costs"),
    ],
)
def test_bad_nas_input_fails_with_one_line_and_writes_nothing(tmp_path, capsys, override,
                                                              message):
    argv = ["nas", "--config", SMOKE, "--run_dir", str(tmp_path), "--set", override]
    assert message in fails_with_one_line(argv, capsys)
    assert not (tmp_path / "config.yaml").exists()


def test_a_blocks_from_file_that_is_no_result_is_refused(tmp_path, capsys):
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    run_dir = tmp_path / "run"
    for argv in (["grid", "--config", str(CONFIGS / "grid" / "smoke.yaml"), "--run_dir",
                  str(run_dir), "--set", f"proxy.blocks_from={bogus}"],
                 ["scale", "--coefficients", "paper", "--blocks_from", str(bogus)]):
        assert "is not a NAS or grid result" in fails_with_one_line(argv, capsys)
    assert not run_dir.exists()


# ----------------------------------------------------------------------------- real training
# Random search only, 2 slots, 1 fresh seed: 4 short trainings (besides a killed one).
SMALL_REAL = ["search.algorithms=[random]", "search.trials=2", "search.retrain_seeds=1",
              "search.heartbeat_interval=2", "search.grace_period=10"]  # fmt: skip


# Killed trials are retried by the study shared with the grid (tests/search/trials/test_study.py,
# in seconds); this kills a real NAS run and checks the retried slot keeps its architecture.
@pytest.mark.slow
def test_resume_after_kill_trains_each_slot_once_with_the_architecture_it_drew(tmp_path):
    sets = [arg for item in SMALL_REAL for arg in ("--set", item)]
    command = [sys.executable, "-m", "efficientnet_search.cli.main", "nas", "--config", SMOKE,
               "--run_dir", str(tmp_path), *sets]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = nas_plan.study_name(_config(*SMALL_REAL)) + "/random/seed0"
    url = f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    deadline, states = time.monotonic() + 300, []
    while time.monotonic() < deadline and first.poll() is None:
        try:
            trials = optuna.load_study(study_name=name, storage=url).get_trials()
            states = [t.state for t in trials]
        except Exception:  # not created yet
            states = []
        if states.count(TrialState.COMPLETE) == 1 and TrialState.RUNNING in states:
            running = next(t for t in trials if t.state == TrialState.RUNNING)
            if "blocks" in running.user_attrs:
                break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert states.count(TrialState.COMPLETE) == 1, "did not catch the second trial running"
    killed_blocks = running.user_attrs["blocks"]

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["point"] for t in done) == ["slot0", "slot1"]
    (killed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert "error" not in killed.user_attrs  # killed, so retried, not an error
    retried = next(t for t in done if t.user_attrs["point"] == killed.user_attrs["point"])
    assert retried.user_attrs["blocks"] == killed_blocks  # the retry trains what was drawn
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["chosen"] is not None and "results:" in rerun.stdout


def test_two_local_worker_processes_train_each_slot_once_for_real(tmp_path):
    config = _config(*SMALL_REAL, "search.workers=2", "search.threads=1")
    result = nas.run_nas(config, run_dir=tmp_path)
    studies = _studies(tmp_path)
    for name, trials in studies.items():
        done = [t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == len(set(done)) == len(trials), name  # each once, none failed
    assert sorted(t.user_attrs["point"] for t in studies["random/seed0"]) == ["slot0", "slot1"]
    trained = [t for t in result.results["trials"] if t["duplicate_of"] is None]
    assert all(t["worker"].split(":")[1] != str(os.getpid()) for t in trained)  # in workers
    assert result.results["chosen"] is not None


def test_latency_as_the_cost_times_every_architecture_on_this_machine(tmp_path, fake):
    timing = ["objective.cost=latency", "objective.latency.warmup=1",
              "objective.latency.repeats=3", "objective.target_ratio=3.0"]
    nas.run_nas(_config(*timing), run_dir=tmp_path)
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["objective"]["measure"] == "latency"
    assert payload["objective"]["baseline_cost"] > 0  # milliseconds of the baseline's batch
    trained = [t for t in payload["trials"] if t["state"] == "COMPLETE"]
    assert trained and all(t["latency"] > 0 and t["latency_device"] for t in trained)
    assert all(t["macs"] > 0 for t in trained)  # the counted measures are kept beside it
    assert "latency" in (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert payload["chosen"]["cost_ratio"] > 0


def test_a_bad_storage_fails_in_one_line_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["nas", "--config", SMOKE, "--run_dir", str(run_dir), "--storage", "bogus://x"]
    assert "cannot open the study storage bogus://x" in fails_with_one_line(argv, capsys)
    assert not run_dir.exists()
