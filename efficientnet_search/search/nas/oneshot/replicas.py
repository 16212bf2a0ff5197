"""The supernet's sandwich step under a `tf.distribute` strategy: `train`'s own choice of
strategy (training/distribute.py: cpu, gpu, mirrored, multi_worker, tpu, auto), the batch
split over replicas, and per-replica values summed.

Data parallelism as `train` does it: every replica runs the same subnets on its share of the
step's batch; each replica's loss is its examples' summed loss over the global batch, so the
gradients summed over replicas are the global batch's mean gradient (Keras 3's
`apply_gradients` sums them across replicas in replica context). With one replica (the
default strategy) everything here is the identity and the step is the single-device one.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def strategy_for(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """The strategy `name` as `train` creates it (float32: the supernet's ops are written
    out in float32). Create it before the data or the supernet touch TensorFlow devices."""
    from efficientnet_search.training.distribute import setup

    return setup(name, tpu=tpu, precision="float32").strategy


def split(strategy: tf.distribute.Strategy, array: np.ndarray):
    """`array` split over the replicas along its first axis (contiguous shares; every worker
    of a multi-worker strategy holds the same step batch and takes its replicas' shares)."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return array
    bounds = np.linspace(0, len(array), replicas + 1).round().astype(int)

    def share(context):
        i = context.replica_id_in_sync_group
        return tf.constant(array[bounds[i]:bounds[i + 1]])

    return strategy.experimental_distribute_values_from_function(share)


def total(strategy: tf.distribute.Strategy, value) -> float:
    """A per-replica scalar summed over replicas, as a Python float."""
    if strategy.num_replicas_in_sync == 1:
        return float(value)
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None))
