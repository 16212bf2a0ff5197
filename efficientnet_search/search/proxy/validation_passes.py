"""Validation passes inside a proxy's `fit`: when to validate, what to report, when to stop.

The grid's rungs and the NAS pruner read accuracy several times an epoch
(`proxy.evals_per_epoch`); Keras' own `validation_freq` counts whole epochs only, so the passes
are a callback that evaluates between two training steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection

import keras

# Called after each validation pass with (pass number from 1, accuracy); True stops training.
EvalReport = Callable[[int, float], bool]


class ValidationWatcher(keras.callbacks.Callback):
    """Validates `evals_per_epoch` times an epoch, reports each pass, stops on a non-finite
    loss or when the report says so.

    Every pass is a `model.evaluate` between two training steps (fit gets no validation data,
    so a trial stopped inside an epoch is not validated again at its end). Passes do not
    change what is trained: a run's epoch-end accuracies are the same for any setting.
    With `passes`, passes inside an epoch whose number is not listed are skipped (epoch
    ends always run, unless `epoch_ends` is False: then only listed passes run).
    """

    def __init__(self, report: EvalReport | None, val, steps_per_epoch: int,
                 evals_per_epoch: int, passes: Collection[int] | None = None,
                 epoch_ends: bool = True) -> None:
        super().__init__()
        self.epoch_ends = epoch_ends or passes is None
        self.report = report
        self.val = val
        self.per_epoch = evals_per_epoch
        self.passes = passes
        self.inner_steps = {round(i * steps_per_epoch / evals_per_epoch): i
                            for i in range(1, evals_per_epoch)}  # fmt: skip
        self.epoch = 0
        self.accuracies: list[float] = []
        self.curve: list[tuple[float, float]] = []
        self.stopped = False
        self.error = ""
        self.val_seconds = 0.0  # time spent in validation passes
        self.first_step_seconds = 0.0  # fit's start to the end of its first step (tracing)
        self._fit_start = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._fit_start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if not self.first_step_seconds:
            float(loss if loss is not None else 0.0)  # waits for the step to finish
            self.first_step_seconds = time.perf_counter() - self._fit_start
        if loss is not None and not math.isfinite(float(loss)):
            self.error = f"loss became {float(loss)} at step {batch + 1}"
            self.model.stop_training = True
            return
        inner = self.inner_steps.get(batch + 1)
        number = self.epoch * self.per_epoch + (inner or 0)
        if inner and not self.stopped and (self.passes is None or number in self.passes):
            self._record(number, self._evaluate())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.error or self.stopped:
            return
        loss = float(logs.get("loss", math.nan))
        if not math.isfinite(loss):
            self.error = f"loss {loss} at epoch {epoch + 1}"
            self.model.stop_training = True
            return
        if not self.epoch_ends and (epoch + 1) * self.per_epoch not in self.passes:
            return
        accuracy = self._evaluate()
        if self._record((epoch + 1) * self.per_epoch, accuracy):
            self.accuracies.append(accuracy)

    def _evaluate(self) -> float:
        start = time.perf_counter()
        logs = self.model.evaluate(self.val, verbose=0, return_dict=True)
        self.val_seconds += time.perf_counter() - start
        return float(logs.get("accuracy", math.nan))

    def _record(self, number: int, accuracy: float) -> bool:
        """Keeps the result of pass `number` (from 1) and reports it; False when training
        must stop."""
        epochs_done = number / self.per_epoch
        if not math.isfinite(accuracy):
            self.error = f"val accuracy {accuracy} after {epochs_done:g} epochs"
            self.model.stop_training = True
            return False
        self.curve.append((round(epochs_done, 4), accuracy))
        if self.report is not None and self.report(number, accuracy):
            self.stopped = True
            self.model.stop_training = True
        return True
