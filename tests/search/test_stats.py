"""Seed statistics of search/stats.py: pure functions on trial records."""

from __future__ import annotations

import math

import pytest

from efficientnet_search.search import stats
from efficientnet_search.search.grid import results as results_lib


def _records(accuracies: dict[str, list[float]], state: str = "COMPLETE") -> list[dict]:
    out = []
    for key, values in accuracies.items():
        alpha, beta, gamma = (float(part[1:]) for part in key.split("_"))
        for seed, value in enumerate(values):
            out.append({"candidate": key, "alpha": alpha, "beta": beta, "gamma": gamma,
                        "seed": seed, "state": state, "val_accuracy": value,
                        "epoch_accuracies": [value]})  # fmt: skip
    return out


def test_t_quantile_matches_tables():
    # Student-t two-sided 95% critical values from standard tables.
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706, abs=2e-3)
    assert stats.t_quantile(0.975, 9) == pytest.approx(2.262, abs=2e-3)
    assert stats.t_quantile(0.975, 200) == pytest.approx(1.972, abs=2e-3)


def test_best_set_keeps_close_candidates_and_drops_clear_losers():
    records = _records({
        "a1.2_b1.1_g1.15": [0.80, 0.81, 0.82],
        "a1.0_b1.0_g1.41": [0.805, 0.80, 0.815],
        "a2.0_b1.0_g1.0": [0.70, 0.71, 0.72],
    })  # fmt: skip
    summary = stats.summarize(records)
    assert summary.best.key == "a1.2_b1.1_g1.15"
    assert summary.best.mean == pytest.approx(0.81)
    assert summary.best.std == pytest.approx(0.01)
    assert summary.noise.df == 6
    assert summary.best_set == ("a1.2_b1.1_g1.15", "a1.0_b1.0_g1.41")
    text = stats.verdict(summary)
    assert "indistinguishable" in text and "not a single winner" in text


def test_clear_winner_is_called_a_finding():
    summary = stats.summarize(_records({"a1_b1_g1": [0.9, 0.91], "a2_b1_g1": [0.7, 0.71]}))
    assert summary.best_set == ("a1_b1_g1",)
    assert "larger than seed noise" in stats.verdict(summary)


def test_one_seed_judges_nothing():
    summary = stats.summarize(_records({"a1_b1_g1": [0.9], "a2_b1_g1": [0.7]}))
    assert summary.best_set is None and not summary.noise.known
    assert "cannot be told apart from noise" in stats.verdict(summary)
    payload = results_lib.to_json(summary, [])
    assert payload["best"]["val_accuracy_std"] is None and payload["best_set"] is None


def test_pruned_failed_and_nan_trials_do_not_count():
    records = _records({"a1_b1_g1": [0.8, 0.82]})
    records += _records({"a2_b1_g1": [0.99]}, state="PRUNED")
    records += _records({"a1_b2_g1": [math.nan, 0.95]})
    summary = stats.summarize(records)
    assert [c.key for c in summary.candidates] == ["a1_b2_g1", "a1_b1_g1"]
    assert summary.candidates[0].accuracies == (0.95,)


def test_bad_confidence_is_refused():
    with pytest.raises(ValueError, match="confidence must be in"):
        stats.summarize([], confidence=1.5)


def test_a_lone_candidate_is_not_called_a_winner():
    summary = stats.summarize(_records({"a1_b1_g1": [0.9, 0.91]}))
    text = stats.verdict(summary)
    assert "only candidate" in text and "larger than seed noise" not in text


def test_racing_splits_the_confidence_over_its_planned_looks():
    assert stats.planned_looks(2, 2) == 1 and stats.planned_looks(2, 5) == 4
    assert stats.look_confidence(0.95, 1) == 0.95  # no racing: today's test exactly
    assert stats.look_confidence(0.95, 4) == pytest.approx(1 - 0.05 / 4)
    with pytest.raises(ValueError, match="max_repeats=1"):
        stats.planned_looks(2, 1)
    # A gap the plain test calls a finding is a tie at the stricter per-look level.
    records = _records({"a1_b1_g1": [0.80, 0.82], "a2_b1_g1": [0.76, 0.78]})
    assert stats.summarize(records, 0.8).best_set == ("a1_b1_g1",)
    strict = stats.summarize(records, stats.look_confidence(0.8, 4))
    assert strict.best_set == ("a1_b1_g1", "a2_b1_g1")
    assert stats.contenders(strict) == ("a1_b1_g1", "a2_b1_g1")


def test_contenders_are_every_candidate_while_noise_is_unknown():
    summary = stats.summarize(_records({"a1_b1_g1": [0.9], "a2_b1_g1": [0.7]}))
    assert stats.contenders(summary) == ("a1_b1_g1", "a2_b1_g1")


def test_seeds_to_separate_a_gap_grow_with_noise_over_gap_squared():
    noise = stats.Noise(std=0.01, df=10, confidence=0.95)
    t = stats.t_quantile(0.975, 10)
    n = stats.seeds_to_separate(0.01, noise)
    assert n == math.ceil(2 * t**2)  # 2 (t std / gap)^2 with std == gap
    assert n - 1 < 2 * t**2 <= n
    assert stats.seeds_to_separate(0.005, noise) > 3 * n  # half the gap: ~4x the seeds
    assert stats.seeds_to_separate(0.0, noise) is None
    assert stats.seeds_to_separate(0.01, stats.Noise(math.nan, 0, 0.95)) is None


def test_spearman_ranks_with_ties_and_refuses_unpaired_values():
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties take their average rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4).
    assert stats.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)
    assert math.isnan(stats.spearman([1, 2], [2, 1]))
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="paired"):
        stats.spearman([1, 2, 3], [1, 2])


def test_a_split_confidence_is_printed_with_its_digits():
    assert stats.percent(0.95) == "95%" and stats.percent(1 - 0.05 / 3) == "98.33%"
    records = _records({"a1_b1_g1": [0.9, 0.91], "a2_b1_g1": [0.7, 0.71]})
    assert "98.33% two-sided t" in stats.verdict(stats.summarize(records, 1 - 0.05 / 3))
