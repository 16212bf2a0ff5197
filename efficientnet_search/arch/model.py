"""Build a Keras EfficientNet from a baseline block list and scaling coefficients.

`build_model` is the general builder (any variant, any coefficients, any baseline);
`EfficientNetB0` ... `EfficientNetB7` are thin wrappers with keras.applications' arguments.
The layer graph and names match keras.applications, so reference weights load by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
from keras import layers

from efficientnet_search.arch.blocks import (
    B0_BLOCKS,
    HEAD_FILTERS,
    STEM_FILTERS,
    BlockArgs,
    decode_blocks,
)
from efficientnet_search.arch.layers import DENSE_KERNEL_INITIALIZER, conv_bn_act, mbconv_block
from efficientnet_search.arch.scaling import ScalingParams, get_variant, plan_blocks, round_filters

# ImageNet statistics of RGB pixels in [0, 1] (what keras.applications normalizes with).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


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

    @property
    def stem_channels(self) -> int:
        return round_filters(self.stem_filters, self.scaling.width)

    @property
    def head_channels(self) -> int:
        return round_filters(self.head_filters, self.scaling.width)

    def planned_blocks(self):
        return plan_blocks(self.blocks, self.scaling.width, self.scaling.depth,
                           self.drop_connect_rate)


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
        blocks=decode_blocks(blocks) if blocks is not None else B0_BLOCKS,
        num_classes=num_classes,
        include_top=include_top,
        drop_connect_rate=drop_connect_rate,
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
      variant: "b0" ... "b7" for the published scaling; None for B0's baseline.
      width, depth, resolution, dropout: coefficients that override the variant's.
      blocks: baseline block strings (default: the B0 baseline).
      num_classes: classifier outputs when `include_top`.
      include_top: whether to end with pooling, dropout and the classifier.
      input_shape: (height, width, 3); defaults to (resolution, resolution, 3).
      pooling: None, "avg" or "max" when `include_top` is False.
      include_preprocessing: take pixels in [0, 255] and normalize with ImageNet mean/std
        inside the model (in float32); when False the model takes normalized input.
      drop_connect_rate: final stochastic depth rate (linear over blocks).
      bn_momentum: batch-norm momentum (0.99 as the reference; ~0.9 for short proxy runs).
      weights: None, or a path to a keras.applications EfficientNet `.h5` weight file.
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
    default_name = f"efficientnet{variant.lower()}" if variant else "efficientnet"
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = inputs
    if include_preprocessing:
        x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescaling")(x)
        x = layers.Normalization(
            mean=IMAGENET_MEAN_RGB,
            variance=[s**2 for s in IMAGENET_STDDEV_RGB],
            dtype="float32",
            name="normalization",
        )(x)
    x = _backbone(x, spec, bn_momentum)
    if spec.include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if spec.scaling.dropout > 0:
            x = layers.Dropout(spec.scaling.dropout, name="top_dropout")(x)
        x = layers.Dense(
            spec.num_classes,
            activation=classifier_activation,
            kernel_initializer=DENSE_KERNEL_INITIALIZER,
            dtype="float32",
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name or default_name)
    if weights is not None:
        from efficientnet_search.arch.weights import load_reference_weights

        load_reference_weights(model, weights)
    return model


def _backbone(x, spec: ModelSpec, bn_momentum: float):
    """Stem, MBConv blocks and head convolution."""
    x = conv_bn_act(
        x, spec.stem_channels, 3, strides=2, bn_momentum=bn_momentum,
        conv_name="stem_conv", bn_name="stem_bn", act_name="stem_activation",
    )
    for block in spec.planned_blocks():
        x = mbconv_block(
            x, block.args, name=block.name, drop_rate=block.drop_rate, bn_momentum=bn_momentum
        )
    return conv_bn_act(
        x, spec.head_channels, 1, bn_momentum=bn_momentum,
        conv_name="top_conv", bn_name="top_bn", act_name="top_activation",
    )


_WRAPPER_DOC = """Builds EfficientNet-{upper} (Tan & Le 2019) with keras.applications' arguments.

    Args:
      include_top: end with pooling, dropout and the 1000-way (or `classes`-way) classifier.
      weights: None, or a path to the matching keras.applications `.h5` weight file.
      input_shape: (height, width, 3); defaults to the variant's resolution.
      pooling: None, "avg" or "max" when `include_top` is False.
      classes: number of classes.
      classifier_activation: "softmax", or None for logits.
      name: model name.
      **kwargs: any other `build_model` argument (resolution, drop_connect_rate, ...).
    """


def _make_variant(variant: str):
    def constructor(
        include_top: bool = True,
        weights: str | None = None,
        input_shape: tuple[int | None, int | None, int] | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        name: str | None = None,
        **kwargs,
    ) -> keras.Model:
        return build_model(
            variant, include_top=include_top, weights=weights, input_shape=input_shape,
            pooling=pooling, num_classes=classes, classifier_activation=classifier_activation,
            name=name, **kwargs,
        )

    constructor.__name__ = constructor.__qualname__ = f"EfficientNet{variant.upper()}"
    constructor.__doc__ = _WRAPPER_DOC.format(upper=variant.upper())
    return constructor


EfficientNetB0 = _make_variant("b0")
EfficientNetB1 = _make_variant("b1")
EfficientNetB2 = _make_variant("b2")
EfficientNetB3 = _make_variant("b3")
EfficientNetB4 = _make_variant("b4")
EfficientNetB5 = _make_variant("b5")
EfficientNetB6 = _make_variant("b6")
EfficientNetB7 = _make_variant("b7")
