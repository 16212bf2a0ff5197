"""The supernet's sandwich step under a `tf.distribute` strategy: `train`'s own choice of
strategy (training/distribute.py: cpu, gpu, mirrored, multi_worker, tpu, auto), the batch
split over replicas, and per-replica values summed.

Data parallelism as `train` does it: every replica runs the same subnets on its share of the
step's batch; each replica's loss is its examples' summed loss over the global batch, so the
gradients summed over replicas are the global batch's mean gradient (Keras 3's
`apply_gradients` sums them across replicas in replica context). With one replica (the
default strategy) everything here is the identity and the step is the single-device one.
As in `train`, only the chief writes the run directory: other workers of a multi-worker
strategy checkpoint to a scratch directory (every worker must save) and stop after training.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf


def distribution_for(name: str, tpu: str | None = None):
    """The strategy `name` as `train` creates it (training/distribute.py `Distribution`:
    the strategy, replicas, whether this process is the chief), in float32: the supernet's
    ops are written out in float32. Create it before the data or the supernet touch
    TensorFlow devices."""
    from efficientnet_search.training.distribute import setup

    return setup(name, tpu=tpu, precision="float32")


def chief_task() -> bool:
    """Whether this process is the chief of a TF_CONFIG cluster (or no cluster is named):
    known before any strategy exists, so only the chief writes the run directory."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        spec = json.loads(raw)
        task, cluster = spec.get("task", {}), spec.get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        return True  # distribute.setup names the bad TF_CONFIG
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


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


def all_sum(strategy: tf.distribute.Strategy, values):
    """Per-replica `values` (any nest of tensors) summed over every replica of every worker;
    each replica gets the sum. Done in replica context: a multi-worker strategy with one
    local replica hands back plain tensors, which `Strategy.reduce` would not send across
    workers."""
    if strategy.num_replicas_in_sync == 1:
        return values

    def reduce(nest):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, nest)

    return strategy.run(reduce, args=(values,))


def local(strategy: tf.distribute.Strategy, value):
    """This process's first replica's copy of a value every replica holds alike."""
    return strategy.experimental_local_results(value)[0]
