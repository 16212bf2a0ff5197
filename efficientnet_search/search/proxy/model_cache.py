"""One compiled, traced proxy model kept between trials of the same architecture.

The seeds of one grid candidate train the same network, and building plus tracing it costs
5-8 s a trial on 2 CPU cores (BUILD_NOTES). `ModelCache` keeps the last model with its traced
training and evaluation steps; the next trial of the same architecture re-initializes it
instead of building a new one.

Re-initializing must give exactly the weights a fresh build would: Keras draws every
initializer's and dropout layer's seed from Python's `random` while the layers are created,
so the cache builds an uncompiled twin under the trial's seed (cheap: no tracing) and copies
all of its variables (weights, batch-norm statistics, seed-generator states) into the kept
model, then puts the optimizer's variables back to their freshly built values (zero moments,
step 0). The traced functions read those variables, so training continues bit for bit as in a
fresh build (tested).

Seeding: `keras.utils.set_random_seed` calls `tf.random.set_seed`, which also empties
TensorFlow's kernel cache, so the kept model's traced steps were instantiated again on their
next call (measured: 4-6 s under load for a tiny model, more than the training itself). A
re-initialized trial therefore sets the same seeds (Python, NumPy, Keras' global seed
generator, TensorFlow's global seed, which `tf.data` shuffling reads) but keeps the cache:
the proxy's random ops are all stateless (Keras seed generators, seeded `tf.data`), so no
cached kernel carries random state from the previous trial (the test would see it).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Hashable

import keras
import numpy as np
import tensorflow as tf


class ModelCache:
    """Holds at most one compiled model, keyed by everything that fixes its graph."""

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._model: keras.Model | None = None
        self._optimizer_start: list[np.ndarray] = []
        self._strategy: tf.distribute.Strategy | None = None

    @property
    def holds(self) -> Hashable | None:
        """The key of the kept model (None when empty)."""
        return self._key

    def get(
        self,
        key: Hashable,
        seed: int,
        build: Callable[[], keras.Model],
        compile_model: Callable[[keras.Model], None],
        strategy: tf.distribute.Strategy | None = None,
    ) -> tuple[keras.Model, bool]:
        """A compiled model with the initial weights a fresh build under `seed` has.

        Args:
          key: identifies the architecture and compile settings; a different key drops the
            kept model and builds a new one.
          seed: the trial's seed (set globally here, as a fresh build would).
          build: makes the uncompiled model; must draw the same random numbers every call.
          compile_model: compiles a new model and builds its optimizer.
          strategy: the distribution strategy to create a new model's variables under (a
            re-initialized model keeps the strategy it was built under).

        Returns:
          (model, reused): reused is True when the kept model was re-initialized.
        """
        reuse = key == self._key and self._model is not None
        if reuse:
            strategy = self._strategy
            set_seeds_keeping_kernels(seed)
        else:
            keras.utils.set_random_seed(seed)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build()
            if reuse:
                self._reinitialize(model)
                return self._model, True
            compile_model(model)
        self.clear()
        self._key, self._model, self._strategy = key, model, strategy
        self._optimizer_start = [np.array(v.numpy()) for v in model.optimizer.variables]
        return model, False

    def _reinitialize(self, fresh: keras.Model) -> None:
        kept = self._model
        targets, sources = kept.variables, fresh.variables
        if [tuple(v.shape) for v in targets] != [tuple(v.shape) for v in sources]:
            raise ValueError(
                f"cannot re-initialize {kept.name}: the fresh build's variables differ in shape; "
                "the cache key must cover everything that changes the architecture")
        for target, source in zip(targets, sources, strict=True):
            target.assign(source)
        for variable, value in zip(kept.optimizer.variables, self._optimizer_start, strict=True):
            variable.assign(value)

    def clear(self) -> None:
        """Drops the kept model (the caller frees Keras' global state afterwards)."""
        self._key, self._model, self._optimizer_start = None, None, []
        self._strategy = None


def set_seeds_keeping_kernels(seed: int) -> None:
    """`keras.utils.set_random_seed(seed)` without emptying TensorFlow's kernel cache.

    Falls back to the full call where TensorFlow's eager context lacks the (private) seed
    fields it keeps, so a TensorFlow that changes them costs speed, not correctness.
    """
    from tensorflow.python.eager import context as tf_context

    ctx = tf_context.context()
    if not (hasattr(ctx, "_seed") and hasattr(ctx, "_rng")):
        keras.utils.set_random_seed(seed)
        return
    tf_set_seed = tf.random.set_seed
    try:
        tf.random.set_seed = _no_tf_seed  # keras' call below sets the rest
        keras.utils.set_random_seed(seed)
    finally:
        tf.random.set_seed = tf_set_seed
    ctx._seed = seed  # what tf.random.set_seed sets, minus TFE_ContextClearCaches
    ctx._rng = random.Random(seed)


def _no_tf_seed(seed: int) -> None:
    del seed
