"""Training the supernet once: the sandwich rule with in-place distillation, checkpointed.

BigNAS (Yu et al. 2020, Section 3.1): each step trains the largest subnet on the labels, and
the smallest and `random_subnets` uniformly drawn subnets on the largest's predictions
(in-place distillation: the teacher is the largest subnet of the same step, its outputs
held constant), summing the gradients of all of them before one optimizer update. The
largest runs at the largest resolution, the smallest at the smallest, the others at a drawn
one (OFA's elastic resolution, Cai et al. 2020, Section 3.2), all on the same images.

One traced step serves every subnet (the subnets enter as an integer tensor). The subnets,
the batches and the dropout of step n depend only on (seed, n), and the weights, the
optimizer and n are saved by a `tf.train.CheckpointManager`, so a run killed and resumed
ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search.search.nas.oneshot import progressive, replicas
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, ElasticSpace
from efficientnet_search.search.nas.oneshot.supernet import Supernet


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The supernet's training budget.

    Attributes:
      epochs: passes over the training images (each step draws one batch).
      steps_per_epoch: caps an epoch's steps (null: the whole training set).
      learning_rate: Adam's constant rate (the proxy's recipe).
      random_subnets: subnets drawn per step beside the largest and the smallest (BigNAS: 2).
      distill: children learn from the largest's predictions (False: from the labels).
      checkpoint_every: steps between checkpoints (and at the end of each epoch).
      mode: the supernet's channel mechanism, `slice` or `mask` (supernet.py).
      strategy: the tf.distribute strategy, named as `train` names it (cpu, gpu, mirrored,
        multi_worker, tpu, auto; training/distribute.py): the step batch is split over its
        replicas (replicas.py).
      progressive: progressive shrinking (Once-for-All; progressive.py): the steps in
        phases, the largest network alone first, then elastic kernel, depth and width.
    """

    epochs: int = 3
    steps_per_epoch: int | None = None
    learning_rate: float = 2e-3
    random_subnets: int = 2
    distill: bool = True
    checkpoint_every: int = 50
    mode: str = "slice"
    strategy: str = "cpu"
    progressive: bool = False

    def __post_init__(self) -> None:
        from efficientnet_search.training.distribute import STRATEGY_NAMES

        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(f"oneshot.train.strategy must be one of {list(STRATEGY_NAMES)}, "
                             f"got {self.strategy!r}")  # fmt: skip
        for name in ("epochs", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"oneshot.train.{name} must be >= 1, got {getattr(self, name)}")
        if self.mode not in ("slice", "mask"):
            raise ValueError(f"oneshot.train.mode must be slice or mask, got {self.mode!r}")
        if self.random_subnets < 0:
            raise ValueError(f"oneshot.train.random_subnets must be >= 0, got "
                             f"{self.random_subnets}")  # fmt: skip
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"oneshot.train.steps_per_epoch must be >= 1 or null, got "
                             f"{self.steps_per_epoch}")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Images:
    """A split at every resolution of the space: pixels in [0, 255], float32 [N, r, r, C]."""

    by_resolution: dict[int, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class SandwichTrainer:
    """Trains `supernet` on `train` with the sandwich rule; checkpoints in `directory`.

    Under a `strategy` (replicas.py) the supernet must have been built in its scope; the
    optimizer is built here in it, and each step's batch is split over replicas. Checkpoints
    are restored from `directory` and saved to `save_directory` (default: `directory`).
    """

    def __init__(self, supernet: Supernet, train: Images, config: TrainConfig,
                 batch_size: int, seed: int, directory: str | Path,
                 strategy: tf.distribute.Strategy | None = None,
                 save_directory: str | Path | None = None):
        self.net, self.train, self.config = supernet, train, config
        self.elastic: ElasticSpace = supernet.elastic
        self.batch_size, self.seed = min(batch_size, len(train)), seed
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            self.optimizer.build(supernet.trainable_variables)
        # The step counter stays a plain host variable (a mirrored one cannot be read by int).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(supernet=supernet, optimizer=self.optimizer,
                                         step=self.step)  # fmt: skip
        # Restored from `directory`; saved to `save_directory` (a non-chief worker's scratch).
        self.manager = tf.train.CheckpointManager(checkpoint, str(save_directory or directory),
                                                  max_to_keep=2)  # fmt: skip
        latest = tf.train.latest_checkpoint(str(directory))
        if latest:
            checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info("supernet: resumed at step %d from %s", int(self.step), latest)
        channels, shape = supernet.channels, self.elastic.choice_shape
        # One subnet's forward and backward is traced once and called per subnet of the
        # sandwich (tracing all of them in one step took minutes on the B0 space).
        self._grads = tf.function(self._subnet_grads, autograph=False, input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.float32),
            tf.TensorSpec(shape, tf.int32),
            tf.TensorSpec([None, self.elastic.num_classes], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.bool),
            tf.TensorSpec([2], tf.int32)])  # fmt: skip
        self._apply = tf.function(self._apply_grads, autograph=False)
        self._sum = tf.function(lambda a, b: tf.nest.map_structure(tf.add, a, b),
                                autograph=False)  # fmt: skip

    @property
    def steps_per_epoch(self) -> int:
        full = len(self.train) // self.batch_size
        return min(full, self.config.steps_per_epoch or full)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    def fit(self, stop_after: int | None = None) -> list[float]:
        """Trains to `total_steps` (or `stop_after` more steps); returns the step losses."""
        losses, start = [], time.perf_counter()
        end = self.total_steps if stop_after is None else min(
            self.total_steps, int(self.step) + stop_after)
        while int(self.step) < end:
            n = int(self.step)
            if self.config.progressive and (not losses or progressive.phase_at(
                    n, self.total_steps) != progressive.phase_at(n - 1, self.total_steps)):
                logging.info("supernet: progressive shrinking, phase %s from step %d",
                             progressive.phase_at(n, self.total_steps), n)  # fmt: skip
            losses.append(self.run_step(n))
            self.step.assign(n + 1)
            if (n + 1) % self.config.checkpoint_every == 0 or (n + 1) % self.steps_per_epoch == 0:
                self.manager.save(checkpoint_number=n + 1)
            if (n + 1) % self.steps_per_epoch == 0:
                logging.info("supernet: epoch %d/%d, loss %.3f, %.0f s",
                             (n + 1) // self.steps_per_epoch, self.config.epochs,
                             float(np.mean(losses[-self.steps_per_epoch:])),
                             time.perf_counter() - start)  # fmt: skip
        return losses

    def subnets(self, n: int) -> list[dict]:
        """Step n's sandwich: largest, smallest, then the drawn ones (from (seed, n) only)."""
        rng = random.Random(self.seed * 1_000_003 + n)
        e = self.elastic
        if self.config.progressive:
            return progressive.sandwich(e, rng, self.config.random_subnets,
                                        progressive.phase_at(n, self.total_steps))
        return [e.largest(), e.smallest(), *(e.sample(rng) for _ in
                                             range(self.config.random_subnets))]  # fmt: skip

    def run_step(self, n: int) -> float:
        """One sandwich step (step n's batch and subnets); returns its summed loss."""
        epoch, within = divmod(n, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        index = np.sort(order[within * self.batch_size:(within + 1) * self.batch_size])
        subnets = self.subnets(n)
        images = [self.train.by_resolution[p[RESOLUTION]][index] for p in subnets]
        choices = np.stack([self.elastic.encode(self.elastic.blocks(p), p[RESOLUTION])
                            for p in subnets])  # fmt: skip
        labels = self.train.labels[index].astype(np.int32)
        none = np.zeros([len(index), self.elastic.num_classes], np.float32)
        s = self.strategy
        labels, none = replicas.split(s, labels), replicas.split(s, none)
        loss, soft, total = self._replica(self._grads, replicas.split(s, images[0]), choices[0],
                                          none, labels, True,
                                          np.array([self.seed, n], np.int32))  # fmt: skip
        for i in range(1, len(subnets)):
            # In-place distillation (BigNAS, Section 3.1): children learn the largest's
            # predictions of this step, held constant (it is an input here).
            child, _, grads = self._replica(self._grads, replicas.split(s, images[i]),
                                            choices[i], soft, labels, not self.config.distill,
                                            np.array([self.seed + 1_000_003 * i, n], np.int32))
            if s.num_replicas_in_sync == 1:
                loss += child
                total = [a + b for a, b in zip(total, grads, strict=True)]
            else:
                loss, total = self._replica(self._sum, (loss, total), (child, grads))
        if s.num_replicas_in_sync == 1:
            self._apply(total)
            return float(loss)
        # Keras' apply_gradients sums the gradients over every replica (all workers) in
        # replica context; run eagerly (in a tf.function the multi-worker all-reduce finds no
        # device to reduce to).
        s.run(self._apply_grads, args=(total,))
        return float(replicas.local(s, replicas.all_sum(s, loss)))

    def _replica(self, fn, *args):
        """`fn(*args)` on every replica (directly on a single device)."""
        if self.strategy.num_replicas_in_sync == 1:
            return fn(*args)
        # A plain Python callable runs once per replica with that replica's values (a
        # tf.function given to `run` directly would be called once with all of them).
        return self.strategy.run(lambda *values: fn(*values), args=args)

    def _subnet_grads(self, images, choices, soft, labels, use_labels, seed):
        """(loss, softmax outputs, gradient of every trainable variable) of one subnet."""
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.net.logits(images, choices, seed=seed)
            loss = tf.cond(
                use_labels,
                lambda: tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits),
                lambda: tf.nn.softmax_cross_entropy_with_logits(soft, logits))
            # Summed over the replica's examples, divided by the global batch: the replicas'
            # gradients add up to the global batch's mean (replicas.py).
            loss = tf.reduce_sum(loss) / self.batch_size
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else g
                 for g, v in zip(grads, variables, strict=True)]  # fmt: skip
        return loss, tf.nn.softmax(logits), grads

    def _apply_grads(self, grads):
        """One Adam update with the sandwich's summed gradients."""
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables, strict=True))
