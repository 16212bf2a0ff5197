"""Fine-tuning phases that resume: an epoch loop that checkpoints after every epoch.

After each epoch of either phase the run directory's `checkpoints/` receives, through
`tf.train.Checkpoint` (as `training/loop.py` does for `train`): every variable of the whole
model (frozen ones too), the phase's optimizer and the dropout / stochastic-depth seed states;
beside it `best-<n>.npz`, the best weights so far, and `state.json`, written last (by rename,
so a kill never leaves it half written), which names both and holds the phase, the epochs
done in it, the history, the best-weights tracker and early stopping's counter.

Why one `fit` call per epoch: each epoch's training batches come from a pipeline built for
that epoch with a seed derived from (run seed, phase, epoch), so a resumed run draws exactly
the batches an uninterrupted one would have; Keras' `BackupAndRestore` restores weights and
the epoch inside one `fit` call, but not the data order, early stopping's counter or which
phase a two-phase recipe was in. Early stopping is Keras' own rule (`EarlyStopping`), with its
counter carried from one call to the next and through the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from efficientnet_search.jsonio import to_plain
from efficientnet_search.medical.transfer import AUC_TIE, BestWeights
from efficientnet_search.training.progress import keras_verbose

PHASES = ("head", "finetune")


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    """The seed of one epoch's training pipeline: a function of the run seed, phase and epoch
    only, so that a resumed run's epoch k sees the batches of an uninterrupted run's."""
    return int(np.random.SeedSequence([seed, PHASES.index(phase), epoch]).generate_state(1)[0]
               % 2**31)


@dataclasses.dataclass(frozen=True)
class PhaseState:
    """Where a run stands after its last finished epoch (what `state.json` holds)."""

    phase: str
    epochs_done: int  # in this phase
    phase_done: bool
    history: dict[str, list]
    tracker: dict[str, Any]  # BestWeights' best_auc, best_loss, best_epoch, epochs_seen
    stopping: dict[str, Any]  # EarlyStopping's wait and best
    checkpoint: str  # the tf.train.Checkpoint prefix, relative to the checkpoint folder
    best: str | None  # the best weights' .npz, relative to the checkpoint folder


class CarriedStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping whose counter survives one-epoch `fit` calls and a restart: it is
    reset once per phase (`reset`) instead of at each call's start."""

    def on_train_begin(self, logs=None):
        pass

    def reset(self, wait: int = 0, best: float | None = None) -> None:
        super().on_train_begin()
        self.wait = wait
        if best is not None:
            self.best = best

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch > 0


class Checkpoints:
    """Reads and writes a fine-tuning run's per-epoch state in `folder`."""

    def __init__(self, folder: str | Path, model: keras.Model):
        self.folder = Path(folder)
        self.model = model
        # Dropout and stochastic-depth random states (as training/loop.py keeps them).
        self.rng = [v for v in model.variables if "seed_generator_state" in v.path]

    def load(self) -> PhaseState | None:
        path = self.folder / "state.json"
        if not path.exists():
            return None
        return PhaseState(**json.loads(path.read_text()))

    def save(self, state: PhaseState, optimizer, tracker: BestWeights) -> PhaseState:
        """Writes the variables and the best weights, then `state.json` naming them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        n = int(tracker.epochs_seen)
        tag = f"{state.phase}-{state.epochs_done}-{n}"
        objects = {"model": self.model, "random_state": self.rng}
        if optimizer is not None:
            objects["optimizer"] = optimizer
        prefix = tf.train.Checkpoint(**objects).write(str(self.folder / f"epoch-{tag}"))
        best = None
        if tracker.best is not None:
            best = f"best-{tag}.npz"
            paths = sorted(tracker.best)
            np.savez(self.folder / best, paths=np.array(paths),
                     **{str(i): tracker.best[p] for i, p in enumerate(paths)})
        state = dataclasses.replace(state, checkpoint=Path(prefix).name, best=best,
                                    tracker=_tracker_state(tracker))
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps(to_plain(dataclasses.asdict(state))))
        os.replace(tmp, self.folder / "state.json")
        self._remove_all_but(state)
        return state

    def restore(self, state: PhaseState, tracker: BestWeights, optimizer=None) -> None:
        """Puts the model's variables (and `optimizer`'s, when given) and the tracker back."""
        objects = {"model": self.model, "random_state": self.rng}
        if optimizer is not None:
            objects["optimizer"] = optimizer
        status = tf.train.Checkpoint(**objects).read(str(self.folder / state.checkpoint))
        status.expect_partial()  # a phase-1 optimizer is not phase 2's
        t = state.tracker
        tracker.best_auc = _float(t["best_auc"], -math.inf)
        tracker.best_loss = _float(t["best_loss"], math.inf)
        tracker.best_epoch, tracker.epochs_seen = t["best_epoch"], t["epochs_seen"]
        if state.best:
            with np.load(self.folder / state.best) as saved:
                tracker.best = {str(p): saved[str(i)] for i, p in enumerate(saved["paths"])}

    def _remove_all_but(self, state: PhaseState) -> None:
        keep = {state.best, "state.json"}
        for path in self.folder.iterdir():
            if path.name in keep or path.name.startswith(state.checkpoint + "."):
                continue
            if path.name.startswith(("epoch-", "best-")):
                path.unlink()


def _tracker_state(tracker: BestWeights) -> dict[str, Any]:
    return {"best_auc": tracker.best_auc, "best_loss": tracker.best_loss,
            "best_epoch": tracker.best_epoch, "epochs_seen": tracker.epochs_seen}


def _float(value, missing: float) -> float:
    """JSON null back to the tracker's starting -inf / inf (null is how jsonio writes them)."""
    return float(value) if value is not None else missing


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains on: the batches, the steps (None: the whole dataset) and, for
    progressive learning, a stage start that resets early stopping and retraces."""

    train: tf.data.Dataset
    steps: int | None = None
    stage_start: bool = False
    setup: Callable[[], None] | None = None  # e.g. sets the stage's head dropout


def run_epochs(fit_model: keras.Model, plan: Callable[[int], EpochPlan], val_ds, *,
               phase: str, epochs: int, history: dict[str, list], tracker: BestWeights,
               patience: int, checkpoints: Checkpoints, resume: PhaseState | None,
               class_weight=None, verbose: int = 1,
               next_epoch: Callable[[int, bool], int] | None = None) -> dict[str, list]:
    """Trains `fit_model` (compiled) for up to `epochs` epochs, one `fit` call each, and
    checkpoints after each; continues from `resume` (this phase's saved state) when given.

    `history` holds the epochs before this phase (its "phase" list names each epoch's
    phase); the returned copy adds this phase's. `next_epoch(epoch, stopped)` says which
    epoch follows (progressive learning jumps to the next stage when a stage stops early);
    by default the next one, or the end when stopped.
    """
    stop = CarriedStopping(monitor="val_auc", mode="max", patience=patience, min_delta=AUC_TIE)
    stop.set_model(fit_model)
    history = {k: list(v) for k, v in history.items()}
    epoch = 0
    stop.reset()
    if resume is not None:
        epoch = resume.epochs_done
        stop.reset(resume.stopping["wait"], resume.stopping["best"])
    next_epoch = next_epoch or (lambda e, stopped: epochs if stopped else e + 1)
    while epoch < epochs:
        step = plan(epoch)
        if step.setup is not None:
            step.setup()
        if step.stage_start:
            stop.reset()
        fitted = fit_model.fit(
            step.train, validation_data=val_ds, epochs=epoch + 1, initial_epoch=epoch,
            callbacks=[tracker, stop], class_weight=class_weight, steps_per_epoch=step.steps,
            verbose=keras_verbose(verbose), shuffle=False)
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).append(phase)
        stopped = stop.stopped
        stop.stopped_epoch = 0
        epoch = min(next_epoch(epoch, stopped), epochs)
        state = PhaseState(phase, epoch, epoch >= epochs, history, {},
                           {"wait": stop.wait, "best": stop.best}, "", None)
        checkpoints.save(state, fit_model.optimizer, tracker)
    return history
