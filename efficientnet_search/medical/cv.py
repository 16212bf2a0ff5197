"""Choices made on the training split by k-fold cross-validation, for small validation splits.

On a validation split with few images of its rarer class, a threshold or a recipe chosen on
it is mostly noise (issue 27: a Youden threshold picked on 78 images came out at 0.89 and
put the headline accuracy below the majority share). The training split is larger and, with
the backbone frozen, cheap to reuse: its pooled features are computed once per (backbone,
resolution), and a head per fold trains in seconds. What that buys:

- out-of-fold (OOF) predictions for every training image: scores from a head that never saw
  the image, on which the operating threshold is chosen (`eval.threshold: oof_youden`);
- a cross-validated AUC per (backbone, resolution) candidate, to choose both within a time
  budget (`train.cv_budget_s`), never looking at the test split.

Folds are stratified: each class's images are dealt to the folds in a seeded random order,
so every fold holds every class (scikit-learn's StratifiedKFold does the same; six lines do
not justify a new dependency).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import keras
import numpy as np

from efficientnet_search.medical.metrics import roc_auc

# Validation splits whose rarer class has fewer images than this are "small": the threshold
# and recipe are then chosen by cross-validation on the training split. Validation studies
# of clinical prediction models need at least 100 events and 100 non-events for stable
# estimates (Vergouwe et al. 2005, J Clin Epidemiol 58:475; Collins, Ogundimu & Altman 2016,
# Stat Med 35:214). The shared PneumoniaMNIST copy's validation split (135 per class) is not
# small; the small set (78 images, ~21 of the rarer class) is.
SMALL_VALIDATION_MINORITY = 100


def validation_is_small(val_counts: np.ndarray) -> bool:
    """True when the validation split's rarer class has < SMALL_VALIDATION_MINORITY images."""
    counts = np.asarray(val_counts)
    return bool(counts.size and counts.min() < SMALL_VALIDATION_MINORITY)


def check_folds(k: int, train_counts: np.ndarray) -> None:
    """Refuses a fold count the training split cannot fill (each fold needs every class)."""
    smallest = int(np.min(train_counts))
    if k < 2 or k > smallest:
        raise ValueError(f"train.cv_folds={k} needs 2 <= folds <= the smallest class's "
                         f"training images ({smallest}); set train.cv_folds between 2 and "
                         f"{max(smallest, 2)}")


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each example: each class dealt round-robin in a seeded order."""
    y = np.asarray(y).ravel()
    check_folds(k, np.bincount(y.astype(np.int64)))
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        folds[members] = np.arange(len(members)) % k
    return folds


@dataclasses.dataclass(frozen=True)
class HeadRecipe:
    """How each fold's head trains: the recipe's phase 1 on pooled features."""

    epochs: int
    learning_rate: float
    dropout: float
    batch_size: int
    class_weighted: bool


@dataclasses.dataclass(frozen=True)
class FoldHeads:
    """Out-of-fold scores for every training image, each fold's head (kernel, bias as
    trained, before the prior shift), the
    cross-validated AUC (of the pooled OOF scores, positive class 1 or one-vs-rest macro),
    the training labels in the same order and the pooled features the heads were fitted on
    (kept in memory for the nested ensemble comparison, medical/ensemble.py; not saved)."""

    oof: np.ndarray
    heads: tuple[tuple[np.ndarray, np.ndarray], ...]
    auc: float
    labels: np.ndarray
    features: np.ndarray | None = None


def fold_heads(x: np.ndarray, y: np.ndarray, recipe: HeadRecipe, *, k: int, seed: int,
               num_classes: int) -> FoldHeads:
    """Trains a softmax head per fold on the other folds' features and scores its own fold.

    The scores refer to the training data's class frequencies, as the saved model's do
    (class-weighted heads are moved back by Bayes' rule, see transfer.shift_class_prior).
    """
    y = np.asarray(y).ravel().astype(np.int64)
    folds = stratified_folds(y, k, seed)
    oof = np.zeros((len(y), num_classes), dtype=np.float64)
    heads = []
    for fold in range(k):
        held = folds == fold
        kernel, bias = _train_head(x[~held], y[~held], recipe, seed + fold, num_classes)
        heads.append((kernel, bias))
        oof[held] = data_prior_scores(x[held] @ kernel + bias, y[~held], recipe, num_classes)
    return FoldHeads(oof, tuple(heads), cv_auc(y, oof), y, x)


def data_prior_scores(logits: np.ndarray, y_fit: np.ndarray, recipe: HeadRecipe,
                      num_classes: int) -> np.ndarray:
    """Softmax scores referring to the fitting data's class frequencies: a class-weighted
    model was trained for equal classes, so its logits are moved by log(share x classes)
    (Bayes' rule, as transfer.shift_class_prior does to the saved model)."""
    if recipe.class_weighted:
        share = np.bincount(np.asarray(y_fit).ravel(), minlength=num_classes) / len(y_fit)
        logits = logits + np.log(share * num_classes)
    return _softmax(logits)


def cv_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Binary: AUC of class 1's score; more classes: the one-vs-rest macro average."""
    y = np.asarray(y).ravel()
    if scores.shape[1] == 2:
        return float(roc_auc(y == 1, scores[:, 1]))
    aucs = [roc_auc(y == c, scores[:, c]) for c in range(scores.shape[1]) if 0 < np.sum(y == c)]
    return float(np.mean(aucs))


def _train_head(x, y, recipe: HeadRecipe, seed: int, num_classes: int):
    """(kernel, bias) of a softmax head trained on features `x` with the recipe's phase 1.

    Every head of a run has the same shape, so one compiled model is reused (`_head_model`)
    and reset here, instead of a new model per fold: a new model traces Keras' training step
    again, ~0.8 s against ~0.2 s for a whole head's training on 2 CPU cores, and a small-set
    run trains 2 x folds x candidates heads. The reset covers everything a fresh model would
    start from, drawn from `seed` (Glorot-uniform kernel, zero bias, zeroed optimizer state,
    the dropout's and the shuffle's random streams), so a head does not depend on the heads
    trained before it.
    """
    model = _head_model(int(x.shape[1]), num_classes, recipe.dropout, recipe.learning_rate)
    dense = model.get_layer("head")
    # Dense's default initializer, seeded for this fold
    dense.kernel.assign(keras.initializers.GlorotUniform(seed=seed)(dense.kernel.shape))
    dense.bias.assign(np.zeros(num_classes, "float32"))
    for variable in model.optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            state = layer.seed_generator.state
            state.assign(np.asarray([seed, 0], dtype=state.dtype))
    keras.utils.set_random_seed(seed)  # the fit's shuffling
    weights = None
    if recipe.class_weighted:
        counts = np.bincount(y, minlength=num_classes)
        weights = {c: len(y) / (num_classes * max(n, 1)) for c, n in enumerate(counts)}
    model.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch_size, class_weight=weights,
              verbose=0, shuffle=True)
    kernel, bias = dense.get_weights()
    return kernel.astype(np.float64), bias.astype(np.float64)


@functools.lru_cache(maxsize=4)
def _head_model(features: int, num_classes: int, dropout: float, learning_rate: float):
    """A compiled dropout + dense softmax head, built once per shape and recipe (the reset
    is `_train_head`'s)."""
    inputs = keras.Input((features,))
    h = keras.layers.Dropout(dropout)(inputs) if dropout > 0 else inputs
    head = keras.layers.Dense(num_classes, activation="softmax", name="head")
    model = keras.Model(inputs, head(h))
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def minimum_budget_s(train_images: int) -> float:
    """The least `train.cv_budget_s` that covers one candidate: its feature pass over the
    training images at Lite0 / 128 px, the cheapest, at the rate measured on this project's
    2-core box (BUILD_NOTES session 12: 45 s for 5,232 images, ~8.6 ms an image)."""
    return math.ceil(train_images * 45.0 / 5232)
