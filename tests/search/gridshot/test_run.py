"""The grid scored from a supernet end to end: every point scored once, the best trained
stand-alone through the grid's queue, supernet scores beside stand-alone accuracy; resumed
without scoring or training again."""

from __future__ import annotations

import csv
import json

from efficientnet_search.search.gridshot.config import load_gridshot_config
from efficientnet_search.search.gridshot.run import check, run_gridshot
from tests.paths import CONFIGS

SMOKE = str(CONFIGS / "grid" / "gridshot_smoke.yaml")
TINY = ["candidates.alpha_range=[1.0, 1.2]", "candidates.beta_range=[1.0, 1.1]",
        "candidates.gamma_range=[1.0, 1.1]", "supernet.train.steps_per_epoch=4",
        "supernet.train.checkpoint_every=4", "proxy.steps_per_epoch=2",
        "proxy.blocks=[r1_k3_s11_e1_i32_o16_se0.25, r2_k3_s22_e6_i16_o24_se0.25]"]  # fmt: skip


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_scores_every_point_trains_the_best_stand_alone_and_resumes(tmp_path):
    config = load_gridshot_config(SMOKE, TINY)
    _, points, _, _ = check(config)
    run_dir = tmp_path / "run"
    payload = run_gridshot(config, run_dir)

    scored = _rows(run_dir / "grid_scores.csv")
    assert [r["key"] for r in scored] == [p.key for p in points]  # every point, grid order
    networks = _rows(run_dir / "scored.csv")
    assert len(networks) == payload["networks"] == len({r["network"] for r in scored})
    assert payload["networks"] < payload["points"]  # rounding: points share networks
    trials = _rows(run_dir / "standalone" / "trials.csv")
    trained = {t["candidate"] for t in trials if t["state"] == "COMPLETE"}
    assert len(trials) == len(trained)  # one seed each, exactly once
    network = {r["key"]: r["network"] for r in scored}
    best = sorted({(-float(r["score"]), r["network"]) for r in scored})[:2]
    assert {n for _, n in best} <= {network[k] for k in trained}  # the 2 best-scored
    assert "a1.20_b1.10_g1.15" in trained  # the paper's point, the grid's reference
    assert 5 <= len(trained) <= 5 + 1  # top 2, spread 2 and the paper's (unless picked)
    both = {r["key"]: r for r in payload["standalone"]}
    assert set(both) == trained and all(len(r["standalone"]) == 1 for r in both.values())
    assert payload["ranking"]["n"] == len(trained)
    report = (run_dir / "report.md").read_text()
    assert "| a1.20_b1.10_g1.15 | paper |" in report and "**not a finding**" in report
    assert "Given MACs and params (partial Spearman" in report  # beside the difference

    rerun = run_gridshot(config, run_dir)  # resumed: nothing scored or trained again
    assert _rows(run_dir / "scored.csv") == networks
    assert _rows(run_dir / "grid_scores.csv") == scored
    assert len(_rows(run_dir / "standalone" / "trials.csv")) == len(trials)
    assert rerun["supernet_loss"]["steps"] == 0
    assert "(this run, this machine)" in report  # the first invocation did everything
    assert rerun["seconds"]["resumed_at_step"] > 0
    resumed_report = (run_dir / "report.md").read_text()  # says whose time it shows
    assert "the time of the invocations before it is not in these figures" in resumed_report
    assert json.loads((run_dir / "results.json").read_text())["standalone"] == json.loads(
        json.dumps(payload["standalone"]))
