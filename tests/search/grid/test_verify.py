"""verify: the grid's answer checked at larger phi, end to end on a tiny grid, and bad input."""

from __future__ import annotations

import json

import pytest

from efficientnet_search.cli import main as cli
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.grid import verify_plan
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS
from tests.search.grid.test_run import TINY

SMOKE = str(CONFIGS / "grid" / "smoke.yaml")


def test_verify_after_the_grid_trains_matched_members_and_resumes(tmp_path, capsys):
    config = grid.load_grid_config(SMOKE, [*TINY, "candidates.tolerance=1.5", "verify.phi=[2]"],
                                   None)  # fmt: skip
    grid.run_grid_search(config, run_dir=tmp_path)
    payload = json.loads((tmp_path / "results.json").read_text())
    section = payload["verify"]
    assert [row["phi"] for row in section["rows"]] == [1, 2]
    assert set(section["families"]) >= {"found", "paper"} and len(section["families"]) == 3
    trials = json.loads((tmp_path / "verify.json").read_text())["trials"]
    assert len(trials) == 3 and all(t["state"] == "COMPLETE" for t in trials)
    for t in trials:  # matched in measured cost: each member near 2^2 times the baseline
        assert t["phi"] == 2 and t["cost"] == "macs" and 2.5 < t["cost_ratio"] < 6
    assert "phi=1 ranking:" in section["verdict"] and "phi=2:" in section["verdict"]
    assert "## At larger phi (verify)" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plots" / "verify.png").stat().st_size > 1000
    assert "## At equal measured cost" in (tmp_path / "report.md").read_text()

    capsys.readouterr()
    cli.main(cli.parse_args(["prog", "verify", "--run_dir", str(tmp_path), "--phi", "2"]))
    again = json.loads((tmp_path / "verify.json").read_text())["trials"]
    assert [t["seconds"] for t in again] == [t["seconds"] for t in trials]  # resumed, not redone
    assert "verify:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--phi", "2"], "no results.json in '{run_dir}': verify needs a finished grid; run "
                         "`efficientnet-search grid --run_dir {run_dir}` there first"),
        (["--phi", "1"], "no results.json in '{run_dir}'"),
    ],
)
def test_verify_without_results_fails_with_one_line_and_writes_nothing(tmp_path, capsys,
                                                                      argv, message):
    err = fails_with_one_line(["verify", "--run_dir", str(tmp_path), *argv], capsys)
    assert message.format(run_dir=tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_verify_refuses_phi_below_two_before_touching_a_finished_run(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"best": None, "candidates": []}))
    (tmp_path / "config.yaml").write_text("name: done\n")
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    with pytest.raises(SystemExit):
        cli.main(cli.parse_args(["prog", "verify", "--run_dir", str(tmp_path), "--phi", "1"]))
    assert "verify needs phi values >= 2 (phi=1 is the grid), got phi=[1]" in (
        capsys.readouterr().err)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    with pytest.raises(ValueError, match="no completed candidate"):
        verify_plan.families({"best": None, "candidates": []})
