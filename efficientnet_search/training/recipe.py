"""The EfficientNet training recipe, in one place.

Every number here is the reference's (Tan & Le 2019, Section 5.2, and the official TPU code,
tensorflow/tpu models/official/efficientnet/main.py and utils.py) unless a comment says
otherwise; every one is overridable from a train config's `train:` section (`RecipeConfig`).

- RMSProp with decay (rho) 0.9, momentum 0.9, epsilon 1e-3.
- Learning rate 0.016 per 256 images (linear scaling, see `distribute.scale_batch_and_lr`),
  linear warm-up over 5 epochs, then x0.97 every 2.4 epochs (staircase, counted from step 0 as
  the reference does); cosine decay to 0 over the run as an option.
- L2 weight decay 1e-5 added to the loss, excluding batch-norm variables and biases.
- Label smoothing 0.1.
- Exponential moving average of the weights (0.9999), batch-norm moving statistics included,
  with the reference's warm-up `decay = min(0.9999, (1 + step) / (10 + step))`; evaluation
  and export use the averaged weights.
- Dropout before the classifier and stochastic depth per variant: see `regularization_for`.

RMSProp is TF1's, as the reference used it: the mean-square accumulator starts at 1, not at
0 as in Keras' RMSprop (epsilon inside the square root is the same in both). Starting at 0
makes the first steps move every weight by about lr * sqrt(1 / (1 - rho)) with momentum piling
up on top, which wrecks the initial weight scales of a short run (timm's `RMSpropTF` notes the
same difference).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Literal

import keras
import tensorflow as tf

from efficientnet_search.arch.scaling import get_variant

# Stochastic depth ("drop connect") rate of the last block: 0.2 for every variant in the
# official efficientnet_builder.py and in keras.applications; linear over the blocks.
DROP_CONNECT_RATE = 0.2


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """How a run trains: epochs, optimizer, schedule and regularization (reference values).

    The `train:` section of a train config; the batch size is `data.batch_size` (per replica).
    """

    # The reference's ImageNet run: 218,949 steps at batch 2,048, about 350 epochs
    # (tensorflow/tpu models/official/efficientnet/main.py, --train_steps).
    epochs: int = 350
    optimizer: Literal["rmsprop", "momentum", "adam"] = "rmsprop"
    base_lr: float = 0.016  # per `lr_reference_batch` images
    lr_reference_batch: int = 256
    schedule: Literal["exponential", "cosine", "constant"] = "exponential"
    warmup_epochs: float = 5.0
    decay_epochs: float = 2.4
    decay_rate: float = 0.97
    rho: float = 0.9
    momentum: float = 0.9
    epsilon: float = 1e-3
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    ema_decay: float = 0.9999  # 0 turns the moving average off

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs!r}")
        for name in ("base_lr", "decay_epochs", "decay_rate", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"train.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("warmup_epochs", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("label_smoothing", "ema_decay", "rho", "momentum"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1), got {getattr(self, name)!r}")


def regularization_for(variant: str | None) -> tuple[float, float]:
    """(classifier dropout, stochastic depth rate) of a variant: 0.2-0.5 by the table, 0.2."""
    return get_variant(variant or "b0").dropout, DROP_CONNECT_RATE


@keras.saving.register_keras_serializable(package="efficientnet_search")
class EfficientNetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_lr`, then staircase exponential decay or cosine decay.

    exponential: `peak_lr * decay_rate ** floor(step / decay_steps)` (reference: counted from
    step 0, i.e. the warm-up eats into the first decay periods);
    cosine: `0.5 * peak_lr * (1 + cos(pi * step / total_steps))` (reference `cosine` option);
    constant: `peak_lr`. During the first `warmup_steps`: `peak_lr * step / warmup_steps`.
    """

    def __init__(
        self,
        peak_lr: float,
        *,
        warmup_steps: int,
        decay_steps: int,
        decay_rate: float = 0.97,
        total_steps: int = 1,
        kind: str = "exponential",
    ):
        if kind not in ("exponential", "cosine", "constant"):
            raise ValueError(f"schedule must be exponential, cosine or constant, got {kind!r}")
        self.peak_lr = float(peak_lr)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = max(1, int(decay_steps))
        self.decay_rate = float(decay_rate)
        self.total_steps = max(1, int(total_steps))
        self.kind = kind

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        if self.kind == "exponential":
            periods = keras.ops.floor(step / self.decay_steps)
            lr = self.peak_lr * keras.ops.power(self.decay_rate, periods)
        elif self.kind == "cosine":
            lr = 0.5 * self.peak_lr * (1.0 + keras.ops.cos(math.pi * step / self.total_steps))
        else:
            lr = keras.ops.convert_to_tensor(self.peak_lr, "float32")
        if self.warmup_steps > 0:
            warm = self.peak_lr * step / self.warmup_steps
            lr = keras.ops.where(step < self.warmup_steps, warm, lr)
        return lr

    def get_config(self) -> dict:
        return {
            "peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
            "total_steps": self.total_steps, "kind": self.kind,
        }


def make_schedule(
    recipe: RecipeConfig, *, peak_lr: float, steps_per_epoch: int, total_steps: int
) -> EfficientNetSchedule:
    """The recipe's schedule for a run of `total_steps` with `steps_per_epoch`."""
    return EfficientNetSchedule(
        peak_lr,
        warmup_steps=round(recipe.warmup_epochs * steps_per_epoch),
        decay_steps=round(recipe.decay_epochs * steps_per_epoch),
        decay_rate=recipe.decay_rate,
        total_steps=total_steps,
        kind=recipe.schedule,
    )


@keras.saving.register_keras_serializable(package="efficientnet_search")
class ReferenceRMSprop(keras.optimizers.RMSprop):
    """Keras RMSprop with TF1's accumulator start value of 1 (see the module docstring)."""

    def build(self, var_list) -> None:
        if self.built:
            return
        super().build(var_list)
        for velocity in self._velocities:
            velocity.assign(keras.ops.ones_like(velocity))


def make_optimizer(
    recipe: RecipeConfig, schedule, *, precision: str = "float32"
) -> keras.optimizers.Optimizer:
    """The recipe's optimizer; wrapped in a LossScaleOptimizer under mixed_float16.

    Weight decay is not given to the optimizer: the reference adds an L2 term to the loss
    (see `l2_penalty`), which is not the same as Keras' decoupled `weight_decay`.
    """
    if recipe.optimizer == "rmsprop":
        opt = ReferenceRMSprop(
            schedule, rho=recipe.rho, momentum=recipe.momentum, epsilon=recipe.epsilon
        )
    elif recipe.optimizer == "momentum":
        opt = keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True)
    else:
        opt = keras.optimizers.Adam(schedule, epsilon=recipe.epsilon)
    if precision == "mixed_float16":
        # float16 gradients underflow without loss scaling (Micikevicius et al. 2018).
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def decay_variables(model: keras.Model) -> list:
    """Trainable variables that get L2 weight decay: all but batch-norm variables and biases.

    The reference excludes every variable with `batch_normalization` in its name; biases
    (squeeze-excitation convolutions, classifier) are excluded too, as is common practice.
    """
    skip = {id(v) for layer in _all_layers(model) if isinstance(
        layer, keras.layers.BatchNormalization) for v in layer.variables}
    return [
        v for v in model.trainable_variables if id(v) not in skip and v.name != "bias"
    ]


def l2_penalty(variables: list, weight_decay: float):
    """`weight_decay * sum(v**2) / 2` in float32 (tf.nn.l2_loss, as the reference)."""
    if weight_decay == 0 or not variables:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables])


def classification_loss(label_smoothing: float) -> keras.losses.Loss:
    """Per-example cross-entropy on one-hot labels, with label smoothing (Szegedy et al. 2016).

    Works on softmax outputs: Keras' TensorFlow backend recovers the logits of a softmax layer
    for a numerically stable loss.
    """
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)


class ExponentialMovingAverage:
    """Moving averages of a model's weights and batch-norm statistics (Polyak averaging).

    Create it inside the strategy scope. `update(step)` runs in replica context after the
    optimizer step; the averages are created with ONLY_FIRST_REPLICA aggregation since every
    replica holds the same weights after the all-reduce. `average_weights()` is a context
    manager that swaps the averages into the model (to evaluate or save) and back.
    """

    def __init__(self, model: keras.Model, decay: float = 0.9999):
        self.decay = float(decay)
        self.variables = [v for v in model.variables if "float" in str(v.dtype)]
        self.averages = [
            keras.Variable(  # from a copy: a Keras Variable built on a variable aliases it
                v.numpy(), trainable=False, aggregation="only_first_replica",
                name=f"ema_{v.name}",
            )
            for v in self.variables
        ]

    def update(self, step) -> None:
        """One averaging step; `step` (the optimizer's iteration count) warms the decay up."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for avg, var in zip(self.averages, self.variables, strict=True):
            avg.assign(avg - (1.0 - decay) * (avg - tf.cast(var, avg.dtype)))

    @contextlib.contextmanager
    def average_weights(self) -> Iterator[None]:
        """Puts the averaged weights into the model for the duration of the block."""
        saved = [v.numpy() for v in self.variables]
        for var, avg in zip(self.variables, self.averages, strict=True):
            var.assign(avg.numpy())
        try:
            yield
        finally:
            for var, value in zip(self.variables, saved, strict=True):
                var.assign(value)


def _all_layers(layer) -> Iterator[keras.layers.Layer]:
    """`layer` and every layer nested in it (functional models may nest models)."""
    yield layer
    for child in getattr(layer, "layers", []):
        yield from _all_layers(child)
