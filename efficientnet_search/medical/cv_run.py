"""Where finetune uses cross-validation: deciding it up front, persisting the choice in the
run directory (so a resumed run reuses it), and the out-of-fold operating threshold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search.config import ConfigError
from efficientnet_search.jsonio import write_json
from efficientnet_search.medical import clinical, cv, cv_decision, ensemble, recipe_choice
from efficientnet_search.medical.transfer import class_counts, configured_resolution, head_priors


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
    """(config with the chosen model, choice record or None, fold heads or None, ensemble
    choice or None); read back from `run_dir` when an earlier invocation of the same run
    made them. The heads' out-of-fold scores are those the threshold is chosen on: the
    fold ensemble's when it is kept (medical/ensemble.py)."""
    if not (plan.choose_recipe or plan.threshold == "oof_youden"):
        return config, None, None, None
    record_path, oof_path = run_dir / "cv_choice.json", run_dir / "cv_oof.npz"
    ensemble_path = run_dir / "cv_ensemble.json"
    if record_path.exists() and oof_path.exists() and ensemble_path.exists():
        record = json.loads(record_path.read_text())
        with np.load(oof_path) as saved:
            fitted = tuple(zip(saved["kernels"], saved["biases"], strict=True))
            heads = cv.FoldHeads(saved["oof"], fitted, float(saved["auc"]), saved["labels"])
        saved_choice = json.loads(ensemble_path.read_text())
        choice = ensemble.EnsembleChoice(saved_choice["used"], saved_choice)
        logging.info("cross-validation results read back from %s", record_path)
        return _with_record(config, record), record, heads, choice
    if plan.choose_recipe:
        record, heads = cv_decision.choose(config, splits)
    else:
        m = config.model
        resolution = configured_resolution(m)
        heads = recipe_choice.features_and_heads(m.variant, resolution, config, splits,
                                                 recipe_choice.head_recipe(config))
        record = None
    config = _with_record(config, record)
    choice = _ensemble_choice(config, splits, heads)
    if choice.used:  # the threshold comes from the ensemble's own out-of-fold scores
        heads = cv.FoldHeads(choice.oof, heads.heads, choice.record["ensemble_oof_auc"],
                             heads.labels)
    kernels = np.stack([k for k, _ in heads.heads]) if heads.heads else np.zeros(0)
    biases = np.stack([b for _, b in heads.heads]) if heads.heads else np.zeros(0)
    np.savez(oof_path, oof=heads.oof, auc=heads.auc, labels=heads.labels, kernels=kernels,
             biases=biases)
    write_json(record_path, record)
    write_json(ensemble_path, choice.record)  # last: its presence marks the choice complete
    return config, record, heads, choice


def _with_record(config, record):
    """The config with the cross-validated backbone, input size and phase 2 (or none)."""
    if not record:
        return config
    model = dataclasses.replace(config.model, variant=record["variant"],
                                resolution=record["resolution"])
    train = config.train
    if record.get("unfreeze_blocks") == 0:  # no phase 2: it did not help out of fold
        train = dataclasses.replace(train, finetune_epochs=0)
    return dataclasses.replace(config, model=model, train=train)


def _ensemble_choice(config, splits, heads: cv.FoldHeads) -> ensemble.EnsembleChoice:
    """Nested comparison of the fold heads' average with one head, where the saved model's
    backbone is the frozen one the heads were fitted on."""
    if config.train.finetune_epochs > 0 and config.train.unfreeze_blocks != 0:
        return ensemble.not_compared("phase 2 fine-tunes the backbone; the fold heads were "
                                     "fitted on the frozen ImageNet features")
    if config.progressive.enabled or heads.features is None or not heads.heads:
        return ensemble.not_compared("no fold heads on the frozen backbone's features")
    return ensemble.nested_choice(heads.features, heads, recipe_choice.head_recipe(config),
                                  k=config.train.cv_folds, seed=config.seed,
                                  num_classes=splits.num_classes)


def final_model(model, config, counts: np.ndarray, heads: cv.FoldHeads,
                choice: ensemble.EnsembleChoice | None):
    """(the model to evaluate and save, notes): the trained one, or the average of the fold
    heads on its (unchanged, frozen) backbone when nested cross-validation kept them."""
    if choice is None or not choice.used:
        return model, []
    trained, target = head_priors(config.train.imbalance, config.eval.class_prior, counts)
    r = choice.record
    note = (f"the saved model averages the {len(heads.heads)} cross-validation fold heads on "
            f"the frozen backbone (nested out-of-fold AUC {r['ensemble_oof_auc']:.4f} against "
            f"{r['single_head_oof_auc']:.4f} for one head); the validation AUC and epoch "
            "above are the single head's, trained to compare")
    return ensemble.averaging_model(model, heads, trained, target), [note]


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
