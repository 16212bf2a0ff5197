"""The feature maps of a built EfficientNet, by resolution: where to tap it.

timm's `feature_info` idea for our Keras graphs: the stem, the output of every stage (its last
block) and the head's `top_activation` (the reference's name for the last feature map), each
with its stride and size. Fine-tuning puts a new head on the last one; Grad-CAM explains the
deepest one that still has enough cells to show where the evidence lies.
"""

from __future__ import annotations

import dataclasses
import re

import keras

STEM_FEATURES = "stem_activation"
TOP_FEATURES = "top_activation"
# Grad-CAM (Selvaraju et al. 2017) explains the last convolutional map, 7x7 for a 224 px
# ImageNet model (stride 32); below that a heat map is a few blobs.
GRADCAM_MIN_CELLS = 7

_BLOCK = re.compile(r"^block(\d+)[a-z]+_")


@dataclasses.dataclass(frozen=True)
class FeatureLayer:
    """One feature map: the layer's name, the stage it ends, its size and stride."""

    name: str
    stage: int  # 0 stem, 1.. the blocks' stages, then the head
    height: int
    width: int
    channels: int
    stride: int

    def describe(self) -> str:
        return f"{self.name} ({self.height}x{self.width} cells, stride {self.stride})"


def feature_layers(model: keras.Model, input_size: tuple[int, int] | None = None
                   ) -> list[FeatureLayer]:
    """The stem, each stage's output and `top_activation`, from the input to the head.

    Args:
      model: an EfficientNet built by this project (or a model containing one's layers).
      input_size: (height, width) of the input, needed only when the model's is not fixed.

    Raises:
      ValueError: the model has no `top_activation` layer, or its input size is unknown.
    """
    names = _layer_names(model)
    last_of_stage: dict[int, str] = {}
    for name in names:
        match = _BLOCK.match(name)
        if match:
            last_of_stage[int(match.group(1))] = name
    chosen = ([(0, STEM_FEATURES)] if STEM_FEATURES in names else []) + sorted(
        last_of_stage.items()) + [(max(last_of_stage, default=0) + 1, TOP_FEATURES)]
    shapes = _output_shapes(model, [name for _, name in chosen], input_size)
    in_height = input_size[0] if input_size else model.inputs[0].shape[1]
    return [FeatureLayer(name, stage, int(h), int(w), int(c), max(1, round(in_height / h)))
            for (stage, name), (_, h, w, c) in zip(chosen, shapes, strict=True)]


def top_features(model: keras.Model) -> keras.layers.Layer:
    """The last feature map's layer (`top_activation`), where a new head goes."""
    _layer_names(model)
    return model.get_layer(TOP_FEATURES)


def gradcam_layer(model: keras.Model, input_size: tuple[int, int] | None = None,
                  min_cells: int = GRADCAM_MIN_CELLS) -> FeatureLayer:
    """The deepest feature map with at least `min_cells` x `min_cells` cells (else the largest).

    At 224 px that is `top_activation` (7x7); at 64 px it is an earlier stage's output, where
    the last map would be 2x2.
    """
    layers = feature_layers(model, input_size)
    fine = [f for f in layers if min(f.height, f.width) >= min_cells]
    if fine:
        return fine[-1]
    return max(layers, key=lambda f: (f.height * f.width, f.stage))


def _layer_names(model: keras.Model) -> list[str]:
    names = [layer.name for layer in model.layers]
    if TOP_FEATURES not in names:
        raise ValueError(f"model {model.name!r} has no {TOP_FEATURES!r} layer, so it is not an "
                         f"EfficientNet built by this project; its last layers: {names[-5:]}")
    return names


def _output_shapes(model: keras.Model, names: list[str], input_size) -> list[tuple]:
    outputs = [model.get_layer(name).output for name in names]
    shapes = [tuple(t.shape) for t in outputs]
    if all(None not in s[1:3] for s in shapes):
        return shapes
    if input_size is None:
        raise ValueError(f"model {model.name!r} takes any input size; pass input_size=(h, w)")
    probe = keras.Model(model.inputs, outputs)
    spec = keras.KerasTensor((1, *input_size, model.inputs[0].shape[-1]))
    return [tuple(t.shape) for t in probe.compute_output_spec(spec)]
