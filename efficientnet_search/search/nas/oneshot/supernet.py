"""A weight-sharing MBConv supernet: one set of weights, every subnet of an elastic space.

The supernet holds the largest network's weights (`elastic.ElasticSpace.slots`) and runs any
subnet from an integer choice tensor (`ElasticSpace.encode`), so one traced step serves every
subnet: nothing retraces when the subnet changes (images are traced with unknown height and
width, so resolutions share the trace too). Structural choices (a block present, an
expansion, squeeze-excitation, which kernel) are `tf.cond`/`tf.switch_case` branches, which
run only the taken branch. Channel choices are one of two mechanisms (`mode`):

* `slice`: each weight is cut to the subnet's channel prefix at run time (OFA, Cai et al.
  2020, Section 3.1: channels are prefixes; kernels are the centre of the largest), so a
  small subnet computes only its own channels;
* `mask`: weights stay whole and activations are multiplied by channel masks, so every
  subnet computes the largest's channels.

Which one trains faster is measured (`benchmarks/oneshot_modes.py`, BUILD_NOTES.md); both
give the same outputs. Batch norm is written out: training normalizes with the batch's
statistics and updates no moving averages (weights are shared, and one subnet's averages are
no other's); before a subnet is evaluated its statistics are recomputed on a fixed training
subset (`recalibrate`: SPOS, Guo et al. 2019, Section 3.3; OFA, Section 3.2) and stored in the
moving-statistics variables, which inference and `extract` read.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from efficientnet_search.arch.layers import CONV_KERNEL_INITIALIZER, DENSE_KERNEL_INITIALIZER
from efficientnet_search.arch.model import normalization_statistics
from efficientnet_search.search.nas.oneshot.elastic import FIELDS, HEAD, STEM, ElasticSpace

MODES = ("slice", "mask")
BN_EPSILON = 1e-3  # the builder's batch norm (arch/layers.py `batch_norm`)
ACTIVATION = tf.nn.silu  # swish, EfficientNet's activation
TRAIN, CALIBRATE, INFER = "train", "calibrate", "infer"
_F = {name: i for i, name in enumerate(FIELDS)}


class BatchNorm(tf.Module):
    """Batch-norm variables of the largest width; a subnet uses a prefix of them."""

    def __init__(self, channels: int, name: str):
        super().__init__(name=name)
        self.gamma = tf.Variable(tf.ones([channels]), name="gamma")
        self.beta = tf.Variable(tf.zeros([channels]), name="beta")
        self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="mean")
        self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name="var")
        # Sums of batch moments while recalibrating (weighted by batch size) and their count.
        self.sum_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="sum_mean")
        self.sum_variance = tf.Variable(tf.zeros([channels]), trainable=False, name="sum_var")
        self.count = tf.Variable(0.0, trainable=False, name="count")
        self.channels = channels


class Supernet(tf.Module):
    """The weights of the largest network of `elastic`, and the forward pass of any subnet.

    Args:
      elastic: the space (slots, kernels, stem, head, classes, dropout).
      channels: input image channels.
      mode: `slice` or `mask` (module docstring).
      seed: seeds the initial weights (the builder's initializers).
    """

    def __init__(self, elastic: ElasticSpace, channels: int = 3, mode: str = "slice",
                 seed: int = 0):
        super().__init__(name="supernet")
        if mode not in MODES:
            raise ValueError(f"supernet mode must be one of {MODES}, got {mode=}")
        self.elastic, self.mode, self.channels = elastic, mode, channels
        init = _Initializer(seed)
        kmax = max(elastic.kernels)
        self.stem = init.conv([3, 3, channels, elastic.stem], "stem_conv")
        self.stem_bn = BatchNorm(elastic.stem, "stem_bn")
        self.blocks = []
        for s in elastic.slots:
            v = tf.Module(name=f"block{s.stage}_{s.index}")
            v.expand = init.conv([1, 1, s.cin, s.cexp], "expand_conv")
            v.expand_bn = BatchNorm(s.cexp, "expand_bn")
            v.dw = init.conv([kmax, kmax, s.cexp, 1], "dwconv")
            v.bn = BatchNorm(s.cexp, "bn")
            if s.cse:
                v.se_reduce = init.conv([1, 1, s.cexp, s.cse], "se_reduce")
                v.se_reduce_bias = tf.Variable(tf.zeros([s.cse]), name="se_reduce_bias")
                v.se_expand = init.conv([1, 1, s.cse, s.cexp], "se_expand")
                v.se_expand_bias = tf.Variable(tf.zeros([s.cexp]), name="se_expand_bias")
            v.project = init.conv([1, 1, s.cexp, s.cout], "project_conv")
            v.project_bn = BatchNorm(s.cout, "project_bn")
            self.blocks.append(v)
        self.top = init.conv([1, 1, elastic.slots[-1].cout, elastic.head], "top_conv")
        self.top_bn = BatchNorm(elastic.head, "top_bn")
        self.dense = tf.Variable(init.dense([elastic.head, elastic.num_classes]), name="dense")
        self.dense_bias = tf.Variable(tf.zeros([elastic.num_classes]), name="dense_bias")
        mean, std = normalization_statistics(channels)
        self._mean = tf.constant(mean, tf.float32)
        self._std = tf.sqrt(tf.constant([s**2 for s in std], tf.float32))
        signature = [tf.TensorSpec([None, None, None, channels], tf.float32),
                     tf.TensorSpec(elastic.choice_shape, tf.int32)]
        self._forward = {m: tf.function(self._make_forward(m), input_signature=signature,
                                     autograph=False)
                         for m in (CALIBRATE, INFER)}  # fmt: skip

    @property
    def batch_norms(self) -> list[BatchNorm]:
        return [m for m in self.submodules if isinstance(m, BatchNorm)]

    def logits(self, images, choices, phase: str = TRAIN, seed=None):
        """Logits of subnet `choices` (int32 `elastic.choice_shape`) on pixels in [0, 255].

        `phase`: `train` (batch statistics, dropout seeded by `seed` [2]), `calibrate` (batch
        statistics, accumulated for `recalibrate`) or `infer` (stored statistics).
        """
        *rows, network = tf.unstack(choices)  # the slots' rows, then the stem's and head's
        stem, head = network[STEM], network[HEAD]
        x = (tf.cast(images, tf.float32) / 255.0 - self._mean) / self._std
        x = tf.nn.conv2d(x, self._out(self.stem, stem), 2, "SAME")
        x = ACTIVATION(self._bn(x, self.stem_bn, self.elastic.stem, phase, stem))
        for slot, v, row in zip(self.elastic.slots, self.blocks, rows, strict=True):
            x = self._slot(x, slot, v, row, phase)
        cout = rows[-1][_F["cout"]]
        for row in rows:  # the last present block sets the output width
            cout = tf.where(row[_F["active"]] > 0, row[_F["cout"]], cout)
        x = tf.nn.conv2d(x, self._out(self._in(self.top, cout), head), 1, "SAME")
        x = ACTIVATION(self._bn(x, self.top_bn, self.elastic.head, phase, head))
        x = tf.reduce_mean(x, axis=[1, 2])
        if phase == TRAIN and self.elastic.dropout > 0:
            x = tf.nn.experimental.stateless_dropout(x, self.elastic.dropout, seed=seed)
        dense = self.dense[:head] if self.mode == "slice" else self.dense  # masked: zeros
        return tf.matmul(x, dense) + self.dense_bias

    def infer(self, images, choices) -> tf.Tensor:
        """Softmax outputs with the stored (recalibrated) statistics; one trace."""
        return tf.nn.softmax(self._forward[INFER](images, choices))

    def recalibrate(self, batches: Sequence[np.ndarray], choices) -> None:
        """Sets the subnet's batch-norm statistics to those of `batches` (SPOS/OFA).

        Each BN's moving mean and variance become the batch-size-weighted means of its
        per-batch means and variances over `batches` (OFA's `set_running_statistics`); BNs the
        subnet does not use keep theirs.
        """
        for bn in self.batch_norms:
            bn.sum_mean.assign(tf.zeros_like(bn.sum_mean))
            bn.sum_variance.assign(tf.zeros_like(bn.sum_variance))
            bn.count.assign(0.0)
        for batch in batches:
            self._forward[CALIBRATE](batch, choices)
        for bn in self.batch_norms:
            if bn.count.numpy() > 0:
                bn.moving_mean.assign(bn.sum_mean / bn.count)
                bn.moving_variance.assign(bn.sum_variance / bn.count)

    def _make_forward(self, phase: str):
        def forward(images, choices):
            return self.logits(images, choices, phase)

        return forward

    # -- one block -------------------------------------------------------------------------
    def _slot(self, x, slot, v, row, phase: str):
        """One block of `slot` as the subnet's `row` says. Only the block's presence is a
        branch; expansion, SE, kernel and skip are selected arithmetically (computing the
        expansion and SE always is cheap, and a kernel's zero ring adds nothing), because
        nested branches made the traced training step take minutes to build."""

        def flag(name):
            return tf.cast(row[_F[name]] > 0, tf.float32)

        def run():
            expand = flag("expand")
            h = (expand * self._expand(x, v, row, phase)
                 + (1.0 - expand) * self._widen(x, slot.cexp, row))  # e=1: no 1x1 expansion
            h = self._depthwise(h, slot, v, row)
            h = ACTIVATION(self._bn(h, v.bn, slot.cexp, phase, row[_F["cexp"]]))
            if slot.cse:
                h = self._squeeze_excite(h, slot, v, row, flag("cse"))
            w = self._in(self._out(v.project, row[_F["cout"]]), row[_F["cexp"]])
            h = self._bn(tf.nn.conv2d(h, w, 1, "SAME"), v.project_bn, slot.cout, phase,
                         row[_F["cout"]])  # fmt: skip
            if slot.strides == 1:  # the identity skip of a block that keeps its shape
                h = h + flag("skip") * self._fit(x, slot.cout, row)
            return h

        if slot.index == 0:  # a stage's first block is always there (repeats >= 1)
            return run()
        return tf.cond(row[_F["active"]] > 0, run, lambda: x)

    def _expand(self, x, v, row, phase):
        w = self._in(self._out(v.expand, row[_F["cexp"]]), row[_F["cin"]])
        h = tf.nn.conv2d(x, w, 1, "SAME")
        return ACTIVATION(self._bn(h, v.expand_bn, v.expand_bn.channels, phase, row[_F["cexp"]]))

    def _depthwise(self, h, slot, v, row):
        """The largest kernel with the ring outside the chosen size zeroed: with "same"
        padding that is the smaller kernel centred (OFA: a smaller kernel is the centre of
        the largest), at stride 1 and 2 alike."""
        kmax = max(self.elastic.kernels)
        masks = np.zeros([len(self.elastic.kernels), kmax, kmax, 1, 1], np.float32)
        for i, k in enumerate(self.elastic.kernels):
            start = (kmax - k) // 2
            masks[i, start:start + k, start:start + k] = 1.0
        w = self._in(v.dw, row[_F["cexp"]]) * tf.gather(tf.constant(masks), row[_F["kernel"]])
        return tf.nn.depthwise_conv2d(h, w, [1, slot.strides, slot.strides, 1], "SAME")

    def _squeeze_excite(self, h, slot, v, row, on):
        """Hu et al. 2018: pool, reduce (swish), expand (sigmoid), gate; the gate is 1 when
        the subnet has no SE (`on` 0)."""
        cexp, cse = row[_F["cexp"]], tf.maximum(row[_F["cse"]], 1)
        s = tf.reduce_mean(h, axis=[1, 2], keepdims=True)
        s = tf.nn.conv2d(s, self._in(self._out(v.se_reduce, cse), cexp), 1, "SAME")
        s = ACTIVATION(s + self._cut(v.se_reduce_bias, cse))
        s = self._mask(s, cse)
        s = tf.nn.conv2d(s, self._in(self._out(v.se_expand, cexp), cse), 1, "SAME")
        return h * (on * tf.sigmoid(s + self._cut(v.se_expand_bias, cexp)) + (1.0 - on))

    # -- channels: slicing or masking ------------------------------------------------------
    def _bn(self, x, bn: BatchNorm, cmax: int, phase: str, c=None):
        """Batch norm of the first `c` (default all) channels; masked to them in mask mode."""
        c = cmax if c is None else c
        gamma, beta = self._cut(bn.gamma, c), self._cut(bn.beta, c)
        if phase == INFER:
            mean, var = self._cut(bn.moving_mean, c), self._cut(bn.moving_variance, c)
        else:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])
            if phase == CALIBRATE:
                n = tf.cast(tf.shape(x)[0], tf.float32)
                bn.sum_mean.assign_add(self._pad(mean, cmax) * n)
                bn.sum_variance.assign_add(self._pad(var, cmax) * n)
                bn.count.assign_add(n)
        y = (x - mean) * tf.math.rsqrt(var + BN_EPSILON) * gamma + beta
        return self._mask(y, c)

    def _cut(self, vector, c):
        return vector[:c] if self.mode == "slice" else vector

    def _out(self, w, c):
        return w[..., :c] if self.mode == "slice" else w

    def _in(self, w, c):
        return w[:, :, :c, :] if self.mode == "slice" else w

    def _mask(self, x, c):
        if self.mode == "slice":
            return x
        return x * tf.cast(tf.range(tf.shape(x)[-1]) < c, x.dtype)

    def _pad(self, vector, cmax: int):
        return tf.pad(vector, [[0, cmax - tf.shape(vector)[0]]])

    def _widen(self, x, width: int, row):
        """The input at the expanded width: zero-padded (its own channels stay first)."""
        if self.mode == "slice":
            return _pad_channels(x, row[_F["cexp"]] - row[_F["cin"]])
        return _pad_channels(x, width - x.shape[-1])

    def _fit(self, x, width: int, row):
        """The skip input at the block output's width: a skip joins equal channel counts
        only, so this cuts or pads where the skip is off (its product is then zeroed)."""
        c = row[_F["cout"]] if self.mode == "slice" else width
        x = x[..., :c]
        return _pad_channels(x, c - tf.shape(x)[-1])


def _pad_channels(x, extra):
    return tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])


class _Initializer:
    """The builder's initializers (arch/layers.py), each call seeded from one seed."""

    def __init__(self, seed: int):
        self.seed = seed

    def _next(self) -> int:
        self.seed += 1
        return self.seed

    def conv(self, shape: list[int], name: str) -> tf.Variable:
        """A kernel in Keras' layout ([k, k, in, out]; depthwise [k, k, channels, 1])."""
        config = dict(CONV_KERNEL_INITIALIZER["config"], seed=self._next())
        return tf.Variable(keras.initializers.VarianceScaling(**config)(shape), name=name)

    def dense(self, shape: list[int]) -> tf.Tensor:
        config = dict(DENSE_KERNEL_INITIALIZER["config"], seed=self._next())
        return keras.initializers.VarianceScaling(**config)(shape)
