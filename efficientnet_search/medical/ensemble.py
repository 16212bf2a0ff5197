"""The fold heads of cross-validation as one averaging model, kept only where nested
cross-validation on the training split shows that averaging them beats one head.

k-fold cross-validation (medical/cv.py) trains a head per fold on the frozen backbone's pooled
features. Deployed, those k heads could replace the one head trained on all training images:
the average of k softmax outputs, each head fitted on (k-1)/k of the images. Whether that helps
is itself measured out of fold, never on the validation or test split: for each outer fold,
the single head is the fold's head (fitted on the other folds, as `cv.fold_heads` does) and
the ensemble is the average of k heads fitted by an inner k-fold split of those same images,
both scoring the held-out fold. The ensemble is kept when its pooled out-of-fold AUC beats the
single head's by more than transfer.AUC_TIE (the margin every other cross-validated choice
uses); its out-of-fold scores then give the operating threshold.

Only for a frozen backbone (no phase 2): the heads were fitted on ImageNet features, which
phase 2 would change. The saved model is one Keras model of built-in layers (backbone, then
k dense softmax heads on the pooled features, then `Average`), so loading, export and
Grad-CAM need nothing custom.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from absl import logging

from efficientnet_search.medical import cv
from efficientnet_search.medical.transfer import AUC_TIE, HEAD_PREFIX, log_prior_ratio


@dataclasses.dataclass(frozen=True)
class EnsembleChoice:
    """Single head against the average of fold heads, both scored out of fold (nested).

    `oof`: the ensemble's out-of-fold scores (None when it was not compared); `record`: what
    results.json keeps (the decision, both AUCs or why it was not compared)."""

    used: bool
    record: dict[str, Any]
    oof: np.ndarray | None = None


def not_compared(reason: str) -> EnsembleChoice:
    return EnsembleChoice(False, {"used": False, "compared": False, "reason": reason})


def nested_choice(x: np.ndarray, heads: cv.FoldHeads, recipe: cv.HeadRecipe, *, k: int,
                  seed: int, num_classes: int) -> EnsembleChoice:
    """Compares, out of fold, one head (`heads`, from cv.fold_heads with the same k and seed)
    with the average of k inner-fold heads; `x`: the pooled features of the training images
    in the order of `heads.labels`."""
    y = np.asarray(heads.labels).ravel().astype(np.int64)
    folds = cv.stratified_folds(y, k, seed)
    oof = np.zeros_like(heads.oof)
    for fold in range(k):
        held = folds == fold
        try:
            inner = cv.fold_heads(x[~held], y[~held], recipe, k=k, seed=seed + 1 + fold,
                                  num_classes=num_classes)
        except ValueError as err:  # an outer fold's remainder too small for k inner folds
            return not_compared(f"nested folds impossible: {err}")
        oof[held] = np.mean([cv.data_prior_scores(x[held] @ kernel + bias, y[~held], recipe,
                                                  num_classes)
                             for kernel, bias in inner.heads], axis=0)
    auc = cv.cv_auc(y, oof)
    used = auc > heads.auc + AUC_TIE
    logging.info("nested cross-validation: average of %d fold heads AUC %.4f against one head "
                 "%.4f: %s", k, auc, heads.auc, "ensemble kept" if used else "one head kept")
    record = {"used": used, "compared": True, "folds": k, "single_head_oof_auc": heads.auc,
              "ensemble_oof_auc": auc, "margin": AUC_TIE,
              "rule": f"ensemble when its nested out-of-fold AUC beats one head's by > "
                      f"{AUC_TIE:g}"}
    return EnsembleChoice(used, record, oof if used else None)


def averaging_model(model: keras.Model, heads: cv.FoldHeads, trained: np.ndarray,
                    target: np.ndarray) -> keras.Model:
    """One Keras model: `model`'s backbone and pooling, then every fold head (dense softmax,
    bias moved from the class frequencies `trained` to `target` as the single head's is by
    transfer.shift_class_prior), then the average of their probabilities."""
    pooled = model.get_layer(HEAD_PREFIX + "pool").output
    shift = log_prior_ratio(trained, target)
    outputs = []
    for i, (kernel, bias) in enumerate(heads.heads):
        dense = keras.layers.Dense(kernel.shape[1], activation="softmax", dtype="float32",
                                   name=f"{HEAD_PREFIX}fold{i}")
        outputs.append(dense(pooled))
        dense.set_weights([kernel.astype("float32"), (bias + shift).astype("float32")])
    average = keras.layers.Average(name=HEAD_PREFIX + "average")(outputs)
    return keras.Model(model.inputs, average, name="finetune_fold_ensemble")
