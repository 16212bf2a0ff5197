"""The budget check (grid/budget.py): the grid's answer retrained at k times its epochs, the
ranking and equal-cost verdicts restated per budget, and its bad input."""

from __future__ import annotations

import json

import pytest

from efficientnet_search.cli import main as cli
from efficientnet_search.search.grid import budget, budget_report, verify_plan
from efficientnet_search.search.grid import run as grid
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS
from tests.search.grid.test_run import TINY

SMOKE = str(CONFIGS / "grid" / "smoke.yaml")
# The grid at 3 epochs: resolution beats depth clearly; the paper's point leads by a hair.
GRID = {"paper": (1.2, 1.1, 1.15, [0.81, 0.82]), "resolution": (1.0, 1.0, 1.4, [0.80, 0.81]),
        "width": (1.0, 1.7, 1.0, [0.76, 0.77]), "depth": (3.0, 1.0, 1.0, [0.62, 0.63]),
        "compound": (1.4, 1.1, 1.1, [0.70, 0.71])}
COST = {"paper": 2.5, "resolution": 2.0, "width": 2.1, "depth": 1.3, "compound": 2.0}


def _records(accuracies: dict[str, list[float]]) -> list[dict]:
    out = []
    for kind, values in accuracies.items():
        alpha, beta, gamma, _ = GRID[kind]
        for seed, value in enumerate(values):
            out.append({"candidate": f"{kind}_key", "kind": kind, "alpha": alpha, "beta": beta,
                        "gamma": gamma, "seed": seed, "state": "COMPLETE",
                        "val_accuracy": value, "cost": "macs", "macs_ratio": COST[kind],
                        "cost_ratio": COST[kind]})  # fmt: skip
    return out


def _results(grid: dict = GRID) -> dict:
    from efficientnet_search.search import stats
    from efficientnet_search.search.grid import results

    records = _records({kind: values for kind, (*_, values) in grid.items()})
    return results.to_json(stats.summarize(records), records)


def test_budget_points_are_the_best_set_and_single_dimensions_with_the_grids_seeds():
    payload = _results()
    assert payload["best_set"] == ["paper_key", "resolution_key"]
    chosen = verify_plan.budget_candidates(payload)
    assert chosen == ["paper_key", "resolution_key", "width_key", "depth_key"]  # no compound
    config = grid.load_grid_config(SMOKE, [*TINY, "search.repeats=2"], None)  # as the grid ran
    points = verify_plan.budget_points(config, payload, 4.0)
    assert sorted(p.key for p in points) == sorted(f"{k}_s{s}" for k in chosen for s in (0, 1))
    assert all(p.attrs["epochs_factor"] == 4.0 and p.attrs["cost_ratio"] for p in points)
    assert verify_plan.budget_passes(config, 4.0) == 4 * config.proxy.evaluations


def test_a_raced_grids_extra_seeds_are_not_retrained_so_the_check_costs_the_same():
    raced = dict(GRID, paper=(*GRID["paper"][:3], [0.81, 0.82, 0.815, 0.818]),
                 resolution=(*GRID["resolution"][:3], [0.80, 0.81, 0.805, 0.812]))
    payload = _results(raced)  # racing gave the two leaders seeds 2 and 3
    config = grid.load_grid_config(SMOKE, [*TINY, "search.repeats=2", "search.max_repeats=4"],
                                   None)  # fmt: skip
    points = verify_plan.budget_points(config, payload, 2.0)
    chosen = verify_plan.budget_candidates(payload)
    assert {"paper_key", "resolution_key"} <= set(chosen)
    assert sorted(p.key for p in points) == sorted(f"{k}_s{s}" for k in chosen for s in (0, 1))


def test_longer_training_restates_each_verdict_and_the_rank_correlation(tmp_path):
    payload = _results()
    # At 2x depth catches up (within noise); at 4x it overtakes resolution; width stays put.
    at2 = _records({"paper": [0.84, 0.85], "resolution": [0.83, 0.84], "width": [0.80, 0.81],
                    "depth": [0.82, 0.83]})
    at4 = _records({"paper": [0.86, 0.87], "resolution": [0.84, 0.85], "width": [0.82, 0.83],
                    "depth": [0.90, 0.91]})
    section = budget.summarize(payload, {2.0: at2, 4.0: at4}, 3.0, 0.95)
    assert [r["epochs"] for r in section["rows"]] == [3.0, 6.0, 12.0]
    rho = {tuple(c["epochs"]): c["spearman"] for c in section["spearman"]}
    assert rho[(3.0, 6.0)] == pytest.approx(0.8)  # depth and width swap the last two places
    assert rho[(3.0, 12.0)] == pytest.approx(-0.2)
    outcomes = {(p["winner"], p["loser"]): p["outcomes"] for p in budget.pair_outcomes(
        section["rows"])}
    assert outcomes[("resolution", "depth")] == ["within noise", "reverses"]
    text = section["verdict"]
    assert "at 6, 12 epochs against the proxy's 3" in text
    assert "Spearman +0.80 at 6 epochs, Spearman -0.20 at 12 epochs" in text
    assert "resolution beats depth at 3 epochs: within noise at 6; reverses at 12." in text
    assert "At 12 epochs the best by mean is depth_key (a single best)." in text
    assert section["rows"][2]["equal_cost_verdict"].startswith("At 12 proxy epochs: Trend:")

    markdown = "\n".join(budget_report.lines(section))
    assert ("| depth_key | depth | 0.6250 +- 0.0071 (2) | 0.8250 +- 0.0071 (2) | **0.9050** +- "
            "0.0071 (2) |") in markdown  # bold: tied with (here: is) that budget's best
    assert "depth leads (within noise) width at 3 epochs: beyond noise at 6" in text
    drawn = budget_report.plot(section, tmp_path / "budget.png")
    assert drawn == "budget.png" and (tmp_path / "budget.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs_factor", "0"], "argument --epochs_factor: must be a number > 0 (2: twice "
                                   "the proxy's epochs), got '0'"),
        (["--epochs_factor", "two"], "must be a number > 0 (2: twice the proxy's epochs), got "
                                     "'two'"),
        (["--epochs_factor", "-1"], "got '-1'"),
        (["--epochs_factor", "2"], "no results.json in '{run_dir}': verify needs a finished "
                                   "grid"),
    ],
)
def test_bad_budget_input_fails_with_one_line_and_leaves_the_run_as_it_was(tmp_path, capsys,
                                                                          argv, message):
    err = fails_with_one_line(["verify", "--run_dir", str(tmp_path), *argv], capsys)
    assert message.format(run_dir=tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_bad_factors_in_a_config_or_the_library_fail_before_any_work(tmp_path, capsys):
    argv = ["grid", "--config", SMOKE, "--run_dir", str(tmp_path), "--set",
            "verify.epochs_factor=[2, -1]"]
    assert ("verify.epochs_factor values must be numbers > 0 (2: twice the proxy's epochs), "
            "got [2.0, -1.0]") in fails_with_one_line(argv, capsys)
    argv[-1] = "verify.epochs_factor=[two]"
    assert "verify.epochs_factor" in fails_with_one_line(argv, capsys)
    assert not (tmp_path / "config.yaml").exists()
    with pytest.raises(ValueError, match=r"got \[0\]; e.g. --epochs_factor 2 4"):
        verify_plan.check_factors([0])
    with pytest.raises(ValueError, match="numbers > 0"):
        verify_plan.check_factors([float("nan")])


def test_max_repeats_below_repeats_fails_with_one_line_and_changes_nothing(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"best": null}')
    before = (tmp_path / "results.json").read_text()
    argv = ["grid", "--config", SMOKE, "--run_dir", str(tmp_path), "--set", "search.repeats=3",
            "--set", "search.max_repeats=2"]
    assert ("search.max_repeats=2 is below search.repeats=3: set it to at least 3 (racing adds "
            "seeds up to it), or leave it out for no racing") in fails_with_one_line(argv, capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert (tmp_path / "results.json").read_text() == before


@pytest.mark.slow
def test_budget_check_after_a_tiny_grid_trains_the_same_seeds_longer_and_resumes(tmp_path,
                                                                                capsys):
    config = grid.load_grid_config(SMOKE, TINY, None)
    grid.run_grid_search(config, run_dir=tmp_path)
    grid_results = json.loads((tmp_path / "results.json").read_text())
    singles = {c["key"] for c in grid_results["candidates"] if c["kind"] != "paper"}
    expected = singles | {grid_results["best"]["key"]}  # one seed: the best set is unknown
    capsys.readouterr()
    cli.main(cli.parse_args(["prog", "verify", "--run_dir", str(tmp_path), "--epochs_factor",
                             "2"]))
    assert "Budget check" in capsys.readouterr().out
    saved = json.loads((tmp_path / "budget.json").read_text())
    trials = saved["trials"]
    assert sorted(t["candidate"] for t in trials) == sorted(expected)
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert {t["epochs"] for t in trials} == {2} and {t["seed"] for t in trials} == {0}
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [r["epochs"] for r in payload["budget_check"]["rows"]] == [1, 2]
    report = (tmp_path / "report.md").read_text()
    assert "## At longer training (budget check)" in report and "No budget check ran" not in report
    assert (tmp_path / "plots" / "budget.png").stat().st_size > 1000
    cli.main(cli.parse_args(["prog", "verify", "--run_dir", str(tmp_path), "--epochs_factor",
                             "2"]))
    again = json.loads((tmp_path / "budget.json").read_text())["trials"]
    assert [t["seconds"] for t in again] == [t["seconds"] for t in trials]  # resumed


def test_each_factor_is_written_as_it_finishes_so_a_stopped_check_keeps_the_shorter_budgets(
        tmp_path, monkeypatch):
    from efficientnet_search import config as config_lib
    from efficientnet_search.search.trials import worker as trial_work

    config_lib.save_config(grid.load_grid_config(SMOKE, [*TINY, "search.repeats=2"], None),
                           tmp_path)  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(_results()))
    at2 = {"paper": 0.84, "resolution": 0.83, "width": 0.80, "depth": 0.82}

    def fake_work(config, ladder, **_):  # trains factor 2 (made up), is stopped at factor 4
        while (trial := ladder.current().queue.claim()) is not None:
            if trial.user_attrs["epochs_factor"] == 4.0:
                raise KeyboardInterrupt
            value = at2[trial.user_attrs["kind"]] + 0.005 * trial.user_attrs["seed"]
            trial_work.end_trial(ladder.current().queue.study, trial, value,
                                 attrs={"epoch_accuracies": [value]})  # fmt: skip

    monkeypatch.setattr(budget.worker, "work", fake_work)
    with pytest.raises(KeyboardInterrupt):
        budget.run_budget_check(tmp_path, [2, 4], workers=1)
    saved = json.loads((tmp_path / "budget.json").read_text())
    assert [r["factor"] for r in saved["rows"]] == [1.0, 2.0]  # the grid's row, then 2x
    assert len(saved["trials"]) == 8
    assert saved["verdict"].startswith("Budget check") and "the best by mean is" in saved[
        "verdict"]
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [r["factor"] for r in payload["budget_check"]["rows"]] == [1.0, 2.0]
    assert "## At longer training (budget check)" in (tmp_path / "report.md").read_text()


def test_re_running_the_grid_keeps_the_budget_check_and_says_when_its_best_set_was_older(
        tmp_path):
    path = tmp_path / "results.json"
    checked = {"best_set": ["paper_key", "resolution_key"]}  # the grid's row at check time
    check = {"verdict": "Budget check ... at 6 epochs.", "rows": [checked]}
    path.write_text(json.dumps({**_results(), "budget_check": check, "verify": {"rows": [1]}}))
    same = grid._later_checks(path, _results())  # resumed: the same best set
    assert same == {"budget_check": check, "verify": {"rows": [1]}}
    raced = grid._later_checks(path, {**_results(), "best_set": ["resolution_key"]})
    assert raced["budget_check"]["verdict"].startswith(check["verdict"])
    assert "earlier state of the grid, paper_key, resolution_key; re-run `verify`" in raced[
        "budget_check"]["verdict"]
    path.write_text(json.dumps({**_results(), "best_set": ["resolution_key"], **raced}))
    again = grid._later_checks(path, {**_results(), "best_set": ["resolution_key"]})
    assert again == raced  # re-run after the race: the note names the checked set, once
    back = grid._later_checks(path, _results())  # the best set is the checked one again
    assert back["budget_check"] == check
    assert grid._later_checks(tmp_path / "absent.json", _results()) == {}
