"""Train one proxy candidate: a scaled baseline, a short Keras `fit`, per-epoch val accuracy.

The proxy is the paper's small-budget stand-in (Section 3.3: the grid is searched at phi=1
on the baseline): depth `base_depth * alpha`, width `base_width * beta`, resolution
`round(base_resolution * gamma)`. Batch-norm momentum defaults to 0.9, not the reference 0.99:
moving statistics average over about 1 / (1 - momentum) steps, 10 at 0.9 but 100 at 0.99,
which is a third of the quick grid's whole run (10,000 images, batch 128, 3 epochs: 234
steps), so validation would see statistics of much earlier weights. The optimizer is Adam at
a constant rate (an earlier session's choice; no comparison with a decaying rate is on
record). The heavy EfficientNet recipe (RMSProp, EMA, warm-up) lives in `training/recipe.py`
and runs in `training/loop.py`; a proxy only has to rank candidates.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import sys
import time
import warnings
from collections.abc import Collection

import keras
import tensorflow as tf
from absl import logging

from efficientnet_search.arch.cost import spec_cost
from efficientnet_search.arch.model import ModelSpec, build_model
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.proxy.config import PROXY_DATA, ProxyConfig
from efficientnet_search.search.proxy.model_cache import ModelCache
from efficientnet_search.search.proxy.validation_passes import EvalReport, ValidationWatcher
from efficientnet_search.training.flat_adam import FlatAdam
from efficientnet_search.training.graph_memory import release_graph_memory
from efficientnet_search.training.progress import keras_verbose


@dataclasses.dataclass(frozen=True)
class ProxyResult:
    """What one proxy run produced."""

    epoch_accuracies: tuple[float, ...]
    curve: tuple[tuple[float, float], ...]
    params: int
    macs: int
    seconds: float
    stopped_early: bool
    peak_rss_mb: float
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    reused_model: bool = False


class NonFiniteLossError(FloatingPointError):
    """Training diverged (loss NaN or infinite): the trial fails, the search goes on."""



def configure_threads(threads: int | None) -> None:
    """Limits this process's TensorFlow CPU threads (call before any TF op runs).

    Where TensorFlow has already started in this process (a notebook, a test session, a
    caller's own model), the threads cannot change any more: they stay as they are, with a
    warning, rather than failing the search.
    """
    if threads and tf.config.threading.get_intra_op_parallelism_threads() != threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            logging.warning("threads=%d not applied: TensorFlow already started in this "
                            "process, so its thread pools stay as they are", threads)


# A training of fewer steps runs eagerly: tracing the train and eval steps costs more than the
# graph saves over so few steps. benchmarks/eager_short_trainings.py (train_proxy on B0's first
# two stages at 32 px, batch 32, both modes alternating in one process, quiet 2-core box):
# graph 2.10 / 2.12 / 2.18 s at 4 / 6 / 8 steps, eager 1.62 / 1.93 / 2.28 s: even near 7.
EAGER_BELOW_STEPS = 8


def train_proxy(
    config: ProxyConfig,
    splits,
    *,
    alpha: float,
    beta: float,
    gamma: float,
    seed: int,
    data: DataConfig = PROXY_DATA,
    report: EvalReport | None = None,
    passes: Collection[int] | None = None,
    epoch_ends: bool = True,
    verbose: int = 0,
    models: ModelCache | None = None,
) -> ProxyResult:
    """Trains candidate (alpha, beta, gamma) with `seed`; frees the model unless `models` keeps it.

    Args:
      config: the proxy baseline and budget.
      splits: a data.DataSplits (train and val are used, never test).
      alpha, beta, gamma: the candidate's depth, width and resolution coefficients.
      seed: seeds weights, dropout and shuffling.
      data: the batch size, augmentation, cache and shuffle buffer (the grid's `data`).
      report: called after each validation pass with its number (pruning); returning True
        stops training.
      passes: the pass numbers inside epochs to run (default: all); epoch ends always run,
        unless `epoch_ends` is False: then only the listed passes run (a run whose only
        reader is the final accuracy validates once).
      verbose: Keras fit verbosity (bars become one line per epoch off a terminal).
      models: keeps the compiled model for the next trial of the same architecture, which
        re-initializes it instead of building and tracing again (same results); None builds
        a fresh model and frees it before returning.

    Raises:
      NonFiniteLossError: when the loss becomes NaN or infinite.
    """
    from efficientnet_search.training.distribute import make_strategy

    start = time.perf_counter()
    spec = config.spec(alpha, beta, gamma, splits.num_classes)
    model, reused = _model_for(config, spec, splits.multi_label, seed, models,
                               make_strategy(config.strategy))  # fmt: skip
    built = time.perf_counter()
    train, val, steps_per_epoch = _pipelines(config, splits, data, spec.scaling.resolution, seed)
    watcher = ValidationWatcher(report, val, steps_per_epoch, config.evals_per_epoch, passes,
                       epoch_ends)  # fmt: skip
    if config.strategy == "cpu" and config.epochs * steps_per_epoch < EAGER_BELOW_STEPS:
        model.run_eagerly = True  # before the first fit; a reused model keeps its mode
    fit_start = time.perf_counter()
    with warnings.catch_warnings():  # Keras warns that fit's shuffle=True skips a tf.data input
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        model.fit(
            train, epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch, callbacks=[watcher],
            verbose=keras_verbose(verbose),
        )  # fmt: skip
    fit_seconds = time.perf_counter() - fit_start
    timing = {
        "build_s": built - start,
        "first_step_s": watcher.first_step_seconds,
        "train_s": max(0.0, fit_seconds - watcher.first_step_seconds - watcher.val_seconds),
        "val_s": watcher.val_seconds,
    }
    result = ProxyResult(
        epoch_accuracies=tuple(watcher.accuracies),
        curve=tuple(watcher.curve),
        params=int(model.count_params()),
        macs=spec_cost(spec).macs,
        seconds=time.perf_counter() - start,
        stopped_early=watcher.stopped,
        peak_rss_mb=peak_rss_mb(),
        timing=timing,
        reused_model=reused,
    )
    del model, train, val
    if models is None:
        release_memory()
    if watcher.error:
        raise NonFiniteLossError(watcher.error)
    return result


def _pipelines(config: ProxyConfig, splits, data: DataConfig, resolution: int, seed: int):
    """(train, val, steps per epoch) at the candidate's resolution."""
    from efficientnet_search import data as data_lib

    # One batch shape: a smaller last batch would retrace the training step every epoch.
    batch = data.batch_size
    full_batches = splits.sizes["train"] >= batch
    train = data_lib.make_pipeline(
        splits.train, resolution=resolution, batch_size=batch, training=True,
        augment=data.augment, cache=data.cache, shuffle_buffer=data.shuffle_buffer, seed=seed,
        repeat=config.steps_per_epoch is not None, drop_remainder=full_batches,
    )  # fmt: skip
    val = data_lib.make_pipeline(
        splits.val, resolution=resolution, batch_size=max(batch, 256), training=False,
        cache=data.cache,
    )  # fmt: skip
    steps_per_epoch = config.steps_per_epoch or (
        splits.sizes["train"] // batch if full_batches
        else math.ceil(splits.sizes["train"] / batch))
    if config.evals_per_epoch > steps_per_epoch:
        raise ValueError(
            f"proxy.evals_per_epoch ({config.evals_per_epoch}) exceeds the {steps_per_epoch} "
            "training steps of an epoch; lower it or the batch size")
    return train, val, steps_per_epoch


def _model_for(config: ProxyConfig, spec: ModelSpec, multi_label: bool, seed: int,
               models: ModelCache | None, strategy: tf.distribute.Strategy,
               ) -> tuple[keras.Model, bool]:
    """The trial's compiled model: fresh, or the cache's re-initialized one."""

    def build() -> keras.Model:
        return build_model(
            spec=spec, bn_momentum=config.bn_momentum,
            classifier_activation="sigmoid" if multi_label else "softmax",
        )  # fmt: skip

    def compile_model(model: keras.Model) -> None:
        _compile(config, model, multi_label)

    if models is None:
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = build()
            compile_model(model)
        return model, False
    key = (repr(spec), config.bn_momentum, config.optimizer, config.learning_rate, multi_label,
           config.strategy)  # fmt: skip
    if models.holds is not None and models.holds != key:
        models.clear()
        release_memory()  # the old model's graph state, before the new one is built
    return models.get(key, seed, build, compile_model, strategy)


def _compile(config: ProxyConfig, model: keras.Model, multi_label: bool) -> None:
    optimizer = {
        "adam": FlatAdam,  # Keras' Adam to the bit, traced in about half the time
        "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }[config.optimizer](config.learning_rate)
    if multi_label:
        loss, metric = "binary_crossentropy", keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = "sparse_categorical_crossentropy"
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
    optimizer.build(model.trainable_variables)  # else fit's first step is traced twice


def release_memory() -> None:
    """Drops Keras' global graph state, and what keeps finished graphs alive, between trials
    (training/graph_memory.py)."""
    release_graph_memory()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return peak_rss_mb()
