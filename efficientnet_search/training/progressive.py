"""Progressive learning (Tan & Le 2021, EfficientNetV2 Section 4.2, Algorithm 1).

Training is split into M stages of (about) equal length. Stage i trains at image size
S_i = S_0 + (S_e - S_0) * i / (M - 1) with regularization Phi_i = Phi_0 + (Phi_e - Phi_0) *
i / (M - 1): small images with weak regularization first, the final size with the final
regularization last. The regularizers are the paper's three: classifier dropout, RandAugment
magnitude and mixup. The final values are the run's own (the model's resolution and dropout,
the maximum RandAugment factor and mixup alpha given here); the starting ones are given here.
The paper's Table 6 starts at 128 px for 300-380 px targets, dropout 0.1, RandAugment 5 and
mixup 0; `stages: 4` is the reference's `train.stages` (google/automl effnetv2_configs.py).

Stages change only at epoch boundaries and each is a pure function of the epoch index, so a
run resumed in any epoch (mid-stage or right at a stage boundary) trains exactly the stage it
would have trained uninterrupted. Evaluation always runs at the final size.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ProgressiveConfig:
    """The `progressive:` section of a train config; `stages` of 0 or 1 turns it off."""

    stages: int = 0
    min_resolution: int = 128
    min_dropout: float = 0.1
    min_randaugment: float = 0.25  # Keras RandAugment factor (1 is about magnitude 10)
    max_randaugment: float = 0.5
    min_mixup: float = 0.0
    max_mixup: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.stages, int) or self.stages < 0:
            raise ValueError(f"progressive.stages must be an integer >= 0, got {self.stages!r}")
        if self.min_resolution < 8:
            raise ValueError(
                f"progressive.min_resolution must be >= 8, got {self.min_resolution!r}")
        for name in ("min_dropout", "min_randaugment", "max_randaugment"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"progressive.{name} must be in [0, 1], got "
                                 f"{getattr(self, name)!r}")
        for name in ("min_mixup", "max_mixup"):
            if getattr(self, name) < 0:
                raise ValueError(f"progressive.{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def enabled(self) -> bool:
        return self.stages > 1


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its first epoch, training image size and regularization."""

    index: int
    first_epoch: int
    resolution: int
    dropout: float
    randaugment_factor: float
    mixup_alpha: float


def plan_stages(
    config: ProgressiveConfig, *, epochs: int, final_resolution: int, final_dropout: float
) -> tuple[Stage, ...]:
    """The stages of a run of `epochs` (one stage at the final values when disabled).

    Stage i starts at epoch floor(i * epochs / M); every stage gets at least one epoch.
    """
    if not config.enabled:
        return (Stage(0, 0, final_resolution, final_dropout, config.max_randaugment,
                      config.max_mixup),)
    count = config.stages
    if count > epochs:
        raise ValueError(f"progressive.stages={count} needs at least as many epochs, got "
                         f"{epochs=}; lower the stages or train longer")
    if config.min_resolution > final_resolution:
        raise ValueError(
            f"progressive.min_resolution={config.min_resolution} is above the final "
            f"resolution {final_resolution}; progressive learning grows the image size"
        )

    def grow(start: float, end: float, i: int) -> float:
        return start + (end - start) * i / (count - 1)

    return tuple(
        Stage(
            index=i,
            first_epoch=i * epochs // count,
            resolution=int(round(grow(config.min_resolution, final_resolution, i))),
            dropout=grow(config.min_dropout, final_dropout, i),
            randaugment_factor=grow(config.min_randaugment, config.max_randaugment, i),
            mixup_alpha=grow(config.min_mixup, config.max_mixup, i),
        )
        for i in range(count)
    )


def stage_at(stages: tuple[Stage, ...], epoch: int) -> Stage:
    """The stage that trains epoch `epoch` (0-based)."""
    return [s for s in stages if s.first_epoch <= epoch][-1]


def mixup(images, onehot, alpha: float, seed):
    """Mixes each example with the batch reversed, weight w ~ Beta(alpha, alpha), w >= 0.5.

    The reference's rule (google/automl efficientnetv2/datasets.py `mixup`): per-example
    weights, kept at max(w, 1 - w) so the first image dominates; labels mix the same way.
    `seed` is a stateless seed pair (the step), so a resumed run draws the same weights.
    """
    batch = tf.shape(images)[0]
    shape = tf.stack([batch, 1])
    g1 = tf.random.stateless_gamma(shape, seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma(shape, seed=seed + tf.constant([0, 1], seed.dtype),
                                   alpha=alpha)
    weight = g1 / (g1 + g2)
    weight = tf.maximum(weight, 1.0 - weight)
    image_weight = tf.cast(tf.reshape(weight, [-1, 1, 1, 1]), images.dtype)
    mixed = images * image_weight + tf.reverse(images, [0]) * (1.0 - image_weight)
    labels = onehot * weight + tf.reverse(onehot, [0]) * (1.0 - weight)
    return mixed, labels


def fixed_size_model(model: keras.Model, resolution: int) -> keras.Model:
    """The same functional model and weights with a `resolution` x `resolution` input.

    Progressive learning trains one model on growing sizes, so it is built with input
    (None, None, C); the saved model takes the final size, which export, evaluation and the
    model card expect.
    """
    cfg = model.get_config()
    for layer in cfg["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"]["batch_shape"]
            layer["config"]["batch_shape"] = [shape[0], resolution, resolution, shape[-1]]
    rebuilt = keras.Model.from_config(cfg)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
