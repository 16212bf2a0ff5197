"""Rank-based classification metrics in NumPy: ROC curve and AUC, confusion matrix,
sensitivity/specificity, balanced accuracy, quadratic-weighted kappa.

Pure NumPy on purpose: the bootstrap intervals in `clinical.py` call these a thousand times
per metric, and the rank form of AUC is one sort per call. ROC-AUC is the Mann-Whitney U
statistic from average ranks, which handles tied scores exactly as the trapezoidal ROC area
does (Hanley & McNeil 1982); the tests compare it with both definitions.
"""

from __future__ import annotations

import math

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC: P(score of a positive > score of a negative), ties counting 1/2.

    Returns NaN when `y_true` holds only one class (AUC is undefined there).
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y_true.shape != score.shape:
        raise ValueError(f"y_true and score differ in length: {y_true.shape} vs {score.shape}")
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = average_ranks(score)[y_true].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, thresholds) for "positive when score >= threshold", thresholds descending.

    The first point is (0, 0) at threshold +inf, the last (1, 1) at the lowest score.
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-score, kind="mergesort")
    ordered, hits = score[order], y_true[order]
    last_of_value = np.r_[ordered[1:] != ordered[:-1], True]
    tp = np.cumsum(hits)[last_of_value]
    fp = np.cumsum(~hits)[last_of_value]
    n_pos, n_neg = max(int(y_true.sum()), 1), max(int((~y_true).sum()), 1)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, ordered[last_of_value]]


def sensitivity_specificity(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(sensitivity, specificity) of 0/1 predictions; NaN where a class is absent."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    y_pred = np.asarray(y_pred).astype(bool).ravel()
    n_pos, n_neg = y_true.sum(), (~y_true).sum()
    sens = (y_pred & y_true).sum() / n_pos if n_pos else float("nan")
    spec = (~y_pred & ~y_true).sum() / n_neg if n_neg else float("nan")
    return float(sens), float(spec)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Cohen's (1968) weighted kappa with weights (i - j)^2 / (K - 1)^2 for ordered classes.

    1 - sum(w * observed) / sum(w * expected), where expected is the outer product of the
    true and predicted class frequencies (agreement by chance). 1 is perfect agreement, 0
    chance level; NaN when chance alone cannot disagree (one class in truth and prediction).
    """
    if num_classes < 2:
        raise ValueError(f"kappa needs num_classes >= 2, got {num_classes=}")
    observed = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    n = observed.sum()
    if n == 0:
        return math.nan
    grades = np.arange(num_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2 / (num_classes - 1) ** 2
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chance = float((weights * expected).sum())
    return 1.0 - float((weights * observed).sum()) / chance if chance > 0 else math.nan


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """The mean recall over the classes present in `y_true` (Brodersen et al. 2010)."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(axis=1)
    if not support.any():
        return math.nan
    return float((np.diag(matrix)[support > 0] / support[support > 0]).mean())
