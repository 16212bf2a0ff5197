"""Progressive learning (V2 Algorithm 1): stage plan, mixup, training and resume at a boundary."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search import config as config_lib
from efficientnet_search.training import loop as loop_lib
from efficientnet_search.training import train
from efficientnet_search.training.progressive import (
    ProgressiveConfig,
    mixup,
    plan_stages,
    stage_at,
)
from tests.training.test_train import _config_file

PROGRESSIVE = {"stages": 2, "min_resolution": 16, "min_dropout": 0.0, "max_mixup": 0.2}


def test_stages_grow_size_and_regularization_linearly():
    config = ProgressiveConfig(stages=4, min_resolution=128, min_dropout=0.1,
                               min_randaugment=0.5, max_randaugment=1.0, max_mixup=0.2)
    stages = plan_stages(config, epochs=10, final_resolution=302, final_dropout=0.4)
    assert [s.first_epoch for s in stages] == [0, 2, 5, 7]
    assert [s.resolution for s in stages] == [128, 186, 244, 302]
    assert [round(s.dropout, 3) for s in stages] == [0.1, 0.2, 0.3, 0.4]
    assert stages[0].randaugment_factor == 0.5 and stages[-1].randaugment_factor == 1.0
    assert stages[0].mixup_alpha == 0 and stages[-1].mixup_alpha == pytest.approx(0.2)
    assert [stage_at(stages, e).index for e in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]


def test_disabled_is_one_stage_at_the_final_values():
    (stage,) = plan_stages(ProgressiveConfig(), epochs=3, final_resolution=32, final_dropout=0.2)
    assert (stage.resolution, stage.dropout, stage.mixup_alpha) == (32, 0.2, 0.0)


@pytest.mark.parametrize(
    ("config", "epochs", "message"),
    [(ProgressiveConfig(stages=5), 4, "stages=5 needs at least as many epochs"),
     (ProgressiveConfig(stages=2, min_resolution=64), 4, "min_resolution=64 is above")],
)
def test_impossible_plans_are_explained(config, epochs, message):
    with pytest.raises(ValueError, match=message):
        plan_stages(config, epochs=epochs, final_resolution=32, final_dropout=0.2)


def test_mixup_weights_favour_the_first_image_and_repeat_with_the_seed():
    images = tf.random.uniform((8, 4, 4, 3))
    onehot = tf.one_hot(tf.range(8) % 4, 4)
    seed = tf.constant([0, 5], tf.int64)
    mixed, labels = mixup(images, onehot, 0.2, seed)
    again, _ = mixup(images, onehot, 0.2, seed)
    np.testing.assert_array_equal(mixed, again)
    np.testing.assert_allclose(tf.reduce_sum(labels, -1), 1.0, rtol=1e-6)
    own = tf.reduce_sum(labels * onehot, -1)  # the weight of each example's own label
    assert float(tf.reduce_min(own)) >= 0.5


@pytest.mark.slow  # three tiny runs: ~70 s on an idle 2-core machine, 7 min at load 12
def test_resume_at_a_stage_boundary_equals_an_uninterrupted_run(tmp_path, monkeypatch, caplog):
    path = _config_file(tmp_path, progressive=PROGRESSIVE, **{"train.epochs": 2})
    config = config_lib.load_config(train.TrainConfig, path)
    straight = train.train(config, tmp_path / "straight")

    original = loop_lib.Loop._end_epoch

    def stop_after_first_epoch(self, epoch, *args):
        original(self, epoch, *args)  # saves the checkpoint at the end of stage 1
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_lib.Loop, "_end_epoch", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.train(config, tmp_path / "resumed")
    monkeypatch.setattr(loop_lib.Loop, "_end_epoch", original)
    with caplog.at_level(logging.INFO):
        resumed = train.train(config, tmp_path / "resumed")
    assert resumed.resumed_from_step == straight.planned_steps // 2
    assert "progressive stage 2/2 from epoch 2: 32 px" in caplog.text
    assert "stage 1/2" not in caplog.text  # the resumed run starts in stage 2
    rows = [list(csv.DictReader((tmp_path / d / "logs" / "history.csv").open()))[-1]
            for d in ("straight", "resumed")]
    assert float(rows[1]["loss"]) == pytest.approx(float(rows[0]["loss"]), rel=1e-4)
    assert resumed.val_top1 == pytest.approx(straight.val_top1, abs=1e-6)
    # Trained on 16 then 32 px, exported at the final size.
    import keras

    assert keras.models.load_model(resumed.model_path).input_shape == (None, 32, 32, 3)


def test_each_stage_trains_at_its_own_size_and_randaugment_factor(tmp_path, monkeypatch):
    from efficientnet_search import data as pipeline_lib  # what the loop calls

    seen = []
    original = pipeline_lib.make_pipeline

    def recording(ds, **kwargs):
        if kwargs["training"]:
            seen.append((kwargs["resolution"], kwargs["randaugment_factor"]))
        return original(ds, **kwargs)

    monkeypatch.setattr(pipeline_lib, "make_pipeline", recording)
    stages = {**PROGRESSIVE, "max_mixup": 0.0, "min_randaugment": 0.1, "max_randaugment": 0.3}
    path = _config_file(tmp_path, progressive=stages, **{"train.epochs": 2})
    result = train.train(config_lib.load_config(train.TrainConfig, path), tmp_path / "run")
    # The input-throughput probe reads the final size before fit; then one pipeline a stage.
    assert seen[-2:] == [(16, pytest.approx(0.1)), (32, pytest.approx(0.3))]
    assert np.isfinite(result.val_top1)
