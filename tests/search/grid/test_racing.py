"""Racing (search/racing.py): rounds of seeds for the candidates still tied with the best, as
studies of the same storage; driven here with made-up accuracies instead of training."""

from __future__ import annotations

import optuna
import pytest

from efficientnet_search.arch.scaling import Candidate
from efficientnet_search.search import racing
from efficientnet_search.search.grid import plan
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib
from efficientnet_search.search.trials import worker as trial_work
from tests.paths import CONFIGS
from tests.search.grid.test_run import TINY

SMOKE = str(CONFIGS / "grid" / "smoke.yaml")
CANDIDATES = (Candidate(1.2, 1.1, 1.15, "paper"), Candidate(2.0, 1.0, 1.0, "depth"),
              Candidate(1.0, 1.4, 1.0, "width"), Candidate(1.0, 1.0, 1.4, "resolution"))
# Mean accuracy per kind; every seed adds +-1 point (alternating), so the pooled seed std
# is about 1.2 points: the paper's and resolution's points are close, the others far behind.
MEANS = {"paper": 0.80, "resolution": 0.77, "width": 0.65, "depth": 0.55}


def _accuracy(attrs) -> float:
    return MEANS[attrs["kind"]] + (0.01 if attrs["seed"] % 2 else -0.01)


def _ladder(tmp_path, max_repeats: int, means=None) -> rungs_lib.Ladder:
    config = grid.load_grid_config(
        SMOKE, [*TINY, "search.repeats=2", f"search.max_repeats={max_repeats}"], None)
    table = plan.CandidatePlan(CANDIDATES, {})
    return rungs_lib.open_ladder(
        plan.grid_points(config, table), (1,), 3, storage_lib.storage_url(None, tmp_path),
        "race-test", pruner=optuna.pruners.NopPruner(), heartbeat_interval=2, grace_period=10,
        race=plan.race_plan(config))  # fmt: skip


def _drain(ladder: rungs_lib.Ladder) -> int:
    """Completes every trial the ladder hands out, as a worker would; returns how many."""
    done = 0
    while True:
        rung = ladder.current()
        trial = rung.queue.claim()
        if trial is None:
            return done
        value = _accuracy(trial.user_attrs)
        trial_work.end_trial(rung.queue.study, trial, value, attrs={"epoch_accuracies": [value]})
        done += 1


def test_rounds_add_seeds_only_to_candidates_tied_with_the_best_until_one_is_left(tmp_path):
    ladder = _ladder(tmp_path, max_repeats=6)
    trained = _drain(ladder)
    rounds = ladder.last_rung()
    assert [r.round for r in rounds] == list(range(len(rounds))) and len(rounds) >= 2
    # The first look drops the two clear losers; only the two leaders get more seeds.
    assert {p.attrs["kind"] for p in rounds[1].points} == {"paper", "resolution"}
    assert [p.attrs["seed"] for p in rounds[1].points] == [2, 2]
    for earlier, later in zip(rounds[1:], rounds[2:], strict=False):
        assert {p.attrs["candidate"] for p in later.points} <= {
            p.attrs["candidate"] for p in earlier.points}
    race = plan.race_plan(grid.load_grid_config(
        SMOKE, [*TINY, "search.repeats=2", "search.max_repeats=6"], None))
    section = racing.section(race, [ladder.records([r]) for r in rounds])
    assert section["look_confidence"] == pytest.approx(1 - 0.05 / 5)
    assert section["rounds"][-1]["best_set"] == ["a1.20_b1.10_g1.15"]  # a single best
    assert len(rounds) - 1 < 6 - 2  # decided before max_repeats: seeds saved
    assert trained == 8 + sum(len(r.points) for r in rounds[1:]) < 4 * 6
    assert "It stopped with a single best." in racing.racing_note(race, section["rounds"])
    keys = [p.key for r in rounds for p in r.points]
    assert len(keys) == len(set(keys))  # every (candidate, seed) once

    # Another worker (or a resume) derives the same rounds and finds nothing left to train.
    again = _ladder(tmp_path, max_repeats=6)
    assert _drain(again) == 0
    assert [[p.key for p in r.points] for r in again.last_rung()] == [
        [p.key for p in r.points] for r in rounds]


def test_racing_stops_at_max_repeats_with_the_tie_left_standing(tmp_path, monkeypatch):
    monkeypatch.setitem(MEANS, "resolution", 0.80)  # truly tied with the paper's point
    ladder = _ladder(tmp_path, max_repeats=4)
    assert _drain(ladder) == 8 + 2 + 2
    race = racing.RacePlan(2, 4, 0.95)
    section = racing.section(race, [ladder.records([r]) for r in ladder.last_rung()])
    assert len(section["rounds"][-1]["best_set"]) == 2
    assert "2 candidates still tied" in racing.racing_note(race, section["rounds"])


def test_max_repeats_equal_to_repeats_is_the_plain_grid(tmp_path):
    ladder = _ladder(tmp_path, max_repeats=2)
    assert _drain(ladder) == 8
    assert len(ladder.rungs()) == 1
    names = [s.study_name for s in optuna.get_all_study_summaries(
        storage_lib.storage_url(None, tmp_path))]
    assert names == ["race-test"]  # no round studies


def test_reseeding_keeps_the_key_pattern_and_refuses_a_key_without_its_seed():
    point = plan.grid_points(grid.load_grid_config(SMOKE, TINY, None),
                             plan.CandidatePlan(CANDIDATES[:1], {}))[0]
    assert racing.reseeded(point, 3, 1).key == "a1.20_b1.10_g1.15_s3"
    rung2 = study_lib.Point(key=f"{point.key}_r2", params=point.params, attrs=point.attrs)
    marked = racing.reseeded(rung2, 5, 2)  # a halving rung's mark stays at the end
    assert marked.key == "a1.20_b1.10_g1.15_s5_r2" and marked.params["seed"] == 5
    assert marked.attrs["round"] == 2 and marked.attrs["seed"] == 5
    with pytest.raises(ValueError, match="names no seed"):
        racing.reseeded(study_lib.Point(key="odd", params={}, attrs={"seed": 0}), 1, 1)


@pytest.mark.slow
def test_a_raced_grid_records_its_rounds_resumes_and_states_the_rule(tmp_path):
    # One seed first: seed noise is unknown, so every candidate gets the second seed.
    config = grid.load_grid_config(SMOKE, [*TINY, "search.max_repeats=2"], None)
    result = grid.run_grid_search(config, run_dir=tmp_path)
    section = result.results["racing"]
    assert section["looks"] == 2 and section["look_confidence"] == pytest.approx(0.975)
    assert result.results["noise"]["confidence"] == pytest.approx(0.975)
    assert sorted(t["round"] for t in result.results["trials"]) == [0] * 4 + [1] * 4
    assert {c["n"] for c in result.results["candidates"]} == {2}
    assert "Racing: 4 -> 4 candidates" in result.results["verdict"]
    assert result.results["verdict"].startswith("At 1 proxy epoch: ")
    assert "Bonferroni" in (tmp_path / "report.md").read_text()
    again = grid.run_grid_search(config, run_dir=tmp_path)  # resumes: nothing retrained
    assert [t["seconds"] for t in again.results["trials"]] == [
        t["seconds"] for t in result.results["trials"]]


def test_each_group_races_on_its_own_as_verify_races_each_phi():
    plan_ = racing.RacePlan(2, 3, 0.95, group="phi")
    points, records = [], []
    # phi=2: found and paper tied; phi=3: found far ahead, decided.
    means = {(2, "found"): 0.80, (2, "paper"): 0.795, (3, "found"): 0.85, (3, "paper"): 0.70}
    for (phi, family), mean in means.items():
        for seed in (0, 1):
            name = f"phi{phi}_{family}"
            points.append(study_lib.Point(key=f"{name}_s{seed}", params={"seed": seed},
                                          attrs={"candidate": name, "seed": seed, "phi": phi}))
            records.append({"candidate": name, "phi": phi, "seed": seed, "state": "COMPLETE",
                            "val_accuracy": mean + (0.005 if seed else -0.005),
                            "alpha": 1.0, "beta": 1.0, "gamma": 1.0})  # fmt: skip
    nxt = racing.next_round(plan_, points, records, 1)
    assert [p.key for p in nxt] == ["phi2_found_s2", "phi2_paper_s2"]
    assert all(p.attrs["round"] == 1 and p.attrs["phi"] == 2 for p in nxt)
    # Pooled into one race, phi=3's clear leader would stop phi=2's tie from getting seeds.
    together = racing.next_round(racing.RacePlan(2, 3, 0.95), points, records, 1)
    assert [p.key for p in together] == []


def test_the_progress_line_of_a_round_names_it_and_judges_the_best_on_every_round(
        tmp_path, monkeypatch):
    from efficientnet_search.search.grid import worker

    ladder = _ladder(tmp_path, max_repeats=6)
    while ladder.current().round == 0:  # finish round 0 only
        rung = ladder.current()
        trial = rung.queue.claim()
        value = _accuracy(trial.user_attrs)
        trial_work.end_trial(rung.queue.study, trial, value, attrs={"epoch_accuracies": [value]})
    rung = ladder.current()
    assert rung.round == 1 and len(rung.points) == 2
    trial = rung.queue.claim()
    trial_work.end_trial(rung.queue.study, trial, 0.5, attrs={"epoch_accuracies": [0.5]})
    frozen = rung.queue.study.get_trials()[-1]
    lines = []
    monkeypatch.setattr(worker.logging, "info", lambda fmt, *args: lines.append(fmt % args))
    share = trial_work.Share()
    share.trained = 1
    worker.log_progress(ladder_config(), rung, frozen, share, ladder)
    # The count is the round's, and says so; the best so far is judged on rounds 0 and 1 (the
    # paper's point, 2 seeds), not on the round's lone trial at 0.5.
    assert lines[0].startswith("racing round 1: trial 1/2 ")
    assert "(this round)" in lines[0]
    assert "best so far a1.20_b1.10_g1.15 0.8000 (2 seeds)" in lines[0]


def ladder_config():
    return grid.load_grid_config(SMOKE, [*TINY, "search.repeats=2", "search.max_repeats=6"],
                                 None)  # fmt: skip
