"""benchmarks/reference_table.py: stratified picks, one row per training, resume, the
seed-to-seed statistics beside the CSV, and a changed recipe refused."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import zlib

import pytest

from benchmarks import reference_table
from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.search.proxy import trainer as proxy
from tests.paths import CONFIGS, ROOT


class FakeTraining:
    """Stands in for proxy.train_proxy: accuracy rises 10 points per million multiply-adds,
    plus about 1 point of seed noise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, config, splits, *, alpha, beta, gamma, seed, **_):
        self.calls.append(tuple(config.blocks))
        macs = spec_cost(config.spec(alpha, beta, gamma, splits.num_classes)).macs
        noise = random.Random(seed * 7919 + zlib.crc32(" ".join(config.blocks).encode()))
        accuracy = 0.4 + macs / 1e7 + 0.01 * noise.random()
        return proxy.ProxyResult((accuracy,), ((1.0, accuracy),), 1000, macs, 0.01, False, 1.0)


SMOKE = str(CONFIGS / "nas" / "smoke.yaml")


def _run(out, *extra):
    reference_table.main(["--config", SMOKE, "--architectures", "6", "--seeds", "2",
                          "--pool", "200", "--threads", "0", "--out", str(out), *extra])


def _rows(out):
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_is_stratified_by_macs_resumes_and_states_its_seed_to_seed_ceiling(
        tmp_path, monkeypatch):
    fake = FakeTraining()
    monkeypatch.setattr(proxy, "train_proxy", fake)
    out = tmp_path / "table.csv"
    _run(out, "--limit", "2")  # a run cut short: two architectures, both seeds
    assert len(_rows(out)) == 4 and len(fake.calls) == 4
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["summary"]["architectures_complete"] == 2 and "note" in side["summary"]
    _run(out)  # resumed: only the missing 4 architectures train
    rows = _rows(out)
    assert len(rows) == 12 and len(fake.calls) == 12
    assert sorted({int(r["stratum"]) for r in rows}) == list(range(6))
    by_stratum = {int(r["stratum"]): int(r["macs"]) for r in rows}
    assert [by_stratum[s] for s in range(6)] == sorted(by_stratum.values())
    assert {(r["arch"], r["seed"]) for r in rows} == {(str(a), str(s)) for a in range(6)
                                                     for s in range(2)}  # fmt: skip
    summary = json.loads(out.with_suffix(".json").read_text())["summary"]
    assert summary["rows"] == 12 and summary["architectures_complete"] == 6
    # accuracy grows with MACs far beyond the 1-point seed noise: seeds agree closely
    assert summary["seed_to_seed_spearman"] > 0.8
    low, high = summary["seed_to_seed_spearman_ci"]
    assert low <= summary["seed_to_seed_spearman"] <= high
    assert "reference_table.py" in json.loads(out.with_suffix(".json").read_text())["command"]
    _run(out)  # complete: nothing trains again
    assert len(fake.calls) == 12


def test_another_recipe_for_the_same_table_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(proxy, "train_proxy", FakeTraining())
    out = tmp_path / "table.csv"
    _run(out, "--limit", "1")
    before = out.read_text()
    with pytest.raises(SystemExit) as exit_:
        _run(out, "--set", "proxy.epochs=3")
    assert exit_.value.code == 2 and out.read_text() == before


def test_like_trains_another_tables_networks_at_a_new_recipe_and_compares(tmp_path,
                                                                           monkeypatch):
    fake = FakeTraining()
    monkeypatch.setattr(proxy, "train_proxy", fake)
    base = tmp_path / "table.csv"
    _run(base)
    fake.calls.clear()
    other = tmp_path / "longer.csv"
    # another pick seed would draw other networks: --like overrides the picking
    _run(other, "--set", "proxy.epochs=3", "--pick_seed", "5", "--like", str(base))
    base_rows, rows = _rows(base), _rows(other)
    # the same networks, numbered and ordered as in the first table
    assert [(r["arch"], r["stratum"], r["blocks"]) for r in rows] == [
        (r["arch"], r["stratum"], r["blocks"]) for r in base_rows]
    assert len(fake.calls) == 12
    side = json.loads(other.with_suffix(".json").read_text())
    assert side["recipe"]["like"] == str(base) and side["recipe"]["proxy"]["epochs"] == 3
    like = side["summary"]["like"]
    assert like["architectures"] == 6
    # the fake ranks by MACs in both recipes: the two tables agree
    assert like["means_spearman"] > 0.8
    low, high = like["like_seed_to_seed_spearman_ci"]
    assert low <= like["like_seed_to_seed_spearman"] <= high


def test_like_without_the_table_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _run(tmp_path / "t.csv", "--like", str(tmp_path / "missing.csv"))
    assert exit_.value.code == 2 and "no such table" in capsys.readouterr().out
    assert not (tmp_path / "t.csv").exists()


@pytest.mark.slow  # 4 real tiny trainings, ~40 s on 2 loaded cores
def test_real_trainings_fill_the_table(tmp_path):
    out = tmp_path / "table.csv"
    reference_table.main(["--config", SMOKE, "--architectures", "2", "--seeds", "2",
                          "--pool", "50", "--threads", "0", "--out", str(out)])
    rows = _rows(out)
    assert len(rows) == 4 and all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert all(float(r["seconds"]) > 0 for r in rows)


@pytest.mark.slow  # 4 algorithms x 2 budgets x 6 repeats of Optuna studies: ~40 s loaded
def test_lookup_search_compares_the_four_algorithms_on_the_table(tmp_path, monkeypatch,
                                                                 capsys):
    from benchmarks import lookup_search

    monkeypatch.setattr(proxy, "train_proxy", FakeTraining())
    out = tmp_path / "table.csv"
    reference_table.main(["--config", SMOKE, "--architectures", "12", "--seeds", "2",
                          "--pool", "300", "--threads", "0", "--out", str(out)])
    lookup_search.main(["--table", str(out), "--config", SMOKE, "--repeats", "4",
                        "--budgets", "3", "12", "--out", str(tmp_path / "lookup.json")])
    rows = json.loads((tmp_path / "lookup.json").read_text())["rows"]
    assert {(r["algorithm"], r["budget"]) for r in rows} == {
        (a, b) for a in lookup_search.ALGORITHMS for b in (3, 12)}
    full = {r["algorithm"]: r["regret"][0] for r in rows
            if r["budget"] == 12 and r["looked_up"] == 12}
    # every architecture looked up: each such algorithm picks the best observed one, the same
    assert full and len(set(full.values())) == 1
    few = {r["algorithm"]: r["regret"][0] for r in rows if r["budget"] == 3}
    assert few["random"] >= full["random"]
    assert "top-5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:  # a budget beyond the table
        lookup_search.main(["--table", str(out), "--config", SMOKE, "--budgets", "13"])
    assert exit_.value.code == 2


def test_supernet_check_without_a_trained_run_exits_2(tmp_path, capsys):
    from benchmarks import oneshot_vs_table

    with pytest.raises(SystemExit) as exit_:
        oneshot_vs_table.main(["--run_dir", str(tmp_path / "nothing")])
    assert exit_.value.code == 2 and "no trained one-shot run" in capsys.readouterr().out


@pytest.mark.slow  # a tiny supernet (the one-shot smoke's space) and 6 scored: ~2 min loaded
def test_supernet_ranking_against_the_table(tmp_path, monkeypatch):
    from tests.search.nas.oneshot.test_spread import _oneshot

    monkeypatch.setattr(proxy, "train_proxy", FakeTraining())
    table = tmp_path / "table.csv"  # the nas smoke's space is the one-shot smoke's
    reference_table.main(["--config", SMOKE, "--architectures", "6", "--seeds", "2",
                          "--pool", "200", "--threads", "0", "--out", str(table)])
    _oneshot(tmp_path / "run")
    before = sorted(p.name for p in (tmp_path / "run").rglob("*"))
    result = subprocess.run(
        [sys.executable, "benchmarks/oneshot_vs_table.py", "--run_dir", str(tmp_path / "run"),
         "--table", str(table), "--bootstrap", "50", "--out", str(tmp_path / "vs.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "vs.json").read_text())
    assert out["architectures"] == 6
    assert set(out["comparison"]["predictors"]) == {"supernet", "macs", "params"}
    assert out["seed_to_seed_spearman"] is not None and "ceiling" in result.stdout
    assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == before  # RUN only read
