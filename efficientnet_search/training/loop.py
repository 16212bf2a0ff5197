"""The training loop behind `train.train`: one distributed step, evaluation, checkpoints, logs.

`Loop` owns the model, optimizer, weight averages and checkpoint managers of one run, all
created in the strategy's scope. Its step runs `strategy.run` on the next per-replica batch:
the loss of each replica is its summed cross-entropy divided by the *global* batch (plus its
share of the L2 term), so that Keras' all-reduce (a sum) yields the gradient of the mean loss.
"""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from efficientnet_search.arch.model import build_model
from efficientnet_search.training import distribute, progress, progressive, recipe

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)
HISTORY_FIELDS = (
    "epoch", "step", "loss", "learning_rate", "val_top1", "val_top5", "val_loss",
    "images_per_second", "seconds",
)


class Loop:
    """State and steps of one training run (see train.train for the whole story)."""

    def __init__(self, config, dist: distribute.Distribution, splits, *, run_dir: Path,
                 write_dir: Path, started: float | None = None):
        """`started` is this invocation's `time.perf_counter()` start (default: now)."""
        self.config, self.dist, self.splits = config, dist, splits
        self._started = time.perf_counter() if started is None else started
        self.global_batch, self.peak_lr = distribute.scale_batch_and_lr(
            config.data.batch_size, dist.num_replicas, config.train.base_lr,
            config.train.lr_reference_batch,
        )
        self.steps_per_epoch = splits.sizes["train"] // self.global_batch
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training split has {splits.sizes['train']} examples, fewer than one "
                f"global batch of {self.global_batch}; lower "
                f"data.batch_size={config.data.batch_size}"
            )
        self.planned_steps = config.train.epochs * self.steps_per_epoch
        self._build(config)
        self._make_checkpoints(write_dir)
        self._restore(run_dir / "checkpoints")
        self.train_source = splits.train.cache() if config.data.cache else splits.train
        self.val_ds = self._pipeline(splits.val, training=False)
        self.stages = progressive.plan_stages(
            config.progressive, epochs=config.train.epochs, final_resolution=self.resolution,
            final_dropout=self._dropout_layer.rate if self._dropout_layer else 0.0,
        )
        self.stage: progressive.Stage | None = None
        self.last_metrics = {"top1": float("nan"), "top5": float("nan"), "loss": float("nan")}
        self._timed_images, self._timed_seconds, self._traced = 0, 0.0, False

    # ------------------------------------------------------------------------ setup
    def _build(self, config) -> None:
        cfg, rcp = config.model, config.train
        _, drop_connect = recipe.regularization_for(cfg.variant)
        with self.dist.strategy.scope():
            self.model = build_model(
                cfg.variant, width=cfg.width, depth=cfg.depth, resolution=cfg.resolution,
                dropout=cfg.dropout, blocks=cfg.blocks, num_classes=self.splits.num_classes,
                drop_connect_rate=drop_connect if cfg.drop_connect_rate is None
                else cfg.drop_connect_rate,
                bn_momentum=cfg.bn_momentum, weights=cfg.weights,
                # Progressive learning feeds growing image sizes to one model.
                input_shape=(None, None, 3) if config.progressive.enabled else None,
            )
            self.schedule = recipe.make_schedule(
                rcp, peak_lr=self.peak_lr, steps_per_epoch=self.steps_per_epoch,
                total_steps=self.planned_steps,
            )
            self.optimizer = recipe.make_optimizer(rcp, self.schedule,
                                                   precision=self.dist.precision)
            self.optimizer.build(self.model.trainable_variables)
            self.ema = (recipe.ExponentialMovingAverage(self.model, rcp.ema_decay)
                        if rcp.ema_decay > 0 else None)
        self.resolution = int(self.model.input_shape[1] or _planned_resolution(cfg))
        self._dropout_layer = next(
            (layer for layer in self.model.layers if layer.name == "top_dropout"), None)
        self.decay_vars = recipe.decay_variables(self.model)
        self.loss_fn = recipe.classification_loss(rcp.label_smoothing)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best = tf.Variable(-1.0, dtype=tf.float32, trainable=False, name="best_top1")
        # Wall seconds of every invocation up to the last checkpoint: a resumed run's total.
        self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_seconds")
        self._train_step = tf.function(self._distributed_step)
        self._eval_step = tf.function(self._distributed_eval)

    def _make_checkpoints(self, write_dir: Path) -> None:
        averages = {"ema": self.ema.averages} if self.ema else {}
        # Dropout and stochastic-depth random states, so a resumed run draws the same masks.
        rng = [v for v in self.model.variables if "seed_generator_state" in v.path]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, best_top1=self.best,
            wall_seconds=self.elapsed, random_state=rng, **averages,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(write_dir / "checkpoints"),
            max_to_keep=self.config.keep_checkpoints, step_counter=self.step,
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=self.model, **averages),
            str(write_dir / "checkpoints" / "best"), max_to_keep=1,
        )
        self.handler = None
        if self.config.preemption_handler and self.dist.name in ("multi_worker", "tpu"):
            # Saves on a preemption notice (SIGTERM, or the TPU maintenance event) and exits;
            # the next run restores below. TF's stock answer for these two strategies.
            self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                self.dist.strategy.cluster_resolver, self.manager
            )

    def _restore(self, checkpoint_dir: Path) -> None:
        latest = tf.train.latest_checkpoint(str(checkpoint_dir))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.info("resuming from %s at step %d", latest, int(self.step.numpy()))
        self.resumed_from_step = int(self.step.numpy())
        self._earlier_seconds = float(self.elapsed.numpy())

    def _pipeline(self, ds: tf.data.Dataset, *, training: bool, epoch: int = 0):
        from efficientnet_search import data as data_lib

        data = self.config.data
        # Progressive learning trains each stage at its own size and RandAugment factor;
        # evaluation always runs at the final size.
        stage = self.stage if training and self.stage is not None else None
        ds = data_lib.make_pipeline(
            ds, resolution=stage.resolution if stage else self.resolution,
            batch_size=self.global_batch, training=training,
            augment=data.augment,  # evaluation: a 0.875 centre crop for inception/randaugment
            randaugment_factor=(stage.randaugment_factor if stage
                                else self.config.progressive.max_randaugment),
            # Training pipelines are rebuilt every epoch on `train_source`, cached once.
            cache=data.cache and not training, shuffle_buffer=data.shuffle_buffer,
            seed=self.config.seed + epoch, repeat=training,
            drop_remainder=training or self.dist.name == "tpu",
        )
        options = tf.data.Options()
        # In-memory sources cannot be sharded by file; every worker reads and keeps its share.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return ds.with_options(options)

    # ------------------------------------------------------------------------ steps
    def _replica_step(self, images, labels):
        onehot = tf.one_hot(tf.cast(labels, tf.int32), self.splits.num_classes)
        alpha = self.stage.mixup_alpha if self.stage is not None else 0.0
        if alpha > 0:  # a Python branch: each stage traces its own step
            seed = tf.stack([tf.constant(self.config.seed, tf.int64), self.step])
            images, onehot = progressive.mixup(images, onehot, alpha, seed)
        with tf.GradientTape() as tape:
            probs = self.model(images, training=True)
            loss = tf.reduce_sum(self.loss_fn(onehot, tf.cast(probs, tf.float32)))
            loss = loss / self.global_batch + recipe.l2_penalty(
                self.decay_vars, self.config.train.weight_decay) / self.dist.num_replicas
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        if self.ema is not None:
            self.ema.update(self.optimizer.iterations)
        return loss

    def _distributed_step(self, iterator):
        per_replica = self.dist.strategy.run(self._replica_step, args=next(iterator))
        self.step.assign_add(1)
        return self.dist.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _distributed_eval(self, batch):
        k = min(5, self.splits.num_classes)
        sums = self.dist.strategy.run(lambda x, y: batch_sums(self.model, x, y, k), args=batch)
        return [self.dist.strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None)
                for s in sums]

    # ------------------------------------------------------------------------ loop
    @property
    def completed_steps(self) -> int:
        return int(self.step.numpy())

    @property
    def best_top1(self) -> float:
        return float(self.best.numpy())

    def fit(self, logs: _Logs) -> None:
        """Runs the remaining epochs; evaluates (averaged weights) and saves after each."""
        first_epoch = self.completed_steps // self.steps_per_epoch
        for epoch in range(first_epoch, self.config.train.epochs):
            self._enter_stage(progressive.stage_at(self.stages, epoch))
            started = time.perf_counter()
            loss, rate = self._run_epoch(epoch)
            metrics = self.evaluate()
            self._end_epoch(epoch, loss, rate, metrics, time.perf_counter() - started, logs)
        if first_epoch >= self.config.train.epochs:  # stopped after the last step, before the end
            self.last_metrics = self.evaluate()

    def _enter_stage(self, stage: progressive.Stage) -> None:
        """Sets the stage's dropout and retraces the step (new image size, mixup, dropout)."""
        if stage == self.stage:
            return
        self.stage = stage
        if self._dropout_layer is not None:
            self._dropout_layer.rate = stage.dropout
        self._train_step = tf.function(self._distributed_step)
        self._traced = False  # the first step of a stage traces again: not timed
        if len(self.stages) > 1:
            logging.info(
                "progressive stage %d/%d from epoch %d: %d px, dropout %.3f, RandAugment "
                "factor %.3f, mixup alpha %.3f", stage.index + 1, len(self.stages),
                stage.first_epoch + 1, stage.resolution, stage.dropout,
                stage.randaugment_factor, stage.mixup_alpha,
            )

    def _run_epoch(self, epoch: int) -> tuple[float, float]:
        offset = self.completed_steps - epoch * self.steps_per_epoch
        ds = self._pipeline(self.train_source, training=True, epoch=epoch)
        if offset:
            logging.info("epoch %d: skipping the %d batches already trained on", epoch + 1, offset)
            ds = ds.skip(offset)
        iterator = iter(self.dist.strategy.experimental_distribute_dataset(ds))
        verbose = progress.keras_verbose(self.config.verbose) if self.dist.is_chief else 0
        if verbose:
            print(f"Epoch {epoch + 1}/{self.config.train.epochs}")
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=verbose,
                                  stateful_metrics=["lr"])
        total, images, seconds = 0.0, 0, 0.0
        for i in range(offset, self.steps_per_epoch):
            tic = time.perf_counter()
            loss = float(self._run_step(iterator))
            toc = time.perf_counter() - tic
            if self._traced:  # the first call of a process traces the step: not timed
                images, seconds = images + self.global_batch, seconds + toc
            self._traced = True
            total += loss
            lr = float(self.schedule(self.optimizer.iterations.numpy()))
            bar.update(i + 1, [("loss", loss), ("lr", lr)])
            step = self.completed_steps
            if step % self.config.checkpoint_every_steps == 0 and i + 1 < self.steps_per_epoch:
                self._save()
        self._timed_images += images
        self._timed_seconds += seconds
        return total / max(1, self.steps_per_epoch - offset), images / seconds if seconds else 0.0

    def _save(self) -> None:
        self.elapsed.assign(self.wall_seconds())
        self.manager.save(checkpoint_number=self.completed_steps)

    def wall_seconds(self) -> float:
        """Wall time of the whole run: earlier invocations (to their last checkpoint) and this."""
        return self._earlier_seconds + time.perf_counter() - self._started

    def _run_step(self, iterator):
        if self.handler is not None:
            return self.handler.run(self._train_step, iterator)
        return self._train_step(iterator)

    def _end_epoch(self, epoch, loss, rate, metrics, seconds, logs: _Logs) -> None:
        self.last_metrics = metrics
        if metrics["top1"] > float(self.best.numpy()):
            self.best.assign(metrics["top1"])
            self.best_manager.save(checkpoint_number=self.completed_steps)
        self._save()
        lr = float(self.schedule(self.optimizer.iterations.numpy()))
        logs.write({
            "epoch": epoch + 1, "step": self.completed_steps, "loss": loss,
            "learning_rate": lr, "val_top1": metrics["top1"], "val_top5": metrics["top5"],
            "val_loss": metrics["loss"], "images_per_second": rate, "seconds": seconds,
        })
        logging.info(
            "epoch %d/%d: loss %.4f, val top-1 %.4f, top-5 %.4f (averaged weights), %.1f img/s",
            epoch + 1, self.config.train.epochs, loss, metrics["top1"], metrics["top5"], rate,
        )

    def evaluate(self) -> dict[str, float]:
        """Top-1, top-5 and loss on the validation split, with the averaged weights."""
        totals = [0.0, 0.0, 0.0, 0.0]
        with self.averaged_weights():
            for batch in self.dist.strategy.experimental_distribute_dataset(self.val_ds):
                sums = self._eval_step(batch)
                totals = [t + float(s) for t, s in zip(totals, sums, strict=True)]
        return _rates(totals)

    def averaged_weights(self):
        """Context manager: the EMA weights in the model (or nothing when EMA is off)."""
        return self.ema.average_weights() if self.ema else contextlib.nullcontext()

    def images_per_second(self) -> float:
        return self._timed_images / self._timed_seconds if self._timed_seconds else 0.0


def _planned_resolution(model_config) -> int:
    """The resolution a model config builds at (its own, else its variant's)."""
    from efficientnet_search.arch.scaling import get_variant

    return model_config.resolution or get_variant(model_config.variant or "b0").resolution


def batch_sums(model: keras.Model, images, labels, k: int):
    """(top-1 hits, top-k hits, summed cross-entropy, count) of one batch, in float32."""
    probs = tf.cast(model(images, training=False), tf.float32)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    hits1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probs, 1), tf.float32))
    hitsk = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, probs, k), tf.float32))
    xent = keras.losses.sparse_categorical_crossentropy(labels, probs)
    return hits1, hitsk, tf.reduce_sum(xent), tf.cast(tf.size(labels), tf.float32)


def evaluate_model(model: keras.Model, ds: tf.data.Dataset, num_classes: int) -> dict:
    """Top-1/top-5/loss of `model` over batched `ds` (one device; for `evaluate`)."""
    step = tf.function(lambda x, y: batch_sums(model, x, y, min(5, num_classes)))
    totals = [0.0, 0.0, 0.0, 0.0]
    for images, labels in ds:
        totals = [t + float(s) for t, s in zip(totals, step(images, labels), strict=True)]
    return _rates(totals)


def _rates(totals: list[float]) -> dict:
    hits1, hitsk, xent, count = totals
    if not count:
        raise ValueError("the evaluation split is empty")
    return {"top1": hits1 / count, "top5": hitsk / count, "loss": xent / count,
            "count": int(count)}


def measure_input(loop: Loop, batches: int) -> float:
    """Images/second of the training input pipeline alone (first batch not timed)."""
    if batches < 1:
        return 0.0
    ds = loop._pipeline(loop.train_source, training=True).take(batches + 1)
    iterator = iter(ds)
    next(iterator)
    tic, count = time.perf_counter(), 0
    for images, _ in iterator:
        count += int(images.shape[0])
    seconds = time.perf_counter() - tic
    return count / seconds if seconds > 0 else 0.0


class _Logs:
    """history.csv and TensorBoard scalars in `<dir>/logs`, one row per epoch."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = directory / "history.csv"
        self.writer = tf.summary.create_file_writer(str(directory))

    def write(self, record: dict) -> None:
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
            if new:
                out.writeheader()
            out.writerow(record)
        with self.writer.as_default():
            for key, value in record.items():
                if key not in ("epoch", "step"):
                    # tf.summary.scalar needs the tensorboard package; this core op writes the
                    # same event (the "scalars" plugin) without it.
                    tf.summary.write(key, tf.constant(float(value), tf.float32),
                                     step=record["step"], metadata=_SCALAR_METADATA)
        self.writer.flush()


@contextlib.contextmanager
def open_logs(run_dir: Path) -> Iterator[_Logs]:
    """Opens the run's logs (appending on resume) and closes the TensorBoard writer after."""
    logs = _Logs(Path(run_dir) / "logs")
    try:
        yield logs
    finally:
        logs.writer.close()
