"""What every search's worker shares (search/trials/worker.py): the ETA, durations, ending a
trial that another worker already retried."""

from __future__ import annotations

import pytest

from efficientnet_search.search.trials import worker as trial_work


def test_eta_follows_the_pace_of_every_worker():
    # Two workers, each a 20 s trial then 5 s to start the next process: 12.5 s a trial.
    spans = [(25.0 * i + offset, 25.0 * i + offset + 20) for i in range(4) for offset in (0, 6)]
    assert trial_work.eta_seconds(spans, remaining=6) == pytest.approx(6 * 12.5, rel=0.1)
    # Only the last ETA_WINDOW finished count: a run before a resume does not slow it.
    before = [(0.0, 20.0), (20.0, 40.0)]
    after = [(5000.0 + 10 * i, 5010.0 + 10 * i) for i in range(trial_work.ETA_WINDOW)]
    assert trial_work.eta_seconds(before + after, remaining=3) == pytest.approx(30.0)
    assert trial_work.eta_seconds([(0.0, 20.0)], remaining=3) is None  # too few to tell


def test_durations_read_as_minutes_and_seconds():
    assert trial_work.duration(65.4) == "1m05s"
    assert trial_work.duration(42.0) == "42s"
    assert trial_work.duration(None) == "?"
    assert trial_work.duration(float("inf")) == "?"


def test_a_share_counts_down_and_is_spent_at_its_limit():
    share = trial_work.Share(2)
    assert share.left() == 2 and not share.spent()
    share.trained = 2
    assert share.left() == 0 and share.spent()
    assert trial_work.Share().left() is None and not trial_work.Share().spent()
