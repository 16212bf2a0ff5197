"""Scoring spread over worker processes through the shared queue (spread.py): the queued
proposals are the ones the searches make before any score, and 2 workers write the scores
1 process writes, exactly once, resumed."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import zlib

import pytest

from efficientnet_search.search.nas.oneshot import search as search_lib
from efficientnet_search.search.nas.oneshot import spread
from efficientnet_search.search.nas.oneshot.config import OneShotConfig, OneShotSection
from tests.paths import ROOT


def test_queued_proposals_are_random_searchs_and_evolutions_first_population(tiny_elastic):
    config = OneShotConfig(oneshot=OneShotSection(random_trials=7, evolution_trials=9,
                                                  population=4, sample_size=2, seed=3))
    asked = []

    def score(params):
        asked.append(dict(params))
        noise = random.Random(zlib.crc32(repr(sorted(params.items())).encode())).random()
        return {"score": noise, "macs": 1.0, "choice": dict(params)}

    fitness = search_lib.fitness_of(1.0, -0.07, "macs")
    search_lib.random_search(tiny_elastic, score, 7, 3, fitness)
    search_lib.regularized_evolution(tiny_elastic, score, 9, 3, fitness, population=4,
                                     sample_size=2)  # fmt: skip
    queued = spread.independent_proposals(tiny_elastic, config)
    assert queued == asked[:7 + 4]  # evolution's 5 children depend on scores: not queued


SMALL = ["data.source=synthetic", "data.max_train=128", "data.max_val=64",
         "oneshot.train.epochs=1", "oneshot.train.steps_per_epoch=2", "oneshot.random_trials=8",
         "oneshot.evolution_trials=8", "oneshot.population=4", "oneshot.sample_size=2",
         "proxy.steps_per_epoch=1", "oneshot.bootstrap=50", "oneshot.recalibration_images=64",
         "oneshot.threads=1", "oneshot.outcome_seeds=0"]  # scoring only: no retraining


def _oneshot(run, *flags):
    args = [sys.executable, "-m", "efficientnet_search.cli", "oneshot", "--config",
            "configs/nas/oneshot_smoke.yaml", "--run_dir", str(run), *flags]
    for item in SMALL:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow  # one supernet and 5 tiny trainings, then 2 scoring workers: ~2-3 min
def test_two_workers_write_the_scores_of_one_and_resume_without_rescoring(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _oneshot(one)
    two.mkdir()  # the same trained supernet and calibration: only the scoring differs
    shutil.copytree(one / "supernet", two / "supernet")
    shutil.copy(one / "calibration.csv", two / "calibration.csv")
    log = _oneshot(two, "--workers", "2")
    assert "networks to score on 2 worker processes" in log
    rows = (one / "scored.csv").read_text().splitlines()
    assert (two / "scored.csv").read_text().splitlines() == rows  # same scores, same order
    assert len(rows) > 8
    again = _oneshot(two, "--workers", "2")  # resumed: every point already scored
    assert "networks to score" not in again
    assert (two / "scored.csv").read_text().splitlines() == rows


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers 0: give 1 or more"),
    (["--storage", "bogus://x"], "cannot open the study storage bogus://x"),
])
def test_bad_workers_or_storage_is_one_line_and_exit_2(tmp_path, capsys, flags, message):
    from tests.cli_errors import fails_with_one_line

    err = fails_with_one_line(["oneshot", "--config", "configs/nas/oneshot_smoke.yaml",
                               "--run_dir", str(tmp_path / "run"), *flags], capsys)
    assert message in err and not (tmp_path / "run").exists()
