"""Keras 3 blocks of EfficientNet: MBConv, Fused-MBConv, squeeze-excitation, stochastic depth.

Layers are named as in keras.applications (`block2b_expand_conv`, `block2b_se_reduce`, ...) so
reference weights map by name. One deliberate difference: strided depthwise convolutions use
`padding="same"` instead of an explicit ZeroPadding2D + "valid" pair. For inputs of known size
the reference's `correct_pad` pads (k//2 - 1 + n%2, k//2) on each axis, which is exactly what
"same" does for stride 2, so outputs are identical and the graph has one op less per stage.
"""

from __future__ import annotations

import keras
from keras import layers

from efficientnet_search.arch.blocks import BlockArgs

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
):
    """A bias-free convolution, batch norm and (optionally) the activation."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=conv_name,
    )(x)
    x = layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=bn_name)(x)
    if activation is not None:
        x = layers.Activation(activation, name=act_name)(x)
    return x


def squeeze_excite(x, filters_in: int, se_ratio: float, activation: str, name: str):
    """Channel attention (Hu et al. 2018): pool, reduce, expand, gate.

    The bottleneck width is `se_ratio` times the *block input* channels, as the reference
    computes it (not the expanded channels).
    """
    filters = x.shape[-1]
    reduced = max(1, int(filters_in * se_ratio))
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


def mbconv_block(
    inputs,
    args: BlockArgs,
    *,
    name: str,
    drop_rate: float = 0.0,
    activation: str = "swish",
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    dwconv_name: str = "dwconv",
):
    """One inverted-residual block (Sandler et al. 2018) with squeeze-excitation.

    `args` describes a single, already width-scaled block (repeats=1). The identity skip, and
    with it stochastic depth, applies only when the block keeps its shape (stride 1 and equal
    channels) and the stage does not say `noskip`. `dwconv_name` is the depthwise layer's
    suffix: keras.applications calls it `dwconv` in V1 and `dwconv2` in V2.
    """
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}
    x = inputs
    expanded = args.filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = conv_bn_act(
            x, expanded, 1, activation=activation, conv_name=f"{name}expand_conv",
            bn_name=f"{name}expand_bn", act_name=f"{name}expand_activation", **bn,
        )
    x = layers.DepthwiseConv2D(
        args.kernel_size,
        strides=args.strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}{dwconv_name}",
    )(x)
    x = layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < args.se_ratio <= 1:
        x = squeeze_excite(x, args.filters_in, args.se_ratio, activation, name)
    x = conv_bn_act(
        x, args.filters_out, 1, activation=None, conv_name=f"{name}project_conv",
        bn_name=f"{name}project_bn", **bn,
    )
    return _residual(x, inputs, args, drop_rate, name)


def fused_mbconv_block(
    inputs,
    args: BlockArgs,
    *,
    name: str,
    drop_rate: float = 0.0,
    activation: str = "swish",
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
):
    """One Fused-MBConv block (Tan & Le 2021, Figure 2; google/automl `FusedMBConvBlock`).

    The 1x1 expansion and the depthwise kxk of MBConv become one regular kxk convolution
    (`expand_conv`, carrying the stride), followed by squeeze-excitation when the stage has
    one and a 1x1 projection. With expansion 1 there is no expansion: the kxk convolution is
    the projection itself (`project_conv`, strided) and, unlike MBConv's linear projection, it
    is followed by the activation (`project_activation`). Skip and stochastic depth as MBConv.
    """
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}
    x = inputs
    expanded = args.filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = conv_bn_act(
            x, expanded, args.kernel_size, strides=args.strides, activation=activation,
            conv_name=f"{name}expand_conv", bn_name=f"{name}expand_bn",
            act_name=f"{name}expand_activation", **bn,
        )
    if 0 < args.se_ratio <= 1:
        x = squeeze_excite(x, args.filters_in, args.se_ratio, activation, name)
    single = args.expand_ratio == 1
    x = conv_bn_act(
        x, args.filters_out, args.kernel_size if single else 1,
        strides=args.strides if single else 1, activation=activation if single else None,
        conv_name=f"{name}project_conv", bn_name=f"{name}project_bn",
        act_name=f"{name}project_activation" if single else None, **bn,
    )
    return _residual(x, inputs, args, drop_rate, name)


def _residual(x, inputs, args: BlockArgs, drop_rate: float, name: str):
    """The identity skip (with stochastic depth) of a block that keeps its shape."""
    if args.id_skip and args.strides == 1 and args.filters_in == args.filters_out:
        if drop_rate > 0:
            x = StochasticDepth(drop_rate, name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x
