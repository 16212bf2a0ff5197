"""Fine-tune an EfficientNet on a (medical) image classification set, the transfer recipe.

    efficientnet-search finetune --config configs/finetune/pneumoniamnist_quick.yaml \\
        [--set train.finetune_epochs=5] [--run_dir runs/NAME] [--seed 0]

The recipe follows established transfer-learning practice (Kornblith et al. 2019, "Do better
ImageNet models transfer better?"; the Keras transfer-learning guide):

1. Start from a model: a variant or coefficients (random init, or a reference keras.applications
   `.h5` weight file loaded by name), or a `.keras` file from `train`/`grid`.
2. Phase 1 ("head"): a new head (global pooling, dropout, dense; sigmoid for multi-label,
   softmax otherwise) is trained with the whole backbone frozen.
3. Phase 2 ("finetune"): the top K stages (layers named `block<N>...`) and the `top_` layers are
   unfrozen and trained with a lower Adam learning rate. BatchNormalization layers stay frozen,
   which in Keras 3 also runs them in inference mode, so their moving statistics are kept.
4. Early stopping watches the validation ROC-AUC; the best weights over both phases are kept.
   Imbalance is handled by class weights or balanced sampling.

Then the operating threshold is chosen on the validation split and the test split is scored
once (clinical.evaluate). The run directory receives config.yaml, model.keras, results.json,
report.md, model_card.md and plots/ (ROC, confusion matrix, training curves, Grad-CAM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search import clinical
from efficientnet_search.config import ConfigError, load_config, save_config, to_dict

HEAD_PREFIX = "head_"
FEATURE_LAYER = "top_activation"
_DATA_HINT = (
    "the MedMNIST file (e.g. pneumoniamnist.npz) comes from https://zenodo.org/records/10519652 "
    "or `pip install medmnist`; the balanced copy used by the quick config is described in "
    "../shared/data/README.md; relative paths are resolved from the directory you run in "
    "(the repo root for configs/finetune/*.yaml)"
)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are fed (see data.load_splits)."""

    source: str = "npz:../shared/data/pneumoniamnist_balanced.npz"
    validation_fraction: float = 0.1
    max_train: int | None = None
    max_val: int | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    augment: str = "medical"  # none | flip | medical | inception | randaugment
    batch_size: int = 64


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The starting point. `path` is a `.h5` weight file (init reference) or `.keras` (keras)."""

    init: Literal["random", "reference", "keras"] = "random"
    path: str | None = None
    variant: str | None = "b0"
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    dropout: float = 0.2  # before the new head's dense layer
    drop_connect_rate: float = 0.2
    bn_momentum: float = 0.99

    def __post_init__(self):
        if self.init != "random" and not self.path:
            raise ValueError(f"model.path is required when model.init={self.init!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The two phases. `unfreeze_blocks` is K top stages; -1 unfreezes the whole backbone."""

    head_epochs: int = 3
    head_learning_rate: float = 1e-3
    finetune_epochs: int = 10
    finetune_learning_rate: float = 1e-4
    unfreeze_blocks: int = 2
    bn_inference: bool = True  # keep BN frozen (inference mode) in phase 2
    patience: int = 3  # epochs without a better validation AUC before a phase stops
    imbalance: Literal["none", "class_weight", "balanced_sampling"] = "class_weight"
    steps_per_epoch: int | None = None

    def __post_init__(self):
        if self.head_epochs < 0 or self.finetune_epochs < 0:
            raise ValueError("train.head_epochs and train.finetune_epochs must be >= 0")
        if self.head_epochs + self.finetune_epochs == 0:
            raise ValueError("train.head_epochs + train.finetune_epochs must be > 0, got 0")
        if self.unfreeze_blocks < -1:
            raise ValueError(f"train.unfreeze_blocks must be >= -1, got {self.unfreeze_blocks}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How the operating point is chosen (on validation) and how intervals are computed."""

    threshold: Literal["youden", "sensitivity", "fixed"] = "youden"
    target_sensitivity: float = 0.9
    fixed_threshold: float = 0.5
    positive_class: int = 1
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    gradcam_images: int = 4  # correct and wrong test images each


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning experiment; YAML sections data, model, train, eval."""

    name: str = "finetune"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What a run produced: the run directory, the model file and the results.json content."""

    run_dir: Path
    model_path: Path
    results: dict[str, Any]

    @property
    def test(self) -> dict[str, Any]:
        return self.results["test"]


# ----------------------------------------------------------------------------- model
def build_finetune_model(cfg: ModelConfig, num_classes: int, multi_label: bool) -> keras.Model:
    """The starting backbone with a new head named `head_*` (pooling, dropout, dense)."""
    if cfg.init == "keras":
        path = Path(cfg.path)
        if not path.is_file():
            raise FileNotFoundError(f"model.path {cfg.path!r} (init keras) does not exist")
        base = keras.saving.load_model(path, compile=False)
        names = {layer.name for layer in base.layers}
        if FEATURE_LAYER not in names:
            raise ValueError(f"{cfg.path!r} has no {FEATURE_LAYER!r} layer; fine-tuning needs "
                             "an EfficientNet built by this project")
        inputs, features = base.inputs[0], base.get_layer(FEATURE_LAYER).output
    else:
        from efficientnet_search.model import build_model

        weights = cfg.path if cfg.init == "reference" else None
        base = build_model(
            cfg.variant, width=cfg.width, depth=cfg.depth, resolution=cfg.resolution,
            include_top=False, drop_connect_rate=cfg.drop_connect_rate,
            bn_momentum=cfg.bn_momentum, weights=weights,
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


def model_resolution(model: keras.Model, cfg: ModelConfig) -> int:
    """The input size the pipeline resizes to: the model's, else the config's / variant's."""
    size = model.inputs[0].shape[1]
    if size is not None:
        return int(size)
    from efficientnet_search.scaling import get_variant

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


# ----------------------------------------------------------------------------- training
class _BestWeights(keras.callbacks.Callback):
    """Computes the validation ROC-AUC each epoch (as `val_auc`) and keeps the best weights
    over all phases, by variable path, so that freezing changes cannot misalign them."""

    def __init__(self, val_ds: tf.data.Dataset, task: str, positive_class: int):
        super().__init__()
        self.val_ds, self.task, self.positive_class = val_ds, task, positive_class
        self.best_auc, self.best_epoch, self.best = -math.inf, None, None
        self.epochs_seen = 0

    def on_epoch_end(self, epoch, logs=None):
        y, scores = predict_split(self.model, self.val_ds)
        auc = macro_auc(y, scores, self.task, self.positive_class)
        logs["val_auc"] = auc
        self.epochs_seen += 1
        if auc > self.best_auc:
            self.best_auc, self.best_epoch = auc, self.epochs_seen
            self.best = {v.path: v.numpy() for v in self.model.weights}

    def restore(self, model: keras.Model) -> None:
        if self.best is not None:
            for v in model.weights:
                v.assign(self.best[v.path])


def run_phase(model, train_ds, val_ds, *, epochs, learning_rate, task, tracker, patience,
              class_weight=None, steps_per_epoch=None, verbose=1) -> dict[str, list[float]]:
    """Compiles with Adam at `learning_rate` and fits, stopping on validation AUC."""
    multi = task == "multilabel"
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy" if multi else "sparse_categorical_crossentropy",
        metrics=["binary_accuracy" if multi else "accuracy"],
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience)
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, callbacks=[tracker, stop],
        class_weight=class_weight, steps_per_epoch=steps_per_epoch, verbose=verbose,
        shuffle=False,  # the pipeline shuffles
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def predict_split(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) over a batched, unshuffled pipeline."""
    labels, scores = [], []
    for x, y in ds:
        scores.append(np.asarray(model.predict_on_batch(x)))
        labels.append(y.numpy())
    return np.concatenate(labels), np.concatenate(scores)


def macro_auc(y: np.ndarray, scores: np.ndarray, task: str, positive_class: int = 1) -> float:
    """The AUC early stopping watches: the positive class's, or the macro one-vs-rest mean."""
    if task == "binary":
        return clinical.roc_auc(y.ravel() == positive_class, scores[:, positive_class])
    labels = y if task == "multilabel" else np.eye(scores.shape[1])[y.ravel().astype(int)]
    return float(np.nanmean([clinical.roc_auc(labels[:, k], scores[:, k])
                             for k in range(scores.shape[1])]))


def class_weights(train: tf.data.Dataset, num_classes: int) -> dict[int, float]:
    """n / (K * n_c) per class (King & Zeng 2001 style inverse-frequency weights)."""
    counts = np.zeros(num_classes)
    for y in train.map(lambda _, y: y).batch(4096).as_numpy_iterator():
        counts += np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=num_classes)
    return {c: float(counts.sum() / (num_classes * max(n, 1))) for c, n in enumerate(counts)}


def balanced_stream(train: tf.data.Dataset, num_classes: int, seed: int) -> tf.data.Dataset:
    """An endless stream drawing each class with equal probability (balanced sampling)."""
    parts = [train.filter(lambda _, y, c=c: tf.equal(tf.cast(y, tf.int32), c)).repeat()
             for c in range(num_classes)]
    return tf.data.Dataset.sample_from_datasets(parts, [1.0 / num_classes] * num_classes, seed)


# ----------------------------------------------------------------------------- run
def finetune(config: FinetuneConfig, run_dir: str | Path | None = None, *, splits=None,
             verbose: int = 1) -> FinetuneResult:
    """Runs the whole recipe and writes the run directory (see the module docstring).

    Args:
      config: the experiment.
      run_dir: output directory (default `runs/<config.name>`). A finished run there with the
        same config is returned as is; a different config there is refused.
      splits: ready `data.DataSplits` to use instead of loading `config.data.source`.
      verbose: Keras progress output (0 silent, 1 progress bars, 2 one line per epoch).
    """
    run_dir = Path(run_dir or Path("runs") / config.name)
    save_config(config, run_dir)
    results_path = run_dir / "results.json"
    if results_path.exists():
        logging.info("%s is finished already; remove it or use another --run_dir", run_dir)
        results = json.loads(results_path.read_text())
        return FinetuneResult(run_dir, run_dir / "model.keras", results)
    keras.utils.set_random_seed(config.seed)
    splits = splits if splits is not None else load_data(config.data, config.seed)
    task = "multilabel" if splits.multi_label else "binary" if splits.num_classes == 2 \
        else "multiclass"
    _check_eval(config.eval, task)
    model = build_finetune_model(config.model, splits.num_classes, splits.multi_label)
    resolution = model_resolution(model, config.model)
    pipes = _pipelines(config, splits, resolution)
    started = time.perf_counter()
    history, tracker, notes = _train(model, config, splits, pipes, task, verbose)
    results, predictions = _evaluate(model, config, splits, pipes, task, tracker, history,
                                     notes)
    results["timing"] = {"train_and_eval_s": round(time.perf_counter() - started, 1)}
    model.save(run_dir / "model.keras")
    np.savez_compressed(run_dir / "predictions.npz", **predictions)
    from efficientnet_search import medical_report

    medical_report.write_all(run_dir, model, results, predictions,
                             pipes["test"] or pipes["val"], config.eval.gradcam_images)
    results_path.write_text(json.dumps(results, indent=2, default=float))
    logging.info("fine-tuning results, report, model card and plots written to %s", run_dir)
    return FinetuneResult(run_dir, run_dir / "model.keras", results)


def load_data(cfg: DataConfig, seed: int):
    """data.load_splits with a pointed error when a local `.npz` file is missing."""
    from efficientnet_search import data

    if cfg.source.startswith("npz:"):
        path = Path(cfg.source[4:])
        if not path.is_file():
            raise FileNotFoundError(
                f"data.source {cfg.source!r}: no file at {str(path.resolve())!r}; {_DATA_HINT}")
    return data.load_splits(
        cfg.source, validation_fraction=cfg.validation_fraction, seed=seed,
        max_train=cfg.max_train, max_val=cfg.max_val, data_dir=cfg.data_dir,
        manual_dir=cfg.manual_dir,
    )


def _pipelines(config: FinetuneConfig, splits, resolution: int) -> dict[str, Any]:
    from efficientnet_search import data

    c = config.data
    train = splits.train
    steps = config.train.steps_per_epoch
    balanced = config.train.imbalance == "balanced_sampling" and not splits.multi_label
    if balanced:
        train = balanced_stream(train, splits.num_classes, config.seed)
        steps = steps or math.ceil(splits.sizes["train"] / c.batch_size)

    def pipe(ds, training):
        return data.make_pipeline(
            ds, resolution=resolution, batch_size=c.batch_size, training=training,
            augment=c.augment if training else "none", cache=not (training and balanced),
            seed=config.seed,
        )

    test = pipe(splits.test, False) if splits.test is not None else None
    return {"train": pipe(train, True), "val": pipe(splits.val, False), "test": test,
            "steps": steps, "resolution": resolution}


def _train(model, config, splits, pipes, task, verbose):
    t = config.train
    notes = []
    weights = None
    if t.imbalance == "class_weight":
        if splits.multi_label:
            notes.append("class weights are not applied to multi-label targets")
        else:
            weights = class_weights(splits.train, splits.num_classes)
    tracker = _BestWeights(pipes["val"], task, config.eval.positive_class)
    common = dict(task=task, tracker=tracker, patience=t.patience, class_weight=weights,
                  steps_per_epoch=pipes["steps"], verbose=verbose)
    history = {"phase": []}
    phases = [("head", t.head_epochs, t.head_learning_rate),
              ("finetune", t.finetune_epochs, t.finetune_learning_rate)]
    for name, epochs, lr in phases:
        if epochs == 0:
            continue
        if name == "head":
            freeze_backbone(model)
        else:
            unfreeze_top_blocks(model, t.unfreeze_blocks, t.bn_inference)
        logging.info("phase %s: %d epochs at lr %g, %d trainable weights", name, epochs, lr,
                     len(model.trainable_weights))
        phase = run_phase(model, pipes["train"], pipes["val"], epochs=epochs,
                          learning_rate=lr, **common)
        for key, values in phase.items():
            history.setdefault(key, []).extend(values)
        history["phase"].extend([name] * len(phase["loss"]))
    tracker.restore(model)
    return history, tracker, notes


def _evaluate(model, config, splits, pipes, task, tracker, history, notes):
    """(results dict, raw predictions) with the threshold chosen on validation."""
    e = config.eval
    y_val, s_val = predict_split(model, pipes["val"])
    thresholds = clinical.choose_thresholds(
        y_val, s_val, task, e.threshold, positive_class=e.positive_class,
        target_sensitivity=e.target_sensitivity, fixed=e.fixed_threshold,
    )
    if pipes["test"] is None:
        notes.append("no test split: metrics below are on the validation split, which also "
                     "chose the threshold and the epoch, so they are optimistic")
    y_test, s_test = predict_split(model, pipes["test"] or pipes["val"])
    kwargs = dict(positive_class=e.positive_class, class_names=splits.class_names,
                  confidence=e.confidence, seed=config.seed)
    predictions = {"y_val": y_val, "s_val": s_val, "y_test": y_test, "s_test": s_test}
    return {
        "task": task,
        "config": to_dict(config),
        "data": {"source": config.data.source, "sizes": dict(splits.sizes),
                 "class_names": list(splits.class_names), "resolution": pipes["resolution"]},
        "model": {"params": int(model.count_params()),
                  "trainable_params_last_phase": int(sum(np.prod(w.shape)
                                                         for w in model.trainable_weights))},
        "threshold": {"method": e.threshold, "chosen_on": "validation",
                      "target_sensitivity": e.target_sensitivity,
                      "values": [dataclasses.asdict(t) for t in thresholds]},
        "best_epoch": tracker.best_epoch, "best_val_auc": tracker.best_auc,
        "val": clinical.evaluate(y_val, s_val, task, thresholds, n_resamples=200, **kwargs),
        "test": clinical.evaluate(y_test, s_test, task, thresholds,
                                  n_resamples=e.bootstrap_resamples, **kwargs),
        "test_split": "test" if pipes["test"] is not None else "validation",
        "history": history,
        "notes": notes,
    }, predictions


def _check_eval(cfg: EvalConfig, task: str) -> None:
    if task == "binary" and cfg.positive_class not in (0, 1):
        raise ConfigError(f"eval.positive_class must be 0 or 1, got {cfg.positive_class}")
    if not 0.0 < cfg.target_sensitivity <= 1.0:
        raise ConfigError(f"eval.target_sensitivity must be in (0, 1], got "
                          f"{cfg.target_sensitivity}")


def main(args: argparse.Namespace) -> None:
    """`efficientnet-search finetune --config X [--set k=v] [--run_dir D] [--seed N]`."""
    config = load_config(FinetuneConfig, args.config, args.set)
    if getattr(args, "seed", None) is not None:
        config = dataclasses.replace(config, seed=args.seed)
    run_dir = Path(args.run_dir or Path("runs") / Path(args.config).stem)
    result = finetune(config, run_dir)
    test = result.test
    print(f"test ROC-AUC {test['auc']:.4f} (95% CI {test['auc_ci'][0]:.4f}-"
          f"{test['auc_ci'][1]:.4f}), accuracy {test['accuracy']:.4f} "
          f"({test['accuracy_ci'][0]:.4f}-{test['accuracy_ci'][1]:.4f})")
    print(f"results, report.md, model_card.md, plots/ and model.keras in {result.run_dir}")
