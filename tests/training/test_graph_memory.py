"""Trainings in one process leave no traced graph behind once memory is released."""

from __future__ import annotations

import gc

import keras
import numpy as np
from tensorflow.python.framework import func_graph

from efficientnet_search.training import graph_memory


def _fit_once(seed: int = 0) -> float:
    """A swish model's `fit` (traced: swish and the gradient all-reduce are custom-gradient
    ops); returns its last loss."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="swish"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x = np.random.default_rng(seed).normal(size=(32, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    return history.history["loss"][-1]


def _traced_graphs() -> int:
    gc.collect()
    return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())


def test_released_trainings_leave_no_traced_graph_behind():
    graph_memory.release_graph_memory()
    before = _traced_graphs()
    first = _fit_once()
    assert graph_memory.purge_custom_gradients() > 0, (
        "a Keras fit registered no custom gradient: TensorFlow moved its gradient registry "
        "or stopped leaking; revisit training/graph_memory.py")
    graph_memory.release_graph_memory()
    for _ in range(2):
        again = _fit_once()
        graph_memory.release_graph_memory()
        assert _traced_graphs() == before
        assert again == first  # a purge between trainings changes no result


def test_without_the_purge_each_training_keeps_its_graph():
    # The cause the module works around: clear_session and gc alone free nothing of it.
    graph_memory.release_graph_memory()
    before = _traced_graphs()
    for _ in range(2):
        _fit_once()
        keras.backend.clear_session()
    assert _traced_graphs() >= before + 2
    graph_memory.release_graph_memory()
    assert _traced_graphs() == before
