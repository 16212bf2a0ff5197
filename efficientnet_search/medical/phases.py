"""The two training phases of the fine-tuning recipe (medical/finetune.py), resumable.

Phase 1 ("head") trains the new head on the frozen backbone; phase 2 ("finetune") the top
stages at a lower rate. Each phase trains on images, or on features of its frozen part
computed once (`phase_cut`), one epoch at a time through `resume.run_epochs`, which
checkpoints every epoch so that the same command on the same run directory continues where
a killed run stopped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search.data.pipeline import cache_budget_bytes
from efficientnet_search.medical.resume import (
    PHASES,
    Checkpoints,
    EpochPlan,
    PhaseState,
    epoch_seed,
    run_epochs,
)
from efficientnet_search.medical.transfer import (
    BestWeights,
    balanced_stream,
    boundary_features,
    compile_phase,
    freeze_backbone,
    pooled_boundary,
    split_at,
    trainable_boundary,
    unfreeze_top_blocks,
)
from efficientnet_search.training import progressive


@dataclasses.dataclass(frozen=True)
class FeatureCache:
    """How a phase trains on features computed once: `top` trains on the outputs of the
    frozen `bottom` for `copies` passes over the training set, augmented or not."""

    bottom: keras.Model
    top: keras.Model
    copies: int
    augmented: bool


@dataclasses.dataclass(frozen=True)
class PhaseRun:
    """What every phase of one run shares: the task, the best-weights tracker, early
    stopping's patience, class weights, the checkpoints and the state a restart found."""

    task: str
    tracker: BestWeights
    patience: int
    class_weight: dict[int, float] | None
    checkpoints: Checkpoints
    saved: PhaseState | None
    verbose: int


def train_phases(model, config, splits, pipes, task: str, class_weight, run_dir: Path,
                 verbose: int = 1) -> tuple[dict[str, list], BestWeights]:
    """Runs phase 1 then phase 2 (either may have 0 epochs), resuming from the run
    directory's checkpoints; returns (history, tracker) with the best weights restored."""
    t = config.train
    tracker = BestWeights(pipes["val"], task, config.eval.positive_class)
    checkpoints = Checkpoints(Path(run_dir) / "checkpoints", model)
    saved = checkpoints.load()
    history: dict[str, list] = {"phase": []}
    if saved is not None:
        checkpoints.restore(saved, tracker)
        history = {k: list(v) for k, v in saved.history.items()}
        where = "its end" if saved.phase_done else f"epoch {saved.epochs_done + 1}"
        logging.warning("resuming %s: phase %s at %s (%d epochs done in it; %s)", run_dir,
                        saved.phase, where, saved.epochs_done, checkpoints.folder)
    run = PhaseRun(task, tracker, t.patience, class_weight, checkpoints, saved, verbose)
    for name, epochs, lr in (("head", t.head_epochs, t.head_learning_rate),
                             ("finetune", t.finetune_epochs, t.finetune_learning_rate)):
        if epochs == 0 or _finished_before(saved, name):
            continue
        if name == "head":
            freeze_backbone(model)
        else:
            unfreeze_top_blocks(model, t.unfreeze_blocks, t.bn_inference)
        logging.info("phase %s: %d epochs at lr %g, %d trainable weights", name, epochs, lr,
                     len(model.trainable_weights))
        cut = phase_cut(model, config, splits, name)
        if cut is not None:
            history = _cached_phase(model, cut, name, config, splits, pipes, epochs, lr, run,
                                    history)
        else:
            plan, next_epoch = _image_plan(model, config, pipes, name, epochs)
            _compile(model, lr, run, name)
            history = run_epochs(model, plan, pipes["val"], phase=name, epochs=epochs,
                                 history=history, next_epoch=next_epoch,
                                 **_loop_args(run, name))
    tracker.restore(model)
    return history, tracker


def _finished_before(saved: PhaseState | None, name: str) -> bool:
    if saved is None:
        return False
    done = PHASES.index(name) < PHASES.index(saved.phase) or (
        name == saved.phase and saved.phase_done)
    if done:
        logging.info("phase %s finished before the restart: not repeated", name)
    return done


def _resume_of(run: PhaseRun, name: str) -> PhaseState | None:
    return run.saved if run.saved is not None and run.saved.phase == name else None


def _compile(fit_model, lr: float, run: PhaseRun, name: str) -> None:
    """A fresh Adam; when resuming inside this phase, its saved moments and the weights."""
    compile_phase(fit_model, lr, run.task)
    resume = _resume_of(run, name)
    if resume is not None:
        run.checkpoints.restore(resume, run.tracker, optimizer=fit_model.optimizer)


def _loop_args(run: PhaseRun, name: str) -> dict[str, Any]:
    return dict(tracker=run.tracker, patience=run.patience, checkpoints=run.checkpoints,
                resume=_resume_of(run, name), class_weight=run.class_weight,
                verbose=run.verbose)


def _image_plan(model, config, pipes, name: str, epochs: int):
    """(plan, next_epoch) of a phase on images: each epoch a pipeline seeded for that epoch;
    with progressive learning, the epoch's stage (size, dropout, RandAugment factor)."""
    seed = config.seed
    if name == "head" or not config.progressive.enabled:
        def plain(epoch: int) -> EpochPlan:
            return EpochPlan(pipes["train_epoch"](epoch_seed(seed, name, epoch)),
                             pipes["steps"])
        return plain, None
    stages = progressive.plan_stages(config.progressive, epochs=epochs,
                                     final_resolution=pipes["resolution"],
                                     final_dropout=config.model.dropout)
    dropout = next((layer for layer in model.layers if layer.name.endswith("head_dropout")),
                   None)  # fmt: skip
    current = [None]

    def stage_of(epoch: int) -> progressive.Stage:
        return [s for s in stages if s.first_epoch <= epoch][-1]

    def setup(stage: progressive.Stage) -> None:
        # EfficientNetV2 Algorithm 1: each stage's regularization; a retrace reads the rate.
        if dropout is not None:
            dropout.rate = stage.dropout
        model.train_function = None
        current[0] = stage.index
        logging.info("progressive stage %d/%d from epoch %d: %d px, dropout %.3f, "
                     "RandAugment factor %.3f", stage.index + 1, len(stages),
                     stage.first_epoch + 1, stage.resolution, stage.dropout,
                     stage.randaugment_factor)

    def plan(epoch: int) -> EpochPlan:
        stage = stage_of(epoch)
        fresh = current[0] != stage.index
        return EpochPlan(pipes["train_at"](stage, epoch_seed(seed, name, epoch)),
                         pipes["steps"], stage_start=epoch == stage.first_epoch,
                         setup=(lambda: setup(stage)) if fresh else None)

    def next_epoch(epoch: int, stopped: bool) -> int:
        # Early stopping ends a stage, not the phase (a later stage sees larger images).
        if not stopped:
            return epoch + 1
        later = [s.first_epoch for s in stages if s.first_epoch > epoch]
        return later[0] if later else epochs

    return plan, next_epoch


def phase_cut(model, config, splits, name: str) -> FeatureCache | None:
    """Where phase `name` can train on features computed once instead of on images (phase 1:
    the pooled features; phase 2: the input of the lowest unfrozen stage), or None to train
    on images, each epoch a pass of the whole network.

    Unaugmented, one copy is exact, not an approximation: frozen layers run in inference
    mode, so their output is the same every epoch. Augmented, `train.augment_copies` copies
    stand in for fresh augmentation every epoch.
    """
    t = config.train
    augmented = config.data.augment != "none" and (
        t.head_augment if name == "head" else t.finetune_augment)
    copies = t.augment_copies if augmented else 1
    if copies == 0 or (name == "finetune" and config.progressive.enabled):
        return None
    boundary = pooled_boundary(model) if name == "head" else trainable_boundary(model)
    if boundary is None or None in boundary.shape[1:]:
        return None
    # float32 features of every copy, twice for training (the array and the shuffle buffer)
    examples = 2 * copies * (splits.sizes.get("train") or 0) + (splits.sizes.get("val") or 0)
    needed = examples * math.prod(boundary.shape[1:]) * 4
    if needed > cache_budget_bytes():
        logging.warning("phase %s trains on images: caching its input features would take "
                        "%.1f GB, over a quarter of the RAM", name, needed / 1e9)
        return None
    try:
        bottom, top = split_at(model, boundary)
    except ValueError as err:
        logging.warning("phase %s trains on images: %s", name, err)
        return None
    return FeatureCache(bottom, top, copies, augmented)


def cached_features(cache: FeatureCache, pipes, name: str):
    """(x_train, y_train, per-copy size, x_val, y_val): the frozen part's outputs."""
    started = time.perf_counter()
    images = pipes["train_images"](cache.augmented)
    passes = [boundary_features(cache.bottom, images) for _ in range(cache.copies)]
    x_train = np.concatenate([x for x, _ in passes])
    y_train = np.concatenate([y for _, y in passes])
    x_val, y_val = boundary_features(cache.bottom, pipes["val"])
    logging.info("phase %s: frozen features %s of %d x %d %s + %d images in %.1f s (computed "
                 "once)", name, x_train.shape[1:], cache.copies, len(passes[0][0]),
                 "augmented" if cache.augmented else "unaugmented", len(x_val),
                 time.perf_counter() - started)
    return x_train, y_train, len(passes[0][0]), x_val, y_val


def _cached_phase(model, cache: FeatureCache, name, config, splits, pipes, epochs, lr,
                  run: PhaseRun, history):
    """Phase `name` on the outputs of `cache.bottom`, the frozen layers, computed once per
    copy (a forward pass of the frozen part per copy instead of one per epoch)."""
    x_train, y_train, per_copy, x_val, y_val = cached_features(cache, pipes, name)
    base = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    batch = config.data.batch_size
    balanced = config.train.imbalance == "balanced_sampling" and not splits.multi_label

    def plan(epoch: int) -> EpochPlan:
        seed = epoch_seed(config.seed, name, epoch)
        if balanced:
            return EpochPlan(balanced_stream(base, splits.num_classes, seed).batch(batch),
                             pipes["steps"])
        # An epoch: as many examples as the data has, drawn from all copies.
        return EpochPlan(base.shuffle(len(x_train), seed=seed).take(per_copy).batch(batch))

    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch)
    run.tracker.watch(val, snapshot_of=model)
    try:
        _compile(cache.top, lr, run, name)
        return run_epochs(cache.top, plan, val, phase=name, epochs=epochs, history=history,
                          **_loop_args(run, name))
    finally:
        run.tracker.watch(pipes["val"])


def best_phase(history: dict, tracker: BestWeights) -> str | None:
    """The phase whose epoch gave the kept weights (None before any epoch)."""
    return history["phase"][tracker.best_epoch - 1] if tracker.best_epoch else None
