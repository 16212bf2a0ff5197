"""Tests for medical.clinical: AUC by ranks, thresholds, bootstrap intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from efficientnet_search.medical import clinical, metrics


def _pairwise_auc(y, s):
    """AUC by its definition: the share of (positive, negative) pairs ranked right."""
    pos, neg = s[y == 1], s[y == 0]
    wins = [1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg)]
    return float(np.mean(wins))


def _trapezoid_auc(y, s):
    fpr, tpr, _ = metrics.roc_curve(y, s)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes many ties
    assert metrics.roc_auc(y, s) == pytest.approx(_pairwise_auc(y, s), abs=1e-12)
    assert metrics.roc_auc(y, s) == pytest.approx(_trapezoid_auc(y, s), abs=1e-12)


def test_roc_auc_extremes_and_undefined():
    y = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert metrics.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_youden_threshold_separates_separable_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    t = clinical.choose_threshold(y, s, "youden")
    assert 0.3 < t.value <= 0.6
    assert (t.sensitivity, t.specificity) == (1.0, 1.0)


def test_target_sensitivity_threshold_reaches_target_with_best_specificity():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    s = rng.normal(y * 1.0, 1.0)
    t = clinical.choose_threshold(y, s, "sensitivity", target_sensitivity=0.9)
    assert t.sensitivity >= 0.9
    # Any higher threshold (better specificity) would miss the target.
    higher = np.unique(s[s > t.value])[0]
    assert metrics.sensitivity_specificity(y, s >= higher)[0] < 0.9


def test_bootstrap_ci_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(3)

    def width(n):
        y = rng.integers(0, 2, n)
        s = rng.normal(y * 1.2, 1.0)
        thr = clinical.choose_threshold(y, s)
        res = clinical.evaluate(y, np.c_[1 - s, s], "binary", [thr], n_resamples=300)
        assert res["auc_ci"][0] <= res["auc"] <= res["auc_ci"][1]
        assert res["accuracy_ci"][0] <= res["accuracy"] <= res["accuracy_ci"][1]
        return res["auc_ci"][1] - res["auc_ci"][0]

    assert width(2000) < width(100) / 2  # CI width shrinks ~ 1/sqrt(n)


def test_binary_evaluate_agrees_with_direct_computation():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    p1 = 1 / (1 + np.exp(-rng.normal((y - 0.5) * 3, 1.0)))
    scores = np.c_[1 - p1, p1]
    thr = clinical.Threshold(0.4, "fixed", 0.0, 0.0)
    res = clinical.evaluate(y, scores, "binary", [thr], class_names=["normal", "sick"])
    pred = (p1 >= 0.4).astype(int)
    tp, tn = np.sum((pred == 1) & (y == 1)), np.sum((pred == 0) & (y == 0))
    assert res["accuracy"] == pytest.approx(np.mean(pred == y))
    assert res["sensitivity"] == pytest.approx(tp / np.sum(y == 1))
    assert res["specificity"] == pytest.approx(tn / np.sum(y == 0))
    assert res["balanced_accuracy"] == pytest.approx((res["sensitivity"] + res["specificity"]) / 2)
    assert res["auc"] == pytest.approx(_pairwise_auc(y, p1))
    assert res["confusion_matrix"] == [[tn, np.sum((pred == 1) & (y == 0))],
                                       [np.sum((pred == 0) & (y == 1)), tp]]
    assert res["positive_class"] == "sick"


def test_multiclass_and_multilabel_metrics():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    scores = rng.dirichlet(np.ones(3), 300) + np.eye(3)[y]
    scores /= scores.sum(axis=1, keepdims=True)
    res = clinical.evaluate(y, scores, "multiclass", n_resamples=50)
    per_class_auc = [_pairwise_auc((y == k).astype(int), scores[:, k]) for k in range(3)]
    assert res["auc"] == pytest.approx(np.mean(per_class_auc))
    assert res["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y))
    assert np.sum(res["confusion_matrix"]) == 300

    labels = rng.integers(0, 2, (300, 4))
    probs = np.clip(labels * 0.5 + rng.uniform(0, 0.5, (300, 4)), 0, 1)
    thresholds = clinical.choose_thresholds(labels, probs, "multilabel")
    assert len(thresholds) == 4
    ml = clinical.evaluate(labels, probs, "multilabel", thresholds, n_resamples=50)
    assert ml["auc"] == pytest.approx(1.0) and ml["accuracy"] == pytest.approx(1.0)
    assert set(ml["per_label"]) == {"0", "1", "2", "3"}


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        clinical.evaluate([0, 1], [[0.5, 0.5]] * 2, "regression")
    with pytest.raises(ValueError, match="threshold method must be one of"):
        clinical.choose_threshold([0, 1], [0.1, 0.9], "otsu")
    with pytest.raises(ValueError, match="one threshold per score column"):
        clinical.evaluate([0, 1], [[0.5, 0.5]] * 2, "binary", [])


def test_macro_auc_skips_a_class_absent_from_the_test_set():
    y = np.array([0, 0, 1, 1, 0, 1])  # class 2 never occurs
    scores = np.array([[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.2, .7, .1], [.6, .3, .1],
                       [.3, .6, .1]])
    res = clinical.evaluate(y, scores, "multiclass", n_resamples=20)
    assert res["auc"] == pytest.approx(1.0)
    assert np.isnan(res["per_class"]["2"]["auc"])


def test_gradcam_examples_put_the_most_confident_mistakes_first():
    from efficientnet_search.medical import gradcam

    thresholds = [clinical.Threshold(value=0.5, method="fixed", sensitivity=1.0,
                                     specificity=1.0)]  # fmt: skip
    scores = np.array([[0.4, 0.6], [0.05, 0.95], [0.9, 0.1], [0.45, 0.55], [0.2, 0.8]])
    labels = np.array([1, 0, 0, 0, 1])
    predicted = clinical.predict_labels(scores, "binary", thresholds, 1)
    margin = clinical.prediction_margin(scores, "binary", thresholds, 1)
    assert margin == pytest.approx([0.1, 0.45, 0.4, 0.05, 0.3])
    picks = gradcam.pick_examples(labels, predicted, 2, margin)
    # Wrong: image 1 (0.95 for the wrong class) before image 3 (0.55); right: 2 then 4.
    assert picks == {"correct": [2, 4], "wrong": [1, 3]}
    assert gradcam.pick_examples(labels, predicted, 1) == {"correct": [0], "wrong": [1]}
    top = clinical.prediction_margin(np.array([[0.2, 0.7, 0.1]]), "multiclass")
    assert top == pytest.approx([0.7])


def test_quadratic_weighted_kappa_by_hand_and_its_extremes():
    # 3 grades; one miss by one grade and one by two among 6 cases.
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    observed = metrics.confusion_matrix(y, p, 3) / 6
    weights = np.array([[0, 0.25, 1], [0.25, 0, 0.25], [1, 0.25, 0]])
    expected = np.outer(observed.sum(1), observed.sum(0))
    by_hand = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert metrics.quadratic_weighted_kappa(y, p, 3) == pytest.approx(by_hand)
    assert metrics.quadratic_weighted_kappa(y, y, 3) == 1.0
    assert metrics.quadratic_weighted_kappa(y, 2 - y, 3) < 0  # reversed grades
    # A miss by two grades costs more than a miss by one.
    near = metrics.quadratic_weighted_kappa(y, np.array([0, 0, 1, 1, 2, 1]), 3)
    far = metrics.quadratic_weighted_kappa(y, np.array([0, 0, 1, 1, 2, 0]), 3)
    assert near > far


def test_metrics_agree_with_scikit_learn():
    metrics = pytest.importorskip(
        "sklearn.metrics", reason="pip install scikit-learn (in the test extra)")
    rng = np.random.default_rng(7)
    y = rng.choice(5, 400, p=[0.435, 0.25, 0.15, 0.1, 0.065])
    scores = rng.dirichlet(np.ones(5), 400) + 0.8 * np.eye(5)[y] * rng.random((400, 1))
    scores /= scores.sum(axis=1, keepdims=True)
    res = clinical.evaluate(y, scores, "multiclass", n_resamples=20, ordinal=True)
    pred = scores.argmax(1)
    assert res["auc"] == pytest.approx(
        metrics.roc_auc_score(y, scores, multi_class="ovr", average="macro"))
    assert res["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, pred))
    assert res["quadratic_weighted_kappa"] == pytest.approx(
        metrics.cohen_kappa_score(y, pred, weights="quadratic"))
    assert res["majority_class_share"] == pytest.approx(np.bincount(y).max() / 400)
    for key in ("balanced_accuracy", "quadratic_weighted_kappa"):
        low, high = res[f"{key}_ci"]
        assert low <= res[key] <= high


def test_ordinal_metrics_need_a_multiclass_task():
    with pytest.raises(ValueError, match="ordinal metrics need a multiclass task"):
        clinical.evaluate(np.array([0, 1]), np.eye(2), "binary",
                          [clinical.Threshold(0.5, "fixed", 1, 1)], ordinal=True)
def test_early_stopping_watches_the_auc_the_report_gives():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    scores = rng.dirichlet(np.ones(3), 60)
    scores[np.arange(60), y] += 0.3
    multi = clinical.evaluate(y, scores, "multiclass", n_resamples=20)["auc"]
    assert clinical.task_auc(y, scores, "multiclass") == pytest.approx(multi)
    binary = (y == 1).astype(int)
    two = np.stack([1 - scores[:, 1], scores[:, 1]], axis=1)
    threshold = [clinical.Threshold(0.5, "fixed", math.nan, math.nan)]
    reported = clinical.evaluate(binary, two, "binary", threshold, n_resamples=20)["auc"]
    assert clinical.task_auc(binary, two, "binary") == pytest.approx(reported)
    assert clinical.task_auc(binary, two, "binary") == pytest.approx(
        metrics.roc_auc(binary, two[:, 1]))


@pytest.mark.parametrize("model, expected", [
    ({"variant": "lite0", "width": None, "depth": None}, "EfficientNet-Lite0 (width 1, depth 1)"),
    ({"variant": "b2", "width": None, "depth": None}, "EfficientNet-B2 (width 1.1, depth 1.2)"),
    ({"variant": "v2-s", "width": None, "depth": None}, "EfficientNet-V2-S (width 1, depth 1)"),
    ({"variant": "b0", "width": 0.5, "depth": None}, "EfficientNet-B0 (width 0.5, depth 1)"),
    ({"variant": None, "width": 0.25, "depth": 0.5}, "EfficientNet (width 0.25, depth 0.5)"),
    ({"variant": None, "width": None, "depth": 2.0}, "EfficientNet (width 1, depth 2)"),
])
def test_model_card_names_the_architecture_with_its_coefficients(model, expected):
    # A config's null width/depth means "the variant's"; the card shows the numbers, not None.
    from efficientnet_search.medical import report
    assert report._architecture(model) == expected


def test_gradcam_rows_show_every_true_class_not_only_the_confident_normals():
    # Normals predicted at 0.99, the findings at 0.7: the correct row still shows a finding.
    from efficientnet_search.medical import gradcam

    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 0, 1, 0])
    margin = np.array([0.49, 0.48, 0.47, 0.2, 0.46, 0.1, 0.3])
    picks = gradcam.pick_examples(labels, predicted, 3, margin)
    assert picks["correct"] == [0, 3, 1]  # best normal, best finding, second normal
    assert picks["wrong"] == [6]
