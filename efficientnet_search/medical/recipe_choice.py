"""Backbone and input resolution candidates, scored by cross-validation on the training split.

For each (backbone, resolution) candidate (each resolution with the first backbone, then the
other backbones at the best resolution), the frozen ImageNet backbone's
pooled features of the training images are computed once and a head per fold is trained on
them (medical/cv.py); the best head (ties within transfer.AUC_TIE going to the cheaper
candidate) is where phase 2 is measured next. Which recipe is trained is decided against the
configured one in medical/cv_decision.py. Candidates stop when the next would overrun
`train.cv_budget_s` (estimated from the last one's time and the pixel count). The test split
is never read, nor is the validation split: only training images.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search.medical import cv
from efficientnet_search.medical.transfer import (
    AUC_TIE,
    FinetuneModelConfig,
    boundary_features,
    build_finetune_model,
    pooled_boundary,
    split_at,
)


@dataclasses.dataclass(frozen=True)
class RecipeChoice:
    """The best (variant, resolution) by the heads' out-of-fold AUC, every candidate's record,
    and every measured candidate's fold heads and feature-pass seconds (phase 2 continues
    from a candidate's heads; their out-of-fold scores give the operating threshold)."""

    variant: str
    resolution: int
    candidates: tuple[dict[str, Any], ...]
    measured: dict[tuple[str, int], tuple[cv.FoldHeads, float]]

    @property
    def heads(self) -> cv.FoldHeads:
        return self.measured[(self.variant, self.resolution)][0]


def check_candidates(variants, resolutions) -> None:
    """Refuses a backbone without offline ImageNet weights or an unusable resolution."""
    from efficientnet_search.arch import pretrained

    for variant in variants:
        pretrained.installed_checkpoint(variant)  # names the package to install
    for resolution in resolutions:
        if not 32 <= resolution <= 600:
            raise ValueError(f"train.cv_resolutions holds {resolution}; use sizes between 32 "
                             "and 600 px (EfficientNet-B7's)")


def pooled_features(variant: str, resolution: int, model_cfg: FinetuneModelConfig, splits,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the training images through the frozen ImageNet backbone."""
    from efficientnet_search import data

    cfg = dataclasses.replace(model_cfg, init="imagenet", variant=variant,
                              resolution=resolution, width=None, depth=None, path=None)
    model = build_finetune_model(cfg, splits.num_classes, False)
    bottom, _ = split_at(model, pooled_boundary(model))
    images = data.make_pipeline(splits.train, resolution=resolution, batch_size=batch_size,
                                training=False)
    return boundary_features(bottom, images)


def features_and_heads(variant, resolution, config, splits, recipe) -> cv.FoldHeads:
    x, y = pooled_features(variant, resolution, config.model, splits, config.data.batch_size)
    return cv.fold_heads(x, y, recipe, k=config.train.cv_folds, seed=config.seed,
                         num_classes=splits.num_classes)


def head_recipe(config) -> cv.HeadRecipe:
    t = config.train
    return cv.HeadRecipe(epochs=max(t.head_epochs, 1), learning_rate=t.head_learning_rate,
                         dropout=config.model.dropout, batch_size=config.data.batch_size,
                         class_weighted=t.imbalance != "none")


def choose(config, splits, known: dict[tuple[str, int], tuple[cv.FoldHeads, float]] | None
           = None, started: float | None = None) -> RecipeChoice:
    """Runs the candidates within `train.cv_budget_s`, counted from `started` (default: now),
    and returns the best. `known`: candidates already measured, (heads, seconds) by
    (variant, resolution), reused rather than run again."""
    t = config.train
    recipe = head_recipe(config)
    # One axis at a time (a coordinate search, 3 + 2 candidates instead of 3 x 3): every
    # resolution with the first (cheapest) backbone, then the other backbones at the best
    # resolution; the input size mattered most on small sets (issue 27: a Lite0 probe at
    # 224 px reached AUC ~0.90 where 128 px reached ~0.85).
    started = time.perf_counter() if started is None else started
    measured = dict(known or {})
    records: list[dict[str, Any]] = []
    per_pixel = max((s / r**2 for (_, r), (_, s) in measured.items()), default=None)
    best: tuple[str, int] | None = None

    def attempt(resolution: int, variant: str) -> None:
        nonlocal per_pixel, best
        key = (variant, resolution)
        if key not in measured:
            elapsed = time.perf_counter() - started
            if per_pixel is not None and elapsed + per_pixel * resolution**2 > t.cv_budget_s:
                records.append({"variant": variant, "resolution": resolution, "cv_auc": None,
                                "seconds": None, "skipped": "over train.cv_budget_s"})
                return
            tic = time.perf_counter()
            heads = features_and_heads(variant, resolution, config, splits, recipe)
            measured[key] = (heads, time.perf_counter() - tic)
            per_pixel = max(per_pixel or 0.0, measured[key][1] / resolution**2)
        heads, seconds = measured[key]
        records.append({"variant": variant, "resolution": resolution, "cv_auc": heads.auc,
                        "seconds": round(seconds, 1)})
        logging.info("cross-validation: %s at %d px, %d-fold AUC %.4f (%.0f s)", variant,
                     resolution, t.cv_folds, heads.auc, seconds)
        if best is None or heads.auc > measured[best][0].auc + AUC_TIE:
            best = key

    for resolution in sorted(t.cv_resolutions):
        attempt(resolution, t.cv_variants[0])
    if best is None:  # every candidate over the budget: the best of those measured before
        best = max(measured, key=lambda key: measured[key][0].auc)
    for variant in t.cv_variants[1:]:
        attempt(best[1], variant)
    logging.info("cross-validation: the best head is %s at %d px (AUC %.4f)", *best,
                 measured[best][0].auc)
    return RecipeChoice(best[0], best[1], tuple(records), measured)
