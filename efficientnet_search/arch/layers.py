"""Keras 3 blocks of EfficientNet: MBConv, Fused-MBConv, squeeze-excitation, stochastic depth.

A block is assembled from interchangeable parts (`BlockParts`: activation, normalization,
squeeze-excitation), as timm's blocks take `act_layer`, `norm_layer` and `se_layer`, so that a
family that differs only in its parts (EfficientNet-Lite: ReLU6, no SE) is a choice of parts,
not a copy of the block.

Layers are named as in keras.applications (`block2b_expand_conv`, `block2b_se_reduce`, ...) so
reference weights map by name. One deliberate difference: strided depthwise convolutions use
`padding="same"` instead of an explicit ZeroPadding2D + "valid" pair. For inputs of known size
the reference's `correct_pad` pads (k//2 - 1 + n%2, k//2) on each axis, which is exactly what
"same" does for stride 2, so outputs are identical and the graph has one op less per stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
from keras import layers

from efficientnet_search.arch.blocks import BlockArgs, se_filters

# keras.applications' initializers (from the official code): He-like fan-out for convolutions,
# a uniform fan-out scaled by 1/3 for the classifier.
CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


@keras.saving.register_keras_serializable(package="efficientnet_search")
class StochasticDepth(layers.Layer):
    """Drops the whole residual branch of a sample with probability `rate` while training.

    Huang et al. 2016 ("drop connect" in the EfficientNet code): kept branches are scaled by
    1 / (1 - rate) so that inference needs no rescaling.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"StochasticDepth rate must be in [0, 1), got {rate=}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = keras.ops.floor(keep + noise)
        return inputs / keep * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


NormFactory = Callable[[str], layers.Layer]
"""Makes the normalization layer of a given name (it follows each convolution)."""


def batch_norm(momentum: float = 0.99, epsilon: float = 1e-3) -> NormFactory:
    """Batch norm with the reference's settings (momentum 0.99, epsilon 1e-3) by default."""

    def make(name: str) -> layers.Layer:
        return layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name)

    return make


def conv_bn_act(
    x,
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    activation: str | None = "swish",
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    conv_name: str,
    bn_name: str,
    act_name: str | None = None,
    norm: NormFactory | None = None,
):
    """A bias-free convolution, normalization and (optionally) the activation.

    `norm` makes the normalization layer; without it, batch norm with `bn_momentum` and
    `bn_epsilon`.
    """
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=conv_name,
    )(x)
    x = (norm or batch_norm(bn_momentum, bn_epsilon))(bn_name)(x)
    if activation is not None:
        x = layers.Activation(activation, name=act_name)(x)
    return x


def squeeze_excite(x, filters_in: int, se_ratio: float, activation: str, name: str):
    """Channel attention (Hu et al. 2018): pool, reduce, expand, gate.

    The bottleneck width is `blocks.se_filters(filters_in, se_ratio)` (the reference's rule).
    """
    filters = x.shape[-1]
    reduced = se_filters(filters_in, se_ratio)
    se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}se_squeeze")(x)
    se = layers.Conv2D(
        reduced, 1, activation=activation, kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}se_reduce",
    )(se)
    se = layers.Conv2D(
        filters, 1, activation="sigmoid", kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}se_expand",
    )(se)
    return layers.Multiply(name=f"{name}se_excite")([x, se])


SqueezeExcite = Callable[..., object]
"""`(x, filters_in, se_ratio, activation, name) -> x`, like `squeeze_excite`."""


@dataclasses.dataclass(frozen=True)
class BlockParts:
    """The parts a block is assembled from.

    Attributes:
      activation: any Keras activation name ("swish" for EfficientNet, "relu6" for Lite).
      norm: makes the normalization layer after each convolution.
      squeeze_excite: the channel-attention part, used where a block's `se_ratio` is above 0;
        None refuses block strings that ask for it (a model without SE support).
    """

    activation: str = "swish"
    norm: NormFactory = dataclasses.field(default_factory=batch_norm)
    squeeze_excite: SqueezeExcite | None = squeeze_excite


def mbconv_block(
    inputs,
    args: BlockArgs,
    *,
    name: str,
    drop_rate: float = 0.0,
    parts: BlockParts | None = None,
    dwconv_name: str = "dwconv",
):
    """One inverted-residual block (Sandler et al. 2018), optionally with squeeze-excitation.

    `args` describes a single, already width-scaled block (repeats=1). The identity skip, and
    with it stochastic depth, applies only when the block keeps its shape (stride 1 and equal
    channels) and the stage does not say `noskip`. `parts` chooses the activation, the
    normalization and the SE part (default: EfficientNet's swish, batch norm and SE).
    `dwconv_name` is the depthwise layer's suffix: keras.applications calls it `dwconv` in V1
    and `dwconv2` in V2.
    """
    parts = parts or BlockParts()
    act = parts.activation
    x = inputs
    expanded = args.filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = conv_bn_act(
            x, expanded, 1, activation=act, conv_name=f"{name}expand_conv",
            bn_name=f"{name}expand_bn", act_name=f"{name}expand_activation", norm=parts.norm,
        )
    x = layers.DepthwiseConv2D(
        args.kernel_size,
        strides=args.strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}{dwconv_name}",
    )(x)
    x = parts.norm(f"{name}bn")(x)
    x = layers.Activation(act, name=f"{name}activation")(x)
    if args.has_se:
        _require_se(parts, args, name)
        x = parts.squeeze_excite(x, args.filters_in, args.se_ratio, act, name)
    x = conv_bn_act(
        x, args.filters_out, 1, activation=None, conv_name=f"{name}project_conv",
        bn_name=f"{name}project_bn", norm=parts.norm,
    )
    return _residual(x, inputs, args, drop_rate, name)


def fused_mbconv_block(
    inputs,
    args: BlockArgs,
    *,
    name: str,
    drop_rate: float = 0.0,
    parts: BlockParts | None = None,
):
    """One Fused-MBConv block (Tan & Le 2021, Figure 2; google/automl `FusedMBConvBlock`).

    The 1x1 expansion and the depthwise kxk of MBConv become one regular kxk convolution
    (`expand_conv`, carrying the stride), followed by squeeze-excitation when the stage has
    one and a 1x1 projection. With expansion 1 there is no expansion: the kxk convolution is
    the projection itself (`project_conv`, strided) and, unlike MBConv's linear projection, it
    is followed by the activation (`project_activation`). Skip, stochastic depth and `parts`
    as MBConv.
    """
    parts = parts or BlockParts()
    activation = parts.activation
    bn = {"norm": parts.norm}
    x = inputs
    expanded = args.filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = conv_bn_act(
            x, expanded, args.kernel_size, strides=args.strides, activation=activation,
            conv_name=f"{name}expand_conv", bn_name=f"{name}expand_bn",
            act_name=f"{name}expand_activation", **bn,
        )
    if args.has_se:
        _require_se(parts, args, name)
        x = parts.squeeze_excite(x, args.filters_in, args.se_ratio, activation, name)
    single = args.expand_ratio == 1
    x = conv_bn_act(
        x, args.filters_out, args.kernel_size if single else 1,
        strides=args.strides if single else 1, activation=activation if single else None,
        conv_name=f"{name}project_conv", bn_name=f"{name}project_bn",
        act_name=f"{name}project_activation" if single else None, **bn,
    )
    return _residual(x, inputs, args, drop_rate, name)


def _require_se(parts: BlockParts, args: BlockArgs, name: str) -> None:
    if parts.squeeze_excite is None:
        raise ValueError(
            f"block {name!r} asks for squeeze-excitation (se_ratio={args.se_ratio}) but "
            "these block parts have none; drop the se token from the block string"
        )


def _residual(x, inputs, args: BlockArgs, drop_rate: float, name: str):
    """The identity skip (with stochastic depth) of a block that keeps its shape."""
    if args.id_skip and args.strides == 1 and args.filters_in == args.filters_out:
        if drop_rate > 0:
            x = StochasticDepth(drop_rate, name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x
