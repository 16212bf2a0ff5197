"""Phase 2 (`train.unfreeze_blocks` stages unfrozen) scored by k-fold cross-validation on the
training split, beside phase 1 alone (none).

Phase 1's out-of-fold AUC (a head per fold on frozen features, medical/cv.py) is the score of
"none". For K unfrozen stages each fold continues from its own head: the top K stages train
at `train.finetune_learning_rate` on the outputs of the frozen stages below them, computed
once per image for `CV_COPIES` augmented copies (the cut and cache of phases.phase_cut), for
`cv_phase2_epochs` passes over those copies, and score their held-out fold. Whether phase 2 is
kept is decided with the other choices in medical/cv_decision.py (issue 27: on a 546-image set
phase 2 never beat phase 1; on a 500-image PneumoniaMNIST subset it added 0.012 to the
out-of-fold AUC at 128 px).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from absl import logging

from efficientnet_search.data.pipeline import cache_budget_bytes
from efficientnet_search.medical import cv
from efficientnet_search.medical.transfer import (
    HEAD_PREFIX,
    boundary_features,
    build_finetune_model,
    compile_phase,
    split_at,
    trainable_boundary,
    unfreeze_top_blocks,
)

# Augmented copies of the training set behind each fold's phase 2 (the fast option measured
# in BUILD_NOTES session 12 used 4; 2 keep the cross-validation within a few minutes).
CV_COPIES = 2
# Image passes of phase 2 inside a fold, at most: the real phase 2 stops early on validation
# AUC, and on the 500-image PneumoniaMNIST subsets (BUILD_NOTES, issue 27, session 15) its
# best epoch was the 3rd to 8th (median 8); all 12 configured epochs x 2 copies cost 114 s a
# fold at 128 px on a loaded 2-core box, more than the budget holds for five folds.
CV_PHASE2_PASSES = 8


def cv_phase2_epochs(finetune_epochs: int) -> int:
    """Epochs over the CV_COPIES copies: about min(finetune_epochs, CV_PHASE2_PASSES) image
    passes."""
    return max(1, math.ceil(min(finetune_epochs, CV_PHASE2_PASSES) / CV_COPIES))


def measure_phase2(config, splits, variant: str, resolution: int, heads: cv.FoldHeads,
                   recipe: cv.HeadRecipe, seconds_left: float = math.inf,
                   pass_seconds: float = 0.0, expected_seconds: float = 0.0
                   ) -> tuple[cv.FoldHeads | None, dict]:
    """(out-of-fold scores of phase 2 with `train.unfreeze_blocks` stages at this candidate,
    each fold continuing from its head in `heads`, or None; the record). None, with the
    reason in the record, when it cannot be measured within `seconds_left` (what
    `train.cv_budget_s` leaves), its cut features would not fit in memory, or a skip
    connection crosses the cut. `pass_seconds`: one feature pass over the training images
    for this candidate (its cut features take 1 + CV_COPIES); `expected_seconds`: what the
    whole measurement is estimated to take (from another candidate's), so that one that
    cannot finish is not started."""
    t = config.train
    record = {"variant": variant, "resolution": resolution,
              "unfreeze_blocks": t.unfreeze_blocks, "cv_auc": None, "seconds": None}
    started = time.perf_counter()
    try:
        needs = max((1 + CV_COPIES) * pass_seconds, expected_seconds)
        if seconds_left <= needs:
            raise TimeoutError(f"{max(seconds_left, 0):.0f} s of train.cv_budget_s left, less "
                               f"than the ~{needs:.0f} s it needs")
        tuned = _unfrozen_folds(config, splits, variant, resolution, heads, recipe,
                                started + seconds_left)
    except (MemoryError, ValueError, TimeoutError) as err:
        logging.warning("phase 2 at %s / %d px not cross-validated: %s", variant, resolution,
                        err)
        return None, record | {"skipped": str(err)}
    seconds = round(time.perf_counter() - started, 1)
    logging.info("cross-validation: phase 2 at %s / %d px with %d stages unfrozen, AUC %.4f "
                 "against %.4f for its head alone (%.0f s)", variant, resolution,
                 t.unfreeze_blocks, tuned.auc, heads.auc, seconds)
    return tuned, record | {"cv_auc": tuned.auc, "seconds": seconds}


def _unfrozen_folds(config, splits, variant, resolution, heads: cv.FoldHeads, recipe,
                    deadline: float):
    from efficientnet_search import data

    t = config.train
    cfg = dataclasses.replace(config.model, init="imagenet", variant=variant,
                              resolution=resolution, width=None, depth=None, path=None)
    model = build_finetune_model(cfg, splits.num_classes, False)
    unfreeze_top_blocks(model, t.unfreeze_blocks, t.bn_inference)
    boundary = trainable_boundary(model)
    needed = (1 + CV_COPIES) * splits.sizes["train"] * math.prod(boundary.shape[1:]) * 4
    if needed > cache_budget_bytes():
        raise MemoryError(f"the cut features would take {needed / 1e9:.1f} GB")
    bottom, top = split_at(model, boundary)

    def images(augmented: bool, seed: int):  # unshuffled: features stay in image order
        return data.make_pipeline(splits.train, resolution=resolution, training=augmented,
                                  augment=config.data.augment, shuffle_buffer=1,
                                  batch_size=config.data.batch_size, seed=seed)

    x_plain, y = boundary_features(bottom, images(False, config.seed))
    copies = [boundary_features(bottom, images(True, config.seed + c))[0]
              for c in range(CV_COPIES)]
    y = np.asarray(y).ravel().astype(np.int64)
    folds = cv.stratified_folds(y, t.cv_folds, config.seed)
    start = top.get_weights()
    dense = top.get_layer(HEAD_PREFIX + "predictions")
    oof = np.zeros_like(heads.oof)
    folds_started = time.perf_counter()
    for fold, (kernel, bias) in enumerate(heads.heads):
        per_fold = (time.perf_counter() - folds_started) / max(fold, 1)
        if fold and time.perf_counter() + per_fold * (len(heads.heads) - fold) > deadline:
            raise TimeoutError(f"{len(heads.heads)} folds of phase 2 would overrun "
                               f"train.cv_budget_s={t.cv_budget_s:g} ({per_fold:.0f} s a fold)")
        held = folds == fold
        top.set_weights(start)
        dense.set_weights([kernel.astype("float32"), bias.astype("float32")])
        compile_phase(top, t.finetune_learning_rate, "binary" if splits.num_classes == 2
                      else "multiclass")
        x_fit = np.concatenate([x[~held] for x in copies])
        y_fit = np.tile(y[~held], CV_COPIES)
        weights = None
        if recipe.class_weighted:
            counts = np.bincount(y_fit, minlength=splits.num_classes)
            weights = {c: len(y_fit) / (splits.num_classes * max(n, 1))
                       for c, n in enumerate(counts)}
        top.fit(x_fit, y_fit, epochs=cv_phase2_epochs(t.finetune_epochs),
                batch_size=config.data.batch_size, class_weight=weights, verbose=0,
                shuffle=True)
        probs = np.asarray(top.predict(x_plain[held], verbose=0), dtype=np.float64)
        logits = np.log(np.clip(probs, 1e-12, None))  # softmax logits up to a constant
        oof[held] = cv.data_prior_scores(logits, y[~held], recipe, splits.num_classes)
    return cv.FoldHeads(oof, (), cv.cv_auc(y, oof), y)
