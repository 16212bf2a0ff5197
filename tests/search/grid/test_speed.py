"""Search speed-ups that must not change a result: a re-initialized model instead of a fresh
build, data resized once and shared, worker processes kept while their memory stays flat."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from efficientnet_search import data
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.grid import plan, results, worker
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.proxy import data_cache
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.proxy.config import ProxyConfig
from efficientnet_search.search.trials import study as study_lib
from tests.paths import CONFIGS

TINY_BLOCKS = ("r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e6_i16_o24_se0.25")
SMOKE = str(CONFIGS / "grid" / "smoke.yaml")
TINY_GRID = [
    f"proxy.blocks=[{', '.join(TINY_BLOCKS)}]", "proxy.steps_per_epoch=2",
    "data.batch_size=16", "data.source=synthetic", "data.max_train=64", "data.max_val=32",
    "candidates.single_dimension=false", "search.repeats=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def splits():
    return data.synthetic_splits(num_classes=3, image_size=32, n_train=96, n_val=32, n_test=8,
                                 seed=0)  # fmt: skip


def test_a_reinitialized_model_trains_exactly_like_a_fresh_build(splits):
    # Dropout and stochastic depth on: their seed generators must be reset as well.
    config = ProxyConfig(blocks=TINY_BLOCKS, epochs=2, evals_per_epoch=2, dropout=0.3,
                               drop_connect_rate=0.2)  # fmt: skip
    values = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0,
              "data": DataConfig(source="synthetic", batch_size=16)}
    fresh = proxy.train_proxy(config, splits, seed=5, **values)
    models = proxy.ModelCache()
    other = proxy.train_proxy(config, splits, seed=4, models=models, **values)
    reused = proxy.train_proxy(config, splits, seed=5, models=models, **values)
    assert not other.reused_model and reused.reused_model
    assert reused.curve == fresh.curve  # bit for bit: every accuracy equal
    assert other.curve != fresh.curve  # the seed does matter, so equality means something
    assert set(reused.timing) == {"build_s", "first_step_s", "train_s", "val_s"}
    assert all(seconds > 0 for seconds in reused.timing.values())
    # Validating only the pass that is read (search.validation: needed): the same accuracy.
    final_only = proxy.train_proxy(config, splits, seed=5, models=models, passes={4},
                                   epoch_ends=False, **values)  # fmt: skip
    assert final_only.curve == fresh.curve[-1:]
    assert final_only.timing["val_s"] < reused.timing["val_s"]


def _batches(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_data_resized_once_gives_the_batches_of_resizing_in_every_trial(tmp_path):
    original = data.synthetic_splits(num_classes=3, image_size=28, n_train=80, n_val=24,
                                     n_test=8, seed=1)  # fmt: skip
    loads = []
    shared = data_cache.ResizedSplits(lambda: loads.append(1) or original, directory=tmp_path,
                                      key="synthetic")  # fmt: skip
    for resolution in (36, 45, 36):
        resized = shared.get(resolution)
        assert resized.sizes == {"train": 80, "val": 24, "test": 0}
        for split, training in (("train", True), ("val", False)):
            def pipeline(ds, training=training, resolution=resolution):
                return data.make_pipeline(ds, resolution=resolution, batch_size=16,
                                          training=training, seed=3)  # fmt: skip

            expected = _batches(pipeline(getattr(original, split)))
            got = _batches(pipeline(getattr(resized, split)))
            assert len(got) == len(expected)
            for (x, y), (x0, y0) in zip(got, expected, strict=True):
                np.testing.assert_array_equal(x, x0)
                np.testing.assert_array_equal(y, y0)
    assert loads == [1]
    # Another worker process: the files in the cache serve it without reading the source.
    other = data_cache.ResizedSplits(_never_called, directory=tmp_path, key="synthetic")
    assert other.num_classes == 3
    np.testing.assert_array_equal(_batches(other.get(45).train.batch(80))[0][0],
                                  _batches(shared.get(45).train.batch(80))[0][0])


def _never_called():
    raise AssertionError("the source was read although the cache held the data")


def test_a_worker_stops_taking_trials_once_its_memory_outgrew_the_limit(monkeypatch):
    state = worker._WorkerState(data=None, models=None, max_memory_growth=0.2,
                                spawned_at=None)  # fmt: skip
    monkeypatch.setattr(proxy, "peak_rss_mb", lambda: 1000.0)
    monkeypatch.setattr(proxy, "current_rss_mb", lambda: 1150.0)
    state.note_memory()  # the first trial sets the reference: its peak
    assert state.first_peak_mb == 1000.0 and not state.over_memory
    state.note_memory()
    assert not state.over_memory  # +15% is within +20%
    monkeypatch.setattr(proxy, "current_rss_mb", lambda: 1250.0)
    state.note_memory()
    assert state.over_memory


def test_speed_switches_leave_the_study_name_alone():
    plain = grid.load_grid_config(SMOKE, [], None)
    fast = grid.load_grid_config(SMOKE, ["search.reuse_models=true", "search.data_cache=true",
                                         "search.max_memory_growth=0.2"], None)  # fmt: skip
    assert grid.study_name(plain) == grid.study_name(fast)  # a resumed run finds its trials


def test_a_claim_takes_the_preferred_waiting_trial_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    points = [study_lib.Point(key=f"{name}_s{seed}", params={"seed": seed},
                              attrs={"candidate": name, "seed": seed})
              for seed in (0, 1) for name in ("a", "b")]  # fmt: skip
    queue = study_lib.open_queue(url, "prefer", points)
    first = queue.claim()
    assert first.user_attrs["candidate"] == "a"  # queue order without a preference
    chosen = queue.claim(prefer=lambda t: t.user_attrs["candidate"] == "a")
    assert chosen.user_attrs["candidate"] == "a" and chosen.user_attrs["seed"] == 1


def test_levers_on_give_the_same_grid_results_and_record_where_the_time_went(tmp_path):
    def run(name: str, *levers: str) -> dict:
        config = grid.load_grid_config(SMOKE, [*TINY_GRID, *levers], None)
        return grid.run_grid_search(config, run_dir=tmp_path / name).results

    plain = run("plain")
    fast = run("fast", "search.reuse_models=true", "search.data_cache=true")

    def curves(res: dict) -> dict:
        return {(t["candidate"], t["seed"]): t["curve"] for t in res["trials"]}

    assert curves(fast) == curves(plain) and len(curves(plain)) == 2
    assert sorted(t["reused_model"] for t in fast["trials"]) == [False, True]
    assert not any(t["reused_model"] for t in plain["trials"])
    assert list((tmp_path / "fast" / "cache").glob("*.npy"))  # the shared resized arrays
    with (tmp_path / "fast" / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for field in results.TIMING_FIELDS:
            assert float(row[field]) >= 0.0, field
        assert float(row["time_train_s"]) > 0 and float(row["time_val_s"]) > 0
    reused = next(r for r in rows if r["reused_model"] == "True")
    fresh = next(r for r in rows if r["reused_model"] == "False")
    assert float(reused["time_first_step_s"]) < float(fresh["time_first_step_s"])


def test_a_worker_whose_memory_outgrew_the_limit_stops_and_leaves_the_rest_queued(
        tmp_path, monkeypatch):
    config = grid.load_grid_config(SMOKE, [*TINY_GRID, "search.max_memory_growth=0.2",
                                           "search.reuse_models=true", "search.repeats=3"],
                                   None)  # fmt: skip
    ladder = plan.open_ladder(config, tmp_path, None)
    monkeypatch.setattr(proxy, "peak_rss_mb", lambda: 100.0)
    monkeypatch.setattr(proxy, "current_rss_mb", lambda: 500.0)  # +400% after every trial
    done = worker.work(config, ladder, threads=None, verbose=0, run_dir=tmp_path)
    # The first trial sets the reference; the second outgrows it and the worker stops (its
    # process exits with RECYCLE_EXIT_CODE and a fresh one takes the third seed).
    assert done == worker.WorkDone(trained=2, memory_exceeded=True)
    states = sorted(t.state.name for t in ladder.current().queue.point_trials())
    assert states == ["COMPLETE", "COMPLETE", "WAITING"]
