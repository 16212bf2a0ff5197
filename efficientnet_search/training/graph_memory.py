"""Frees what TensorFlow keeps of a finished model's traced graphs, between trainings in one
process (a search worker trains hundreds).

`keras.backend.clear_session()` and `gc.collect()` do not free a trained model's traced
training step. `tf.custom_gradient` in graph mode registers each op's gradient function under
a fresh name ("CustomGradient-<n>") in TensorFlow's global gradient registry and never removes
it; the function's closure holds tensors of the graph, and through them the whole traced graph
(tensorflow/tensorflow issues 27492 and 97697). Every Keras 3 training step on the TensorFlow
backend has such ops: the gradients' replica all-reduce (`ReplicaContext.all_reduce`, on one
device too) and each swish (`tf.nn.silu`). Measured (session 17, 2-block proxy, 32 px): 11.5k
Python objects and one traced graph more after every trial, however the trials were freed.

A registry entry is read only while a gradient through its op is being built, which for a
Keras step happens while the step is traced. Between trainings nothing is being traced, so the
entries can go: a function traced later registers its own. (The same idea is proposed for
tf-keras's `clear_session`, keras-team/tf-keras pull request 898.)
"""

from __future__ import annotations

import keras
from tensorflow.python.framework import ops as tf_ops

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def purge_custom_gradients() -> int:
    """Drops the registered gradient functions of `tf.custom_gradient` ops; returns how many.

    Call it only between trainings (no tracing in progress, in any thread): an op traced
    before and differentiated after it would find no gradient. Does nothing if TensorFlow's
    private registry is not where it was (TF 2.16-2.21 keep it at `ops._gradient_registry`).
    """
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        return 0
    stale = [name for name in registry if str(name).startswith(CUSTOM_GRADIENT_PREFIX)]
    for name in stale:
        del registry[name]
    return len(stale)


def release_graph_memory() -> None:
    """Drops the custom-gradient entries that keep finished graphs alive and Keras' global
    graph state, then collects garbage once (`clear_session` collects: a full collection
    costs ~0.2 s in a process that has imported TensorFlow, a tenth of a tiny trial)."""
    purge_custom_gradients()
    keras.backend.clear_session(free_memory=True)
