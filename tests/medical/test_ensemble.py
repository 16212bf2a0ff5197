"""Tests for medical.ensemble: the nested rule that keeps the fold heads' average, the one
averaging Keras model (saved, loaded, explained, exported), and a run that saves it."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from efficientnet_search.config import load_config
from efficientnet_search.medical import cv, ensemble, finetune
from efficientnet_search.medical.transfer import (
    HEAD_PREFIX,
    FinetuneModelConfig,
    build_finetune_model,
    pooled_boundary,
    split_at,
)
from tests.medical.test_cv import CV_RUN, _imbalanced_npz, _needs_lite0
from tests.medical.test_finetune import SMOKE

RECIPE = cv.HeadRecipe(epochs=20, learning_rate=0.05, dropout=0.0, batch_size=16,
                       class_weighted=True)


def _features(seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([0] * 60 + [1] * 20)
    x = rng.normal(size=(80, 3)).astype("float32")
    x[:, 0] += 3.0 * y
    return x, y


def test_nested_comparison_keeps_the_average_only_when_it_beats_one_head_out_of_fold():
    x, y = _features()
    heads = cv.fold_heads(x, y, RECIPE, k=2, seed=0, num_classes=2)
    # the same nested comparison against a single head said to be useless, or perfect
    useless = cv.FoldHeads(heads.oof, heads.heads, 0.5, heads.labels)
    kept = ensemble.nested_choice(x, useless, RECIPE, k=2, seed=0, num_classes=2)
    r = kept.record
    assert kept.used and r["compared"] and r["single_head_oof_auc"] == 0.5
    assert kept.oof.shape == heads.oof.shape
    assert r["ensemble_oof_auc"] == pytest.approx(cv.cv_auc(y, kept.oof))
    assert r["ensemble_oof_auc"] > 0.7  # learnable (feature 0 alone: ~0.98), out of fold
    perfect = cv.FoldHeads(heads.oof, heads.heads, 1.0, heads.labels)
    refused = ensemble.nested_choice(x, perfect, RECIPE, k=2, seed=0, num_classes=2)
    assert not refused.used and refused.oof is None
    assert refused.record["ensemble_oof_auc"] == pytest.approx(r["ensemble_oof_auc"])
    # an outer fold's remainder too small for k inner folds: recorded, not kept
    few = cv.FoldHeads(np.zeros((16, 2)), (), 0.5, np.array([0] * 12 + [1] * 4))
    small = ensemble.nested_choice(x[:16], few, RECIPE, k=4, seed=0, num_classes=2)
    assert not small.used and "nested folds impossible" in small.record["reason"]


def _tiny_model():
    cfg = FinetuneModelConfig(init="random", variant="b0", width=0.1, depth=0.1,
                              resolution=32, dropout=0.2)
    keras.utils.set_random_seed(0)
    return build_finetune_model(cfg, 2, False)


def test_averaging_model_is_the_mean_of_the_fold_heads_and_survives_save_gradcam_export(
        tmp_path):
    from efficientnet_search.export import export_model
    from efficientnet_search.medical import gradcam

    model = _tiny_model()
    bottom, _ = split_at(model, pooled_boundary(model))
    rng = np.random.default_rng(1)
    width = bottom.output.shape[-1]
    heads = cv.FoldHeads(np.zeros((4, 2)), tuple(
        (rng.normal(size=(width, 2)), rng.normal(size=2)) for _ in range(3)), 0.9,
        np.array([0, 0, 0, 1]))
    counts = np.array([75, 25])
    averaged = ensemble.averaging_model(model, heads, np.ones(2), counts)
    images = rng.uniform(0, 255, size=(5, 32, 32, 3)).astype("float32")
    pooled = np.asarray(bottom.predict_on_batch(images), dtype=np.float64)
    shift = np.log(counts / counts.sum() * 2)  # trained for equal classes, moved to 3:1
    expected = np.mean([cv._softmax(pooled @ k + b + shift) for k, b in heads.heads], axis=0)
    got = np.asarray(averaged.predict_on_batch(images))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, model.predict_on_batch(images), atol=1e-3)  # not the old head
    path = tmp_path / "model.keras"
    averaged.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer(HEAD_PREFIX + "average") is not None
    np.testing.assert_allclose(loaded.predict_on_batch(images), got, atol=1e-6)
    heat = gradcam.gradcam(loaded, images[:2], [0, 1])
    assert heat.shape == (2, 32, 32) and np.isfinite(heat).all()
    check = export_model(loaded, "tflite", tmp_path / "model.tflite", sample=images)
    assert check.passed


@pytest.mark.slow  # a Lite0 feature pass, 4 x 4 nested heads and a head phase, ~30 s
def test_a_run_that_keeps_the_ensemble_saves_and_scores_the_averaging_model(tmp_path,
                                                                            monkeypatch):
    _needs_lite0()
    data = _imbalanced_npz(tmp_path / "small.npz")
    monkeypatch.setattr(ensemble, "AUC_TIE", -1.0)  # keep it whatever the nested AUCs
    sets = [f"data.source=npz:{data}", *CV_RUN, "train.cv=never", "train.finetune_epochs=0",
            "eval.threshold=oof_youden", "eval.gradcam_images=2"]
    config = load_config(finetune.FinetuneConfig, SMOKE, sets)
    r = finetune.finetune(config, tmp_path / "run", verbose=0).results
    e = r["cv"]["ensemble"]
    assert e["used"] and e["compared"] and e["folds"] == 3
    assert r["threshold"]["oof_auc"] == pytest.approx(e["ensemble_oof_auc"])
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    saved = np.load(tmp_path / "run" / "cv_oof.npz")
    assert len(saved["kernels"]) == 3 and model.get_layer(HEAD_PREFIX + "average")
    predictions = np.load(tmp_path / "run" / "predictions.npz")
    from efficientnet_search import data as data_lib
    from efficientnet_search.data import config as data_config

    splits = data_config.load(config.data, config.seed)
    test = data_lib.make_pipeline(splits.test, resolution=32, batch_size=32, training=False)
    images = np.concatenate([x.numpy() for x, _ in test])
    scores = np.asarray(model.predict(images, verbose=0))
    np.testing.assert_allclose(scores, predictions["s_test"], atol=1e-5)  # what was scored
    bottom, _ = split_at(model, pooled_boundary(model))
    pooled = np.asarray(bottom.predict(images, verbose=0), dtype=np.float64)
    counts = np.bincount(saved["labels"].ravel())
    shift = np.log(counts / counts.sum() * 2)
    expected = np.mean([cv._softmax(pooled @ k + b + shift)
                        for k, b in zip(saved["kernels"], saved["biases"], strict=True)], 0)
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Fold-head ensemble" in report and "**kept**" in report
    assert (tmp_path / "run" / "plots" / "gradcam.png").exists()
    assert json.loads((tmp_path / "run" / "cv_ensemble.json").read_text())["used"]
