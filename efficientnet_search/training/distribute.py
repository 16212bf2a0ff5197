"""Distribution strategy and mixed-precision policy from a name.

One training step (`loop.Loop`) serves every strategy, so this module only has to answer three
questions: which `tf.distribute.Strategy`, which Keras dtype policy, and how the batch and the
learning rate scale with the number of replicas.

Names: `cpu` (the default strategy, one device), `gpu` (MirroredStrategy over all local GPUs),
`mirrored` (MirroredStrategy over all local GPUs, or all logical CPU devices when there is no
GPU: the way to exercise data parallelism on a laptop and in tests), `multi_worker`
(MultiWorkerMirroredStrategy from `TF_CONFIG`), `tpu` (TPUStrategy through the cluster
resolver) and `auto`, which picks TPU > multi-worker (when `TF_CONFIG` names a cluster) >
GPUs > CPU.

Precision: `auto` means `mixed_bfloat16` on TPU, `mixed_float16` on GPUs and `float32`
elsewhere (mixed precision brings nothing on CPU). Models built by `model.build_model` keep
their logits in float32 under any policy; the loss is computed in float32 too.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

STRATEGY_NAMES = ("auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

# EfficientNet's reference learning rate: 0.016 per 256 images, scaled linearly with the global
# batch (official tpu/models/official/efficientnet/main.py: `base_learning_rate * batch / 256`;
# Goyal et al. 2017 for the linear scaling rule).
BASE_LR_PER_256 = 0.016
LR_REFERENCE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A ready strategy with the facts the training loop needs about it.

    Attributes:
      strategy: the tf.distribute strategy; build models and optimizers in `strategy.scope()`.
      name: the resolved strategy name (never "auto").
      precision: the Keras dtype policy set globally ("float32", "mixed_float16", ...).
      num_replicas: replicas in sync (devices taking part in one step, all workers together).
      num_workers: worker processes (1 unless multi-worker).
      is_chief: whether this process writes the run directory (worker 0 or the only process).
    """

    strategy: tf.distribute.Strategy
    name: str
    precision: str
    num_replicas: int
    num_workers: int = 1
    is_chief: bool = True


def resolve_strategy_name(name: str = "auto", tpu: str | None = None) -> str:
    """Turns `auto` into a concrete name: TPU > multi-worker > GPUs > CPU."""
    if name not in STRATEGY_NAMES:
        raise ValueError(f"strategy must be one of {list(STRATEGY_NAMES)}, got {name!r}")
    if name != "auto":
        return name
    if tpu or os.environ.get("TPU_NAME") or tf.config.list_logical_devices("TPU"):
        return "tpu"
    if _tf_config_workers() > 1:
        return "multi_worker"
    if tf.config.list_physical_devices("GPU"):
        return "gpu"
    return "cpu"


def resolve_precision(precision: str, strategy_name: str) -> str:
    """Turns `auto` into the policy that fits the hardware (bfloat16 on TPU, float16 on GPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if strategy_name == "tpu":
        return "mixed_bfloat16"
    if strategy_name in ("gpu", "mirrored", "multi_worker") and tf.config.list_physical_devices(
        "GPU"
    ):
        return "mixed_float16"
    return "float32"


def make_strategy(name: str = "auto", *, tpu: str | None = None) -> tf.distribute.Strategy:
    """Creates the strategy for `name` (see the module docstring for the names).

    Create it before anything else touches TensorFlow devices: multi-worker and TPU strategies
    must be set up at program start.
    """
    name = resolve_strategy_name(name, tpu)
    if name == "cpu":
        return tf.distribute.get_strategy()
    if name == "gpu":
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            raise ValueError("strategy 'gpu' needs at least one GPU, found none; use 'cpu'")
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if _tf_config_workers() < 1:
            raise ValueError(
                "strategy 'multi_worker' needs TF_CONFIG naming the cluster and this task, "
                f"got TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def _tpu_strategy(tpu: str | None) -> tf.distribute.TPUStrategy:
    """TPUStrategy through the cluster resolver, with errors that say how to name a TPU."""
    named = tpu or os.environ.get("TPU_NAME")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, OSError, tf.errors.OpError) as err:
        if not named:  # TensorFlow says only "Please provide a TPU Name to connect to."
            raise ValueError(
                "strategy 'tpu': no TPU found on this machine and none named; name one with "
                "--tpu NAME (a Cloud TPU name, a grpc:// address, or 'local' on a TPU VM), the "
                "train config's `tpu:` key or the TPU_NAME environment variable, or choose "
                f"another --strategy ({', '.join(n for n in STRATEGY_NAMES if n != 'tpu')})"
            ) from err
        raise ValueError(f"strategy 'tpu': could not connect to TPU {named!r}: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                         "check the name or grpc:// address") from err
    return tf.distribute.TPUStrategy(resolver)


def setup(
    name: str = "auto", *, tpu: str | None = None, precision: str = "auto"
) -> Distribution:
    """Creates the strategy, sets the global Keras dtype policy and describes the result."""
    resolved = resolve_strategy_name(name, tpu)
    strategy = make_strategy(resolved, tpu=tpu)
    policy = resolve_precision(precision, resolved)
    keras.mixed_precision.set_global_policy(policy)
    workers, chief = _worker_info(strategy)
    dist = Distribution(
        strategy=strategy,
        name=resolved,
        precision=policy,
        num_replicas=strategy.num_replicas_in_sync,
        num_workers=workers,
        is_chief=chief,
    )
    logging.info(
        "strategy %s: %d replica(s) on %d worker(s), precision %s",
        dist.name, dist.num_replicas, dist.num_workers, dist.precision,
    )
    return dist


def scale_batch_and_lr(
    per_replica_batch: int,
    num_replicas: int,
    base_lr: float = BASE_LR_PER_256,
    reference_batch: int = LR_REFERENCE_BATCH,
) -> tuple[int, float]:
    """Returns (global batch, peak learning rate) for `num_replicas` replicas.

    The global batch is `per_replica_batch * num_replicas`; the learning rate grows linearly
    with it: `base_lr * global_batch / reference_batch` (0.016 per 256 images by default).
    """
    if per_replica_batch < 1:
        raise ValueError(f"batch size per replica must be >= 1, got {per_replica_batch=}")
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas=}")
    global_batch = per_replica_batch * num_replicas
    return global_batch, base_lr * global_batch / reference_batch


def _tf_config_workers() -> int:
    """Number of workers (chief included) that TF_CONFIG names; 0 without TF_CONFIG."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' key: {raw!r}") from err
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _worker_info(strategy: tf.distribute.Strategy) -> tuple[int, bool]:
    """(number of workers, whether this process is the chief) for any strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 1, True
    workers = max(1, _tf_config_workers())
    task_type, task_id = resolver.task_type, resolver.task_id
    # The chief is the "chief" task if there is one, else worker 0 (TF's own convention).
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return workers, chief
