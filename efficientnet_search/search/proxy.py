"""Train one proxy candidate: a scaled baseline, a short Keras `fit`, per-epoch val accuracy.

The proxy is the paper's small-budget stand-in (Section 3.3: the grid is searched at phi=1
on the baseline): depth `base_depth * alpha`, width `base_width * beta`, resolution
`round(base_resolution * gamma)`. Short runs on small data train far better with batch-norm
momentum near 0.9 than the reference 0.99, and with a constant Adam rate (a decaying rate made
seed noise worse on these machines), so those are the defaults. The heavy EfficientNet recipe
(RMSProp, EMA, warm-up) lives in `train.py`; a proxy only has to rank candidates.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import resource
import sys
import time
import warnings
from collections.abc import Callable
from typing import Literal

import keras
import tensorflow as tf

from efficientnet_search.blocks import B0_BLOCK_STRINGS
from efficientnet_search.cost import spec_cost
from efficientnet_search.model import ModelSpec, build_model, resolve_spec

OPTIMIZERS = ("adam", "sgd", "rmsprop")


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """The baseline and the short training budget every candidate gets.

    Attributes:
      blocks: baseline block strings (default: B0).
      base_width, base_depth, base_resolution: the proxy baseline (phi=0).
      dropout, drop_connect_rate: regularization (small proxies need little).
      bn_momentum: batch-norm momentum (0.9 suits short runs).
      optimizer, learning_rate, batch_size: a constant-rate optimizer.
      epochs: training epochs; `steps_per_epoch` (optional) caps each epoch's steps.
      augment: training augmentation (see data.make_pipeline).
      strategy: tf.distribute strategy name per trial (cpu, gpu, mirrored, tpu; distribute.py).
    """

    blocks: tuple[str, ...] = B0_BLOCK_STRINGS
    base_width: float = 0.25
    base_depth: float = 0.25
    base_resolution: int = 32
    dropout: float = 0.2
    drop_connect_rate: float = 0.0
    bn_momentum: float = 0.9
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: float = 2e-3
    batch_size: int = 128
    epochs: int = 3
    steps_per_epoch: int | None = None
    augment: str = "none"
    strategy: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("base_width", "base_depth", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"proxy.{name} must be > 0, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"proxy.epochs and proxy.batch_size must be >= 1, got epochs={self.epochs}, "
                f"batch_size={self.batch_size}"
            )
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"proxy.steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def spec(self, alpha: float, beta: float, gamma: float, num_classes: int) -> ModelSpec:
        """The candidate's architecture (phi=1 scaling of the proxy baseline)."""
        return resolve_spec(
            width=self.base_width * beta,
            depth=self.base_depth * alpha,
            resolution=int(round(self.base_resolution * gamma)),
            dropout=self.dropout,
            blocks=self.blocks,
            num_classes=num_classes,
            drop_connect_rate=self.drop_connect_rate,
        )

    def macs_ratio(self, alpha: float, beta: float, gamma: float, num_classes: int) -> float:
        """Measured multiply-add ratio of the candidate to the proxy baseline."""
        base = spec_cost(self.spec(1.0, 1.0, 1.0, num_classes)).macs
        return spec_cost(self.spec(alpha, beta, gamma, num_classes)).macs / base


@dataclasses.dataclass(frozen=True)
class ProxyResult:
    """What one proxy run produced."""

    epoch_accuracies: tuple[float, ...]
    params: int
    macs: int
    seconds: float
    stopped_early: bool
    peak_rss_mb: float


class NonFiniteLossError(FloatingPointError):
    """Training diverged (loss NaN or infinite): the trial fails, the search goes on."""


# Called after each epoch with (epoch index from 0, val accuracy); returns True to stop.
EpochReport = Callable[[int, float], bool]


def configure_threads(threads: int | None) -> None:
    """Limits this process's TensorFlow CPU threads (call before any TF op runs)."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def train_proxy(
    config: ProxyConfig,
    splits,
    *,
    alpha: float,
    beta: float,
    gamma: float,
    seed: int,
    report: EpochReport | None = None,
    verbose: int = 0,
) -> ProxyResult:
    """Trains candidate (alpha, beta, gamma) with `seed`; frees the model before returning.

    Args:
      config: the proxy baseline and budget.
      splits: a data.DataSplits (train and val are used, never test).
      alpha, beta, gamma: the candidate's depth, width and resolution coefficients.
      seed: seeds weights, dropout and shuffling.
      report: per-epoch callback (pruning); returning True stops training.
      verbose: Keras fit verbosity.

    Raises:
      NonFiniteLossError: when the loss becomes NaN or infinite.
    """
    from efficientnet_search import data
    from efficientnet_search.distribute import make_strategy

    start = time.perf_counter()
    spec = config.spec(alpha, beta, gamma, splits.num_classes)
    keras.utils.set_random_seed(seed)
    with make_strategy(config.strategy).scope():
        model = _compiled_model(config, spec, splits.multi_label)
    resolution = spec.scaling.resolution
    repeat = config.steps_per_epoch is not None
    train = data.make_pipeline(
        splits.train, resolution=resolution, batch_size=config.batch_size, training=True,
        augment=config.augment, seed=seed, repeat=repeat,
    )  # fmt: skip
    val = data.make_pipeline(
        splits.val, resolution=resolution, batch_size=max(config.batch_size, 256),
        training=False,
    )  # fmt: skip
    watcher = _EpochWatcher(report)
    with warnings.catch_warnings():  # Keras warns that fit's shuffle=True skips a tf.data input
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        model.fit(
            train, validation_data=val, epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch, callbacks=[watcher], verbose=verbose,
        )  # fmt: skip
    result = ProxyResult(
        epoch_accuracies=tuple(watcher.accuracies),
        params=int(model.count_params()),
        macs=spec_cost(spec).macs,
        seconds=time.perf_counter() - start,
        stopped_early=watcher.stopped,
        peak_rss_mb=peak_rss_mb(),
    )
    del model, train, val
    release_memory()
    if watcher.error:
        raise NonFiniteLossError(watcher.error)
    return result


def _compiled_model(config: ProxyConfig, spec: ModelSpec, multi_label: bool) -> keras.Model:
    model = build_model(
        spec=spec, bn_momentum=config.bn_momentum,
        classifier_activation="sigmoid" if multi_label else "softmax",
    )  # fmt: skip
    optimizer = {
        "adam": keras.optimizers.Adam,
        "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }[config.optimizer](config.learning_rate)
    if multi_label:
        loss, metric = "binary_crossentropy", keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = "sparse_categorical_crossentropy"
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
    return model


class _EpochWatcher(keras.callbacks.Callback):
    """Collects val accuracy per epoch, stops on a non-finite loss or when told to."""

    def __init__(self, report: EpochReport | None) -> None:
        super().__init__()
        self.report = report
        self.accuracies: list[float] = []
        self.stopped = False
        self.error = ""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.error = f"loss became {float(loss)} at step {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.error:
            return
        accuracy = float(logs.get("val_accuracy", math.nan))
        loss = float(logs.get("loss", math.nan))
        if not (math.isfinite(loss) and math.isfinite(accuracy)):
            self.error = f"loss {loss} / val accuracy {accuracy} at epoch {epoch + 1}"
            self.model.stop_training = True
            return
        self.accuracies.append(accuracy)
        if self.report is not None and self.report(epoch, accuracy):
            self.stopped = True
            self.model.stop_training = True


def release_memory() -> None:
    """Drops Keras' global graph state and collects garbage between trials."""
    keras.backend.clear_session()
    gc.collect()


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
