"""Parameter, multiply-add and activation counts, analytic and per stage.

Convention (the paper's "FLOPs" are multiply-adds): count the multiply-adds of convolutions
(squeeze-excitation 1x1 convolutions and Fused-MBConv's regular kxk convolutions included),
depthwise convolutions and the classifier;
batch norm, activations, pooling, bias additions and element-wise ops are not counted. With
it, keras.applications' B0 at 224 px has 385,814,752 multiply-adds.

Activations follow Dollar et al. 2021 ("Fast and Accurate Model Scaling", Section 3): the
number of elements in the output tensors of every convolution (regular, 1x1, depthwise and
the squeeze-excitation 1x1 convolutions), per image; they predict run time on memory-bound
accelerators better than multiply-adds do. The classifier is not a convolution.

`measure_cost` is the one entry point the searches use: any of `COST_MEASURES` from a
ModelSpec or a built model. Latency needs TensorFlow execution on a device and lives in
`training/latency.py`.

Two routes give the same numbers: `model_cost` walks a built keras.Model (ours or the
reference), `spec_cost` computes from a ModelSpec without building anything (fast for B7).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Literal

import keras

from efficientnet_search.arch.model import ModelSpec

_STAGE = re.compile(r"^block(\d+)[a-z]+_")

CostMeasure = Literal["macs", "activations", "params"]
COST_MEASURES: tuple[str, ...] = ("macs", "activations", "params")


@dataclasses.dataclass(frozen=True)
class StageCost:
    """One stage: the stem, MBConv stage N, or the head (top conv and classifier)."""

    name: str
    repeats: int
    channels: int
    resolution: int
    params: int
    macs: int
    activations: int = 0


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """Totals and per-stage breakdown; `macs` and `activations` are per image."""

    params: int
    trainable_params: int
    macs: int
    resolution: int
    stages: tuple[StageCost, ...]
    activations: int = 0


def measure_cost(spec_or_model: ModelSpec | keras.Model, measure: CostMeasure) -> int:
    """One cost of a model: "macs" (multiply-adds per image), "activations" (conv output
    elements per image, Dollar et al. 2021) or "params" (parameters, as `params` below).

    A ModelSpec is counted without building anything; a built keras.Model layer by layer
    (both routes agree). Raises ValueError for another measure name.
    """
    if measure not in COST_MEASURES:
        raise ValueError(
            f"unknown cost measure {measure!r}; accepted: {', '.join(COST_MEASURES)} "
            "(latency: training.latency.measure_latency)"
        )
    if isinstance(spec_or_model, ModelSpec):
        cost = spec_cost(spec_or_model)
    elif isinstance(spec_or_model, keras.Model):
        cost = model_cost(spec_or_model)
    else:
        raise ValueError(
            f"measure_cost takes a ModelSpec or a keras.Model, got {type(spec_or_model).__name__}"
        )
    return int(getattr(cost, measure))


def model_cost(model: keras.Model) -> ModelCost:
    """Counts a built model's parameters and multiply-adds layer by layer."""
    height = model.input_shape[1]
    if height is None:
        raise ValueError("model_cost needs a fixed input size; rebuild with input_shape=(r, r, 3)")
    stages: dict[str, dict] = {}
    for layer in model.layers:
        stage = _stage_of(layer.name)
        if stage is None:
            continue
        entry = stages.setdefault(
            stage, {"blocks": set(), "channels": 0, "resolution": 0, "params": 0, "macs": 0,
                    "activations": 0}
        )
        entry["params"] += layer.count_params() if layer.built else 0
        entry["macs"] += _layer_macs(layer)
        entry["activations"] += _layer_activations(layer)
        match = _STAGE.match(layer.name)
        if match:
            entry["blocks"].add(layer.name.split("_")[0])
        if layer.name.endswith(("project_bn", "stem_bn", "top_bn")):
            entry["channels"] = int(layer.output.shape[-1])
            entry["resolution"] = int(layer.output.shape[1])
    stage_list = tuple(
        StageCost(name, max(1, len(e["blocks"])), e["channels"], e["resolution"], e["params"],
                  e["macs"], e["activations"])
        for name, e in stages.items()
    )
    return ModelCost(
        params=int(model.count_params()),
        trainable_params=int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        macs=sum(s.macs for s in stage_list),
        resolution=int(height),
        stages=stage_list,
        activations=sum(s.activations for s in stage_list),
    )


def spec_cost(spec: ModelSpec, resolution: int | None = None, channels: int = 3) -> ModelCost:
    """Counts parameters and multiply-adds of `spec` without building it.

    `params` counts what our built model holds (weights and batch-norm statistics, not the
    fixed normalization constants); `trainable_params` excludes the moving statistics.
    `channels` is the number of input channels (3 for RGB).
    """
    input_size = resolution or spec.scaling.resolution
    size = _same_out(input_size, 2)
    stem_c = spec.stem_channels
    stem_w = 9 * channels * stem_c
    stages = [_StageTally("stem", 1, stem_c, size, stem_w, stem_c, stem_w * size**2,
                          stem_c * size**2)]
    planned = spec.planned_blocks()
    for stage in sorted({b.stage for b in planned}):
        blocks = [b for b in planned if b.stage == stage]
        tally = _StageTally(f"stage{stage}", len(blocks), blocks[-1].args.filters_out, 0, 0, 0, 0)
        counted = None  # (args, input size, cost): a stage's repeated blocks cost the same
        for block in blocks:
            if counted is None or block.args is not counted[0] or size != counted[1]:
                block_cost = _fused_cost if block.args.fused else _mbconv_cost
                counted = (block.args, size, block_cost(block.args, size))
            weights, bn_channels, macs, activations, size = counted[2]
            tally.add(weights, bn_channels, macs, activations)
        tally.resolution = size
        stages.append(tally)
    in_c, head_c = stages[-1].channels, spec.head_channels
    head = _StageTally("head", 1, head_c, size, in_c * head_c, head_c, in_c * head_c * size**2,
                       head_c * size**2)
    if spec.include_top:
        head.add(head_c * spec.num_classes + spec.num_classes, 0, head_c * spec.num_classes)
    stages.append(head)
    costs = tuple(t.to_stage_cost() for t in stages)
    return ModelCost(
        params=sum(c.params for c in costs),
        trainable_params=sum(t.trainable for t in stages),
        macs=sum(c.macs for c in costs),
        resolution=input_size,
        stages=costs,
        activations=sum(c.activations for c in costs),
    )


@dataclasses.dataclass
class _StageTally:
    """Running counts of one stage; each BN channel has 2 trainable and 2 moving values."""

    name: str
    repeats: int
    channels: int
    resolution: int
    weights: int
    bn_channels: int
    macs: int
    activations: int = 0

    def add(self, weights: int, bn_channels: int, macs: int, activations: int = 0) -> None:
        self.weights += weights
        self.bn_channels += bn_channels
        self.macs += macs
        self.activations += activations

    @property
    def trainable(self) -> int:
        return self.weights + 2 * self.bn_channels

    def to_stage_cost(self) -> StageCost:
        return StageCost(self.name, self.repeats, self.channels, self.resolution,
                         self.weights + 4 * self.bn_channels, self.macs, self.activations)


def _mbconv_cost(args, size: int) -> tuple[int, int, int, int, int]:
    """(trainable weights, BN channels, multiply-adds, activations, output size) of one
    planned block."""
    c_in, c_out, k = args.filters_in, args.filters_out, args.kernel_size
    expanded = c_in * args.expand_ratio
    out = _same_out(size, args.strides)
    weights = bn_channels = macs = activations = 0
    if args.expand_ratio != 1:
        weights += c_in * expanded
        bn_channels += expanded
        macs += c_in * expanded * size**2
        activations += expanded * size**2
    weights += k * k * expanded
    bn_channels += expanded
    macs += k * k * expanded * out**2
    activations += expanded * out**2
    if args.has_se:
        reduced = args.se_filters
        weights += expanded * reduced + reduced + reduced * expanded + expanded
        macs += 2 * expanded * reduced
        activations += reduced + expanded  # the two 1x1 convolutions on the pooled vector
    weights += expanded * c_out
    bn_channels += c_out
    macs += expanded * c_out * out**2
    activations += c_out * out**2
    return weights, bn_channels, macs, activations, out


def _fused_cost(args, size: int) -> tuple[int, int, int, int, int]:
    """(trainable weights, BN channels, multiply-adds, activations, output size) of a
    Fused-MBConv block."""
    c_in, c_out, k = args.filters_in, args.filters_out, args.kernel_size
    out = _same_out(size, args.strides)
    if args.expand_ratio == 1:  # the kxk convolution is the projection
        weights, bn_channels, macs = k * k * c_in * c_out, c_out, k * k * c_in * c_out * out**2
        expanded = c_in
        activations = c_out * out**2
    else:
        expanded = c_in * args.expand_ratio
        weights = k * k * c_in * expanded + expanded * c_out
        bn_channels = expanded + c_out
        macs = (k * k * c_in * expanded + expanded * c_out) * out**2
        activations = (expanded + c_out) * out**2
    if 0 < args.se_ratio <= 1:
        reduced = max(1, int(c_in * args.se_ratio))
        weights += expanded * reduced + reduced + reduced * expanded + expanded
        macs += 2 * expanded * reduced
        activations += reduced + expanded
    return weights, bn_channels, macs, activations, out


def _same_out(size: int, stride: int) -> int:
    return -(-size // stride)


def _stage_of(name: str) -> str | None:
    if name.startswith("stem_"):
        return "stem"
    if name.startswith(("top_", "predictions", "avg_pool", "max_pool")):
        return "head"
    match = _STAGE.match(name)
    return f"stage{match.group(1)}" if match else None


def _layer_macs(layer) -> int:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, _ = layer.output.shape
        k = math.prod(layer.kernel_size)
        return int(h * w * k * layer.input.shape[-1] * layer.depth_multiplier)
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, c_out = layer.output.shape
        k = math.prod(layer.kernel_size)
        return int(h * w * k * layer.input.shape[-1] // layer.groups * c_out)
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1] * layer.units)
    return 0


def _layer_activations(layer) -> int:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
        return int(math.prod(layer.output.shape[1:]))
    return 0
