"""Clinical evaluation of a classifier's scores: AUC, operating threshold, sensitivity, CIs.

The metrics themselves are in `metrics.py` (NumPy, rank-based AUC). Three tasks are
supported:

- `binary`: scores [n, 2] (softmax); the score of `positive_class` is thresholded at
  an operating point chosen on the VALIDATION split (Youden's J or a target sensitivity).
- `multiclass`: scores [n, K]; predictions are the argmax; AUC is one-vs-rest per class,
  macro-averaged over the classes present (an absent class has no AUC);
  sensitivity/specificity are one-vs-rest per class. Balanced accuracy (the mean recall) and
  the majority-class share are reported beside accuracy, since on imbalanced data accuracy
  alone rewards always answering the majority class. Ordered classes (disease grades) also
  get the quadratic-weighted kappa (Cohen 1968), which counts a miss by two grades four
  times a miss by one.
- `multilabel`: scores [n, L] (sigmoid); one threshold per label, chosen on validation.

Confidence intervals are percentile bootstrap intervals over test examples (Efron &
Tibshirani 1993, ch. 13); resamples where a class is missing are skipped for AUC.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from efficientnet_search.medical.metrics import (
    balanced_accuracy,
    confusion_matrix,
    quadratic_weighted_kappa,
    roc_auc,
    roc_curve,
    sensitivity_specificity,
)

TASKS = ("binary", "multiclass", "multilabel")
THRESHOLD_METHODS = ("youden", "sensitivity", "fixed")


@dataclasses.dataclass(frozen=True)
class Threshold:
    """An operating threshold on one score column and how it was chosen."""

    value: float
    method: str
    sensitivity: float  # on the data it was chosen on (validation)
    specificity: float


def choose_threshold(
    y_true: np.ndarray,
    score: np.ndarray,
    method: str = "youden",
    *,
    target_sensitivity: float = 0.9,
    fixed: float = 0.5,
) -> Threshold:
    """Chooses an operating threshold on (validation) labels and scores.

    Args:
      y_true: 0/1 labels.
      score: scores where higher means "more likely positive".
      method: "youden" maximizes sensitivity + specificity - 1 (Youden 1950); "sensitivity"
        takes the highest threshold whose sensitivity reaches `target_sensitivity` (so the
        best specificity at that sensitivity); "fixed" uses `fixed`.
      target_sensitivity: the sensitivity to reach with method "sensitivity".
      fixed: the threshold for method "fixed".
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method must be one of {THRESHOLD_METHODS}, got {method!r}")
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity!r}")
    fpr, tpr, thresholds = roc_curve(y_true, score)
    if method == "fixed":
        value = float(fixed)
    else:
        if method == "youden":
            best = int(np.argmax(tpr[1:] - fpr[1:])) + 1
        else:
            best = int(np.flatnonzero(tpr >= target_sensitivity - 1e-12)[0])
        value = float(thresholds[max(best, 1)])
    sens, spec = sensitivity_specificity(y_true, np.asarray(score) >= value)
    return Threshold(value=value, method=method, sensitivity=sens, specificity=spec)


def bootstrap_ci(
    metric: Callable[[np.ndarray], float],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric(indices)` over resamples of range(n).

    `metric` receives the resampled example indices and returns a number; NaN results (for
    example AUC on a resample with one class) are dropped.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got {n=}, {n_resamples=}")
    rng = np.random.default_rng(seed)
    values = np.array([metric(rng.integers(0, n, n)) for _ in range(n_resamples)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def choose_thresholds(
    y_val: np.ndarray,
    scores_val: np.ndarray,
    task: str,
    method: str = "youden",
    *,
    positive_class: int = 1,
    target_sensitivity: float = 0.9,
    fixed: float = 0.5,
) -> list[Threshold]:
    """Operating thresholds chosen on the validation split: one for binary, one per label for
    multi-label, none for multi-class (argmax)."""
    _check_task(task)
    if task == "multiclass":
        return []
    columns = _score_columns(scores_val, task, positive_class)
    labels = _label_columns(y_val, task, positive_class)
    target = target_sensitivity
    return [
        choose_threshold(labels[:, j], columns[:, j], method, target_sensitivity=target,
                         fixed=fixed)
        for j in range(columns.shape[1])
    ]


def evaluate(
    y_true: np.ndarray,
    scores: np.ndarray,
    task: str,
    thresholds: Sequence[Threshold] = (),
    *,
    positive_class: int = 1,
    class_names: Sequence[str] = (),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ordinal: bool = False,
) -> dict:
    """All clinical metrics of `scores` against `y_true`, as plain JSON-ready data.

    Args:
      y_true: int labels [n] (binary, multiclass) or 0/1 [n, L] (multilabel).
      scores: probabilities [n, K].
      task: "binary", "multiclass" or "multilabel".
      thresholds: from `choose_thresholds` on the validation split (binary, multilabel).
      positive_class: the positive class of a binary task.
      class_names: names for classes or labels (default "0", "1", ...).
      n_resamples, confidence, seed: the bootstrap for the AUC and accuracy intervals.
      ordinal: the classes are ordered grades (multiclass): adds the quadratic-weighted
        kappa with its interval.
    """
    _check_task(task)
    scores = np.asarray(scores, dtype=np.float64)
    y_true = np.asarray(y_true)
    if len(y_true) != len(scores):
        raise ValueError(f"{len(y_true)} labels but {len(scores)} score rows")
    if task != "multiclass" and len(thresholds) != _num_columns(scores, task):
        raise ValueError(f"{task} needs one threshold per score column, got {len(thresholds)}")
    names = list(class_names) or [str(i) for i in range(scores.shape[1])]
    if ordinal and task != "multiclass":
        raise ValueError(f"ordinal metrics need a multiclass task, got {task=}")
    fns = _metric_fns(y_true, scores, task, thresholds, positive_class)
    if ordinal:
        fns["quadratic_weighted_kappa"] = _kappa_fn(y_true, scores)
    n = len(y_true)
    everything = np.arange(n)
    result = {"task": task, "n": n}
    for name, fn in fns.items():
        result[name] = fn(everything)
        result[f"{name}_ci"] = list(bootstrap_ci(fn, n, n_resamples=n_resamples,
                                                 confidence=confidence, seed=seed))
    result["bootstrap"] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed,
                           "method": "percentile bootstrap over test examples"}
    detail = _detail(y_true, scores, task, thresholds, positive_class, names)
    return result | {k: v for k, v in detail.items() if k not in result}


def predict_labels(
    scores: np.ndarray, task: str, thresholds: Sequence[Threshold] = (), positive_class: int = 1
) -> np.ndarray:
    """Predicted labels: class ids (binary at the threshold, multiclass argmax) or 0/1 [n, L]."""
    scores = np.asarray(scores)
    if task == "multiclass":
        return np.argmax(scores, axis=1)
    columns = _score_columns(scores, task, positive_class)
    hits = columns >= np.array([t.value for t in thresholds])[None, :]
    if task == "multilabel":
        return hits.astype(np.int64)
    return np.where(hits[:, 0], positive_class, 1 - positive_class)


def prediction_margin(
    scores: np.ndarray, task: str, thresholds: Sequence[Threshold] = (), positive_class: int = 1
) -> np.ndarray:
    """How decided each prediction is, for ranking: the top class probability (multiclass),
    the mean distance of the scores from their thresholds (binary, multilabel)."""
    scores = np.asarray(scores, dtype=np.float64)
    if task == "multiclass":
        return scores.max(axis=1)
    columns = _score_columns(scores, task, positive_class)
    return np.abs(columns - np.array([t.value for t in thresholds])[None, :]).mean(axis=1)


def task_auc(y_true: np.ndarray, scores: np.ndarray, task: str, positive_class: int = 1
             ) -> float:
    """The headline AUC of a task: the positive class's ROC-AUC (binary), else the macro mean
    of the one-vs-rest (multiclass) or per-label (multilabel) AUCs that are defined.

    Early stopping watches it on validation; `evaluate` reports it (with its bootstrap CI).
    """
    _check_task(task)
    scores = np.asarray(scores, dtype=np.float64)
    if task == "multilabel":
        labels = np.asarray(y_true).astype(np.int64)
        return _mean_present([roc_auc(labels[:, j], scores[:, j])
                              for j in range(labels.shape[1])])
    labels = np.asarray(y_true).astype(np.int64).ravel()
    if task == "binary":
        return roc_auc(labels == positive_class, scores[:, positive_class])
    return _mean_present([roc_auc(labels == k, scores[:, k]) for k in range(scores.shape[1])])


def _metric_fns(y_true, scores, task, thresholds, positive_class) -> dict[str, Callable]:
    """{name: metric(indices)} closures used for the point value and the bootstrap: auc,
    accuracy and (single-label) balanced accuracy."""
    preds = predict_labels(scores, task, thresholds, positive_class)
    labels = np.asarray(y_true).astype(np.int64)
    if task != "multilabel":
        labels = labels.ravel()

    def auc(idx):
        return task_auc(labels[idx], scores[idx], task, positive_class)

    def accuracy(idx):
        return float(np.mean(preds[idx] == labels[idx]))  # multilabel: per-label accuracy

    fns = {"auc": auc, "accuracy": accuracy}
    if task != "multilabel":
        k = scores.shape[1]

        def balanced(idx):
            return balanced_accuracy(labels[idx], preds[idx], k)

        fns["balanced_accuracy"] = balanced
    return fns


def _kappa_fn(y_true, scores) -> Callable:
    labels = np.asarray(y_true).astype(np.int64).ravel()
    preds = np.argmax(np.asarray(scores), axis=1)

    def kappa(idx):
        return quadratic_weighted_kappa(labels[idx], preds[idx], scores.shape[1])

    return kappa


def _detail(y_true, scores, task, thresholds, positive_class, names) -> dict:
    """Balanced accuracy, per-class AUC, sensitivity/specificity and confusion matrices."""
    preds = predict_labels(scores, task, thresholds, positive_class)
    if task == "multilabel":
        labels = np.asarray(y_true).astype(np.int64)
        per_label = {}
        for j, name in enumerate(names):
            sens, spec = sensitivity_specificity(labels[:, j], preds[:, j])
            per_label[name] = {
                "auc": roc_auc(labels[:, j], scores[:, j]), "sensitivity": sens,
                "specificity": spec, "threshold": thresholds[j].value,
                "prevalence": float(labels[:, j].mean()),
                "confusion_matrix": confusion_matrix(labels[:, j], preds[:, j], 2).tolist(),
            }
        balanced = np.nanmean([(v["sensitivity"] + v["specificity"]) / 2
                               for v in per_label.values()])
        return {"balanced_accuracy": float(balanced),
                "subset_accuracy": float(np.mean(np.all(preds == labels, axis=1))),
                "per_label": per_label}
    labels = np.asarray(y_true).astype(np.int64).ravel()
    k = scores.shape[1]
    matrix = confusion_matrix(labels, preds, k)
    per_class = {}
    for c, name in enumerate(names):
        sens, spec = sensitivity_specificity(labels == c, preds == c)
        per_class[name] = {"auc": roc_auc(labels == c, scores[:, c]), "sensitivity": sens,
                           "specificity": spec, "support": int((labels == c).sum())}
    out = {"majority_class_share": float(matrix.sum(axis=1).max() / max(len(labels), 1)),
           "confusion_matrix": matrix.tolist(), "per_class": per_class}
    if task == "binary":
        sens, spec = sensitivity_specificity(labels == positive_class, preds == positive_class)
        out.update(sensitivity=sens, specificity=spec, threshold=thresholds[0].value,
                   positive_class=names[positive_class])
    return out


def _mean_present(values: Sequence[float]) -> float:
    """Macro mean over the classes/labels whose AUC is defined (both outcomes present)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


def _score_columns(scores: np.ndarray, task: str, positive_class: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if task == "binary":
        column = scores[:, positive_class] if scores.ndim == 2 else scores
        return column.reshape(-1, 1)
    return scores


def _label_columns(y: np.ndarray, task: str, positive_class: int) -> np.ndarray:
    y = np.asarray(y)
    if task == "binary":
        return (y.ravel().astype(np.int64) == positive_class).reshape(-1, 1)
    return y.astype(np.int64)


def _num_columns(scores: np.ndarray, task: str) -> int:
    return 1 if task == "binary" else scores.shape[1]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
