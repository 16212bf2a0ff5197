"""report.md and plots regenerated from a run directory's results.json."""

from __future__ import annotations

import argparse
import json

import pytest

from efficientnet_search.search import stats
from efficientnet_search.search.grid import plots, report, results


def _run_dir(tmp_path, accuracies):
    records = []
    for number, (key, kind, values) in enumerate(accuracies):
        alpha, beta, gamma = (float(part[1:]) for part in key.split("_"))
        for seed, value in enumerate(values):
            records.append({
                "number": number * 10 + seed, "candidate": key, "kind": kind, "alpha": alpha,
                "beta": beta, "gamma": gamma, "seed": seed, "state": "COMPLETE",
                "val_accuracy": value, "epoch_accuracies": [value - 0.1, value], "epochs": 2,
                "curve": [[0.5, value - 0.2], [1, value - 0.1], [1.5, value], [2, value]],
                "macs_ratio": 2.0 + 0.1 * number, "nominal_cost": alpha * beta**2 * gamma**2,
                "params": 1000, "seconds": 3.0, "rss_mb": 500.0,
            })  # fmt: skip
    records.append({**records[0], "number": 99, "state": "FAIL", "val_accuracy": None,
                    "epoch_accuracies": [], "curve": [], "epochs": 0,
                    "error": "NonFiniteLossError: nan"})
    payload = results.to_json(stats.summarize(records), records)
    (tmp_path / "results.json").write_text(json.dumps(payload))
    (tmp_path / "config.yaml").write_text("name: handmade\n")
    return payload


def test_terminal_table_lists_candidates_best_first_with_their_ties(tmp_path):
    payload = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "compound", [0.80, 0.81]),
                                  ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71]),
                                  ("a1.0_b1.0_g1.41", "resolution", [0.805, 0.80])])
    rows = report.candidates_text(payload).splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["a1.2_b1.1_g1.15", "a1.0_b1.0_g1.41",
                                                "a2.0_b1.0_g1.0"]  # fmt: skip
    assert rows[0].endswith("best") and rows[1].endswith("tied")
    assert rows[2].split()[-2:] == ["0.0071", "worse"]  # beyond seed noise


def test_report_regenerates_markdown_and_plots(tmp_path, capsys):
    _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "compound", [0.80, 0.81]),
                        ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71]),
                        ("a1.0_b1.0_g1.41", "resolution", [0.805, 0.80])])  # fmt: skip
    report.main(argparse.Namespace(run_dir=str(tmp_path)))
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Grid search: handmade")
    assert "indistinguishable" in text  # the two close candidates tie
    assert "| a2.0_b1.0_g1.0 | depth |" in text
    assert "NonFiniteLossError" in text and "Pooled seed std" in text
    for name in ("accuracy_vs_cost.png", "beta_gamma_plane.png", "learning_curves.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
        assert f"plots/{name}" in text
    assert "report:" in capsys.readouterr().out


def test_report_without_results_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.json.*run a grid search first"):
        report.main(argparse.Namespace(run_dir=str(tmp_path)))


def _drawn(monkeypatch) -> dict:
    import matplotlib.figure

    drawn = {}
    savefig = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):
        drawn[path.name] = fig
        return savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return drawn


def test_halving_plots_compare_every_candidate_at_the_first_rung_and_ring_the_finalists(
        tmp_path, monkeypatch):
    payload = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "compound", [0.80, 0.81])])
    rung0 = [("a1.2_b1.1_g1.15", "compound", [0.60, 0.61]), ("a2.0_b1.0_g1.0", "depth", [0.50]),
             ("a1.0_b1.0_g1.41", "resolution", [0.55, 0.56])]  # fmt: skip
    first = stats.summarize(
        [{**payload["trials"][0], "candidate": key, "kind": kind, "val_accuracy": value,
          "seed": seed, "macs_ratio": 2.0 + 0.1 * i}
         for i, (key, kind, values) in enumerate(rung0) for seed, value in enumerate(values)])
    payload["rungs"] = [
        {"rung": 0, "epochs": 1 / 3, "reduction_factor": 3, "best_set": None,
         "candidates": [stats.candidate_json(c) for c in first.candidates],
         "promoted": ["a1.2_b1.1_g1.15"]},
        {"rung": 1, "epochs": 1.0, "reduction_factor": 3, "best_set": None, "promoted": [],
         "candidates": payload["candidates"]},
    ]  # fmt: skip
    drawn = _drawn(monkeypatch)
    text = report.write_report(tmp_path, payload).read_text()

    assert "## Successive halving" in text
    macs = drawn["accuracy_vs_cost.png"].axes[0]
    means = sorted(y for bars in macs.containers for y in bars.lines[0].get_ydata())
    assert means == pytest.approx([0.50, 0.555, 0.605])  # all three, at the first rung's budget
    assert "after 0.333 epochs (first rung)" in macs.get_title()
    rings = [c for c in macs.collections if c.get_label() == "last rung"]
    assert [tuple(xy) for xy in rings[0].get_offsets()] == [(2.0, pytest.approx(0.605))]
    plane = drawn["beta_gamma_plane.png"].axes[0]
    assert len(plane.collections[0].get_offsets()) == 3


def test_candidates_differing_only_in_alpha_are_drawn_side_by_side_on_the_plane():
    candidates = [{"key": k, "alpha": a, "beta": b, "gamma": g}
                  for k, a, b, g in (("x", 1.7, 1.4, 1.0), ("y", 1.1, 1.4, 1.0),
                                     ("z", 1.0, 1.0, 1.2))]  # fmt: skip
    where = plots._side_by_side(candidates)
    assert where["z"] == (1.0, 1.2)  # alone at its point: drawn where it is
    assert where["y"][1] == where["x"][1] == 1.0
    assert where["y"][0] < 1.4 < where["x"][0]  # in alpha order, centred on beta 1.4
    assert where["x"][0] - where["y"][0] == pytest.approx(0.06 * 0.4)


def test_learning_curves_have_one_labelled_line_per_candidate_best_first(tmp_path, monkeypatch):
    drawn = _drawn(monkeypatch)
    payload = _run_dir(tmp_path, [("a2.0_b1.0_g1.0", "depth", [0.70, 0.71]),
                                  ("a1.2_b1.1_g1.15", "paper", [0.80, 0.82])])  # fmt: skip
    report.write_report(tmp_path, payload)
    axes = drawn["learning_curves.png"].axes[0]
    labelled = [line for line in axes.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == [
        "a1.2_b1.1_g1.15 (paper)", "a2.0_b1.0_g1.0 (depth only)"]
    assert list(labelled[0].get_ydata()) == pytest.approx([0.61, 0.71, 0.81, 0.81])
    assert len(axes.get_lines()) == 2 + 4  # and each seed's own curve, unlabelled
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        line.get_label() for line in labelled]


def test_learning_curves_of_whole_epochs_have_whole_epoch_ticks(tmp_path, monkeypatch):
    drawn = _drawn(monkeypatch)
    payload = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "paper", [0.80, 0.82])])
    for trial in payload["trials"]:
        if trial["curve"]:
            trial["curve"] = [[1, 0.6], [2, 0.7], [3, trial["val_accuracy"]]]
    report.write_report(tmp_path, payload)
    axes = drawn["learning_curves.png"].axes[0]
    low, high = axes.get_xlim()
    ticks = [t for t in axes.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no "1.25 epochs"


def test_no_learning_curves_when_every_trial_was_validated_once(tmp_path):
    payload = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "compound", [0.80, 0.81])])
    for trial in payload["trials"]:
        trial["curve"] = [[2, trial["val_accuracy"]]] if trial["curve"] else []
    text = report.write_report(tmp_path, payload).read_text()
    assert not (tmp_path / "plots" / "learning_curves.png").exists()
    assert "learning_curves.png" not in text and "accuracy_vs_cost.png" in text


def _decision(payload, tmp_path) -> str:
    return "\n".join(report.decision_lines(payload, tmp_path))


def test_report_opens_with_the_decision_and_the_command_that_would_settle_its_tie(tmp_path):
    payload = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "paper", [0.80, 0.81]),
                                  ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71]),
                                  ("a1.0_b1.0_g1.41", "resolution", [0.805, 0.80])])
    payload["training"] = {"epochs": 3, "budget": results.budget_label(3)}
    (tmp_path / "results.json").write_text(json.dumps(payload))
    report.main(argparse.Namespace(run_dir=str(tmp_path)))
    text = (tmp_path / "report.md").read_text()
    assert text.index("## Decision") < text.index("## Verdict") < text.index("## Candidates")
    decision = _decision(payload, tmp_path)
    assert ("**Chosen:** alpha=1.2, beta=1.1, gamma=1.15 (a1.2_b1.1_g1.15, paper's (1.2, 1.1, "
            "1.15)): mean validation accuracy 0.8050 over 2 seed(s), at 3 proxy epochs."
            ) in decision
    assert "**A finding?** No: 1 other candidate(s) are within seed noise of it " in decision
    assert "(a1.0_b1.0_g1.41)" in decision
    assert "7 trials (6 complete), 12 training epochs, 0.3 trial-minutes." in decision
    # The runner-up is 0.25 points behind with a pooled std of ~0.6 points: no seed count
    # worth spending would separate it.
    assert "more than 50 seeds each would be needed" in decision
    assert "No budget check ran: depth in particular may be under-trained at 3 proxy epochs" in (
        decision)
    assert f"verify --run_dir {tmp_path} --epochs_factor 2 4" in decision


def test_a_closer_call_gets_a_max_repeats_to_race_and_a_clear_lead_is_a_finding(tmp_path):
    tied = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "paper", [0.80, 0.82]),
                               ("a1.0_b1.0_g1.41", "resolution", [0.79, 0.805]),
                               ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71])])
    decision = _decision(tied, tmp_path)
    needed = stats.seeds_to_separate(0.0125, stats.Noise(tied["noise"]["pooled_std"], 3, 0.95))
    assert f"--set search.max_repeats={needed}` races the tied candidates" in decision
    assert f"--config {tmp_path / 'config.yaml'} --run_dir {tmp_path}" in decision
    clear = _run_dir(tmp_path, [("a1.2_b1.1_g1.15", "paper", [0.90, 0.91]),
                                ("a2.0_b1.0_g1.0", "depth", [0.70, 0.71])])
    decision = _decision(clear, tmp_path)
    assert "**A finding?** Yes: it leads the runner-up (a2.0_b1.0_g1.0) by 20.00 points" in (
        decision)
    assert "To settle it" not in decision
