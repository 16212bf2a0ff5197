"""Where finetune uses cross-validation: deciding it up front, persisting the choice in the
run directory (so a resumed run reuses it), and the out-of-fold operating threshold."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search.config import ConfigError
from efficientnet_search.jsonio import write_json
from efficientnet_search.medical import clinical, cv, depth_choice, recipe_choice
from efficientnet_search.medical.transfer import class_counts, configured_resolution


@dataclasses.dataclass(frozen=True)
class CvPlan:
    """What cross-validation does in a run: choose the recipe, the threshold, both, neither."""

    small_validation: bool
    val_counts: tuple[int, ...]
    choose_recipe: bool
    threshold: str  # the resolved eval.threshold


def make_plan(config, splits, task: str) -> CvPlan:
    """Resolves `train.cv` and `eval.threshold: auto` and checks the fold count, budget and
    candidates against the data, before anything is written (a bad value: ConfigError)."""
    t, e = config.train, config.eval
    imagenet = config.model.init == "imagenet"
    single = not splits.multi_label
    val = class_counts(splits.val, splits.num_classes) if single else np.zeros(0)
    small = cv.validation_is_small(val)
    choose = single and (t.cv == "always" or (t.cv == "auto" and small)) and imagenet
    if t.cv == "always" and not (single and imagenet):
        raise ConfigError(f"train.cv=always needs single-label data and model.init=imagenet, "
                          f"got model.init={config.model.init!r}; set train.cv=never")
    threshold = e.threshold
    if threshold == "auto":
        threshold = "oof_youden" if small and imagenet and task == "binary" else "youden"
    if threshold == "oof_youden" and not (imagenet and task == "binary"):
        raise ConfigError(f"eval.threshold=oof_youden needs a binary task and model.init="
                          f"imagenet, got {task} and {config.model.init!r}; use youden")
    if choose or threshold == "oof_youden":
        train = class_counts(splits.train, splits.num_classes)
        try:
            cv.check_folds(t.cv_folds, train)
            if choose:
                recipe_choice.check_candidates(t.cv_variants, t.cv_resolutions)
            else:
                recipe_choice.check_candidates([config.model.variant], [])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        least = cv.minimum_budget_s(int(train.sum()))
        if choose and t.cv_budget_s < least:
            raise ConfigError(f"train.cv_budget_s={t.cv_budget_s:g} is too small for one "
                              f"candidate's feature pass over {int(train.sum())} training "
                              f"images (~{least} s here); set train.cv_budget_s >= {least}")
    return CvPlan(small, tuple(int(c) for c in val), choose, threshold)


def run(plan: CvPlan, config, splits, run_dir: Path):
    """(config with the chosen model, choice record or None, fold heads or None); read back
    from `run_dir` when an earlier invocation of the same run made them."""
    if not (plan.choose_recipe or plan.threshold == "oof_youden"):
        return config, None, None
    record_path, oof_path = run_dir / "cv_choice.json", run_dir / "cv_oof.npz"
    if record_path.exists() and oof_path.exists():
        record = json.loads(record_path.read_text())
        with np.load(oof_path) as saved:
            heads = cv.FoldHeads(saved["oof"], (), float(saved["auc"]), saved["labels"])
        logging.info("cross-validation results read back from %s", record_path)
    elif plan.choose_recipe:
        started = time.perf_counter()
        choice = recipe_choice.choose(config, splits)
        record, heads = choice.record(), choice.heads
        left = config.train.cv_budget_s - (time.perf_counter() - started)
        chosen = next(c for c in choice.candidates if c["cv_auc"] == heads.auc)
        depth = depth_choice.choose_depth(config, splits, choice.variant, choice.resolution,
                                          heads, recipe_choice.head_recipe(config), left,
                                          chosen["seconds"])
        record |= {"unfreeze_blocks": depth.blocks, "unfreeze": list(depth.records)}
        heads = depth.heads
    else:
        m = config.model
        resolution = configured_resolution(m)
        heads = recipe_choice.features_and_heads(m.variant, resolution, config, splits,
                                                 recipe_choice.head_recipe(config))
        record = None
    if not record_path.exists():
        np.savez(oof_path, oof=heads.oof, auc=heads.auc, labels=heads.labels)
        write_json(record_path, record)
    if record:
        model = dataclasses.replace(config.model, variant=record["variant"],
                                    resolution=record["resolution"])
        train = config.train
        if record.get("unfreeze_blocks") == 0:  # no phase 2: it did not help out of fold
            train = dataclasses.replace(train, finetune_epochs=0)
        config = dataclasses.replace(config, model=model, train=train)
    return config, record, heads


def oof_threshold(heads: cv.FoldHeads, config) -> tuple[list[clinical.Threshold], dict[str, Any]]:
    """Youden's J on the out-of-fold scores of every training image, with a percentile
    bootstrap interval of the threshold over those images (Efron & Tibshirani 1993)."""
    e = config.eval
    y = np.asarray(heads.labels).ravel() == e.positive_class
    score = heads.oof[:, e.positive_class]
    chosen = clinical.choose_threshold(y, score, "youden")
    low, high = clinical.bootstrap_ci(
        lambda idx: clinical.choose_threshold(y[idx], score[idx], "youden").value
        if 0 < y[idx].sum() < len(idx) else float("nan"),
        len(y), n_resamples=e.bootstrap_resamples, confidence=e.confidence, seed=config.seed)
    info = {"chosen_on": f"training split, out-of-fold ({config.train.cv_folds} folds, "
                         f"{len(y)} images)",
            "oof_auc": heads.auc, "threshold_ci": [low, high]}
    return [dataclasses.replace(chosen, method="oof_youden")], info
