"""`pipeline` with the one-shot search as its NAS stage (`nas.method: oneshot`)."""

from __future__ import annotations

import json

import pytest

from efficientnet_search import config as config_lib
from efficientnet_search.search import pipeline
from efficientnet_search.search.nas.oneshot import run as oneshot
from efficientnet_search.search.proxy import trainer as proxy
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS
from tests.search.nas.test_run import FakeTraining

PIPELINE = CONFIGS / "pipeline" / "oneshot_smoke.yaml"
CHOSEN = ["r1_k5_s11_e1_i32_o16", "r3_k3_s22_e6_i16_o24_se0.25", "r2_k5_s22_e1_i24_o48"]


def test_the_oneshot_stage_feeds_the_grid_and_the_family(tmp_path, monkeypatch):
    runs = []

    def stand_in(config, run_dir, *, workers, storage):  # what run_oneshot writes, quickly
        assert isinstance(config, oneshot.OneShotConfig) and config.name == "oneshot_smoke"
        runs.append((run_dir, workers, storage))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text(json.dumps(
            {"kind": "nas", "method": "oneshot", "chosen": {"blocks": CHOSEN}}))

    monkeypatch.setattr(oneshot, "run_oneshot", stand_in)
    monkeypatch.setattr(proxy, "train_proxy", FakeTraining())
    config = config_lib.load_config(pipeline.PipelineConfig, PIPELINE)
    assert config.nas.method == "oneshot"
    record = pipeline.run_pipeline(config, config_dir=PIPELINE.parent, run_dir=tmp_path)
    assert runs == [(tmp_path / "nas", 1, None)]
    grid_payload = json.loads((tmp_path / "grid" / "results.json").read_text())
    assert grid_payload["blocks"] == CHOSEN == record["blocks"]
    assert [m["phi"] for m in record["members"]] == [1, 2, 3]


@pytest.mark.parametrize("override, message", [
    ("nas.method=darts", "nas.method='darts' is not a NAS method; accepted: nas, oneshot"),
    ("nas.config=../nas/smoke.yaml",  # a multi-trial config given to the one-shot search
     "unknown config key 'search'; accepted keys: data, name, objective, oneshot"),
])
def test_bad_nas_stage_is_one_line_and_exit_2(tmp_path, capsys, override, message):
    err = fails_with_one_line(["pipeline", "--config", str(PIPELINE), "--run_dir",
                               str(tmp_path / "run"), "--set", override], capsys)  # fmt: skip
    assert message in err, err
    assert not (tmp_path / "run").exists()
