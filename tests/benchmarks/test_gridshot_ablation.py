"""benchmarks/gridshot_ablation.py on a fake finished gridshot run: the run's own scores and
a retrained setting compared with the stand-alone truth, read back on a re-run, bad input
refused (exit 2)."""

from __future__ import annotations

import json

import pytest

from benchmarks import gridshot_ablation
from efficientnet_search import config as config_lib
from efficientnet_search.search.gridshot import scores as scores_lib
from efficientnet_search.search.gridshot.config import load_gridshot_config
from efficientnet_search.search.gridshot.run import check
from tests.paths import CONFIGS

TINY = ["candidates.alpha_range=[1.0, 1.2]", "candidates.beta_range=[1.0, 1.1]",
        "candidates.gamma_range=[1.0, 1.1]", "supernet.train.steps_per_epoch=2",
        "supernet.train.checkpoint_every=2", "supernet.bootstrap=50",
        "data.max_val=64"]  # fmt: skip


def _fake_run(run):
    """A finished run: config.yaml, 5 points trained with 2 seeds (truth rising with the
    point's order) and grid_scores.csv whose scores are the truth itself."""
    config = load_gridshot_config(str(CONFIGS / "grid" / "gridshot_smoke.yaml"), TINY)
    _, points, _, _ = check(config)
    picked = points[:5]
    config_lib.save_config(config, run)
    means = [0.5 + 0.05 * i for i in range(5)]
    standalone = [{"key": p.key, "standalone": [m - 0.01, m + 0.01], "mean": m}
                  for p, m in zip(picked, means, strict=True)]  # fmt: skip
    best = picked[-1].key
    (run / "results.json").write_text(json.dumps({
        "standalone": standalone, "standalone_best_set": [best],
        "supernet_loss": {"first": 9.0, "last": 4.5, "steps": 7},
        "seconds": {"supernet": 12.0}}))  # fmt: skip
    rows = [{"key": p.key, "kind": p.kind, "alpha": p.alpha, "beta": p.beta, "gamma": p.gamma,
             "resolution": 32, "score": m, "rank": 5 - i, "macs": 1000 + i,
             "params": 500 - i, "activations": 1, "cost_ratio": 2.0, "network": p.key}
            for i, (p, m) in enumerate(zip(picked, means, strict=True))]  # fmt: skip
    scores_lib.write_rows(rows, run / "grid_scores.csv")
    return [p.key for p in picked], best


def test_the_runs_own_scores_against_the_truth_without_training(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    _, best = _fake_run(run)
    gridshot_ablation.main(["--run_dir", str(run), "--out_dir", str(out)])
    (first,) = json.loads((out / "ablation.json").read_text())["settings"]
    assert first["setting"] == "run" and first["steps"] == 7 and first["train_seconds"] == 12.0
    assert first["n"] == 5 and first["predictors"]["supernet"]["spearman"] == pytest.approx(1.0)
    assert first["predictors"]["params"]["spearman"] == pytest.approx(-1.0)
    assert first["best_in_best_set"] and first["supernet_best"] == best
    assert first["seed_to_seed"]["spearman"] == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "| run | 7 | 12 | - | 4.50 |" in printed and "yes (" + best in printed
    assert not (out / "run").exists()  # nothing trained


@pytest.mark.slow  # trains a supernet: ~80 s at load 6 (three traces of the step)
def test_compares_the_run_and_a_setting_with_the_truth_and_reads_it_back(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    keys, best = _fake_run(run)
    argv = ["--run_dir", str(run), "--out_dir", str(out), "--setting", "few:"]
    gridshot_ablation.main(argv)
    table = json.loads((out / "ablation.json").read_text())
    first, few = table["settings"]
    assert first["setting"] == "run" and first["steps"] == 7 and first["n"] == 5
    assert first["predictors"]["supernet"]["spearman"] == pytest.approx(1.0)
    assert first["best_in_best_set"] and first["supernet_best"] == best
    assert few["setting"] == "few" and few["steps"] == 2 and few["resumed_at"] == 0
    assert few["n"] == 5 and few["supernet_best"] in keys
    assert few["best_in_best_set"] == (few["supernet_best"] == best)
    assert first["seed_to_seed"]["spearman"] == pytest.approx(1.0)
    scored = (out / "few" / "grid_scores.csv").read_text()
    assert all(k in scored for k in keys) and scored.count("\n") == 6  # only the truth's
    printed = capsys.readouterr().out
    assert "| few | 2 |" in printed and "params alone: Spearman -1.00" in printed

    gridshot_ablation.main(argv)  # read back: nothing trained again
    assert json.loads((out / "ablation.json").read_text())["settings"][1] == few
    with pytest.raises(SystemExit) as exit_info:  # another setting under the same name
        gridshot_ablation.main([*argv[:-1], "few:supernet.train.epochs=2"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("setting", ["no_colon", "run:supernet.train.epochs=2",
                                     "bad:supernet.train.epochs=0", "bad:nosuch.key=1"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, setting):
    run = tmp_path / "run"
    _fake_run(run)
    with pytest.raises(SystemExit) as exit_info:
        gridshot_ablation.main(["--run_dir", str(run), "--out_dir", str(tmp_path / "out"),
                                "--setting", setting])  # fmt: skip
    assert exit_info.value.code == 2
    assert capsys.readouterr().out.count("\n") == 1


def test_a_run_without_stand_alone_results_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    _fake_run(run)
    (run / "results.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        gridshot_ablation.main(["--run_dir", str(run), "--out_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "holds no stand-alone results" in capsys.readouterr().out
