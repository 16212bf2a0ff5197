"""The `build` and `scale` commands: print architecture and cost tables, optionally save models."""

from __future__ import annotations

import argparse
from pathlib import Path

from absl import logging

from efficientnet_search.arch.blocks import B0_BLOCKS, decode_blocks
from efficientnet_search.arch.cost import ModelCost, spec_cost
from efficientnet_search.arch.family import (
    Coefficients,
    coefficients_caveat,
    read_baseline,
    read_coefficients,
    scale_family,
)
from efficientnet_search.arch.model import ModelSpec, build_model, resolve_spec
from efficientnet_search.arch.scaling import (
    LITE_PUBLISHED_COSTS,
    LITE_VARIANTS,
    PAPER_COSTS,
    V2_PAPER_COSTS,
    V2_VARIANTS,
    VARIANTS,
)
from efficientnet_search.tables import format_table


def describe_spec(spec: ModelSpec, cost: ModelCost) -> str:
    """Per-stage table (repeats, channels, output resolution, params, multiply-adds) + totals."""
    rows = [(s.name, s.repeats, s.channels, s.resolution, f"{s.params:,}", f"{s.macs:,}")
            for s in cost.stages]
    scaling = spec.scaling
    header = (
        f"width {scaling.width:g}, depth {scaling.depth:g}, resolution {scaling.resolution}, "
        f"dropout {scaling.dropout:g} ({scaling.source})"
    )
    totals = (
        f"{spec.family} family; input {scaling.resolution}x{scaling.resolution}x3; "
        f"params {cost.params:,} "
        f"(trainable {cost.trainable_params:,}); multiply-adds {cost.macs:,} "
        f"({cost.macs / 1e9:.3f} B)"
    )
    table = format_table(("stage", "repeats", "channels", "resolution", "params", "mult-adds"),
                         rows)
    return f"{header}\n{table}\n{totals}"


def variants_table(family: str = "v1") -> str:
    """B0-B7 beside the paper's Table 2 and Lite0-4 beside the Lite README's table (V1), or
    V2-B0..L beside the V2 paper's Table 7."""
    if family == "v2":
        v2_table = _cost_table(V2_VARIANTS, V2_PAPER_COSTS, "paper", str.upper)
        v2_note = ("params are trainable parameters; mult-adds per image at the evaluation size "
                   "(keras.applications' default_size). Table 7 of Tan & Le 2021 prints FLOPs "
                   "(multiply-adds) and parameters rounded to 0.1.")
        return f"{v2_table}\n{v2_note}"
    b_table = _cost_table(VARIANTS, PAPER_COSTS, "paper", str.upper)
    lite_table = _cost_table(LITE_VARIANTS, LITE_PUBLISHED_COSTS, "README", str.title)
    note = ("params are trainable parameters (as the paper counts); mult-adds per image. "
            "B4, B5 and B7 as released count more multiply-adds than the paper prints "
            "(4.39B, 10.3B, 37.7B vs 4.2B, 9.9B, 37B).")
    lite_note = ("Lite: ReLU6, no squeeze-excitation, stem and head not scaled; published "
                 "figures from tensorflow/tpu models/official/efficientnet/lite/README.md. "
                 "Its MAdds run 3-6% above our count (conv, depthwise and classifier "
                 "multiply-adds only); its params match ours.")
    return f"{b_table}\n{note}\n\n{lite_table}\n{lite_note}"


def _cost_table(variants, published, source: str, title) -> str:
    rows = []
    for name, scaling in variants.items():
        cost = spec_cost(resolve_spec(name))
        params, macs = published[name]
        rows.append((
            title(name), f"{scaling.width:g}", f"{scaling.depth:g}", scaling.resolution,
            f"{cost.trainable_params / 1e6:.2f}M", f"{params / 1e6:g}M",
            f"{cost.macs / 1e9:.3f}B", f"{macs / 1e9:g}B",
        ))
    return format_table(("model", "width", "depth", "res", "params", source, "mult-adds",
                         source), rows)


def build(args: argparse.Namespace) -> None:
    """`efficientnet-search build`: describe (and optionally save) one model or all variants."""
    if args.all:
        if any(getattr(args, k) is not None for k in ("variant", "width", "depth", "resolution")):
            raise ValueError("--all prints every variant of --family (v1: B0-B7 and Lite0-4; "
                             "v2: V2-B0..L); drop --variant/--width/--depth/--resolution")
        print(variants_table(getattr(args, "family", None) or "v1"))
        return
    spec = resolve_spec(
        args.variant, width=args.width, depth=args.depth, resolution=args.resolution,
        dropout=args.dropout, blocks=args.blocks, num_classes=args.num_classes,
        family=getattr(args, "family", None),
    )
    print(describe_spec(spec, spec_cost(spec)))
    if args.output:
        _save(build_model(args.variant, spec=spec), args.output)


def scale(args: argparse.Namespace) -> None:
    """`efficientnet-search scale`: the phi family from coefficients, as a table."""
    coefficients = _coefficients(args)
    blocks_from = getattr(args, "blocks_from", None)
    blocks = decode_blocks(read_baseline(blocks_from)) if blocks_from else B0_BLOCKS
    members = scale_family(coefficients, args.phi, base_resolution=args.base_resolution,
                           blocks=blocks, num_classes=args.num_classes)
    rows = [
        (m.phi, f"{m.spec.scaling.depth:.3f}", f"{m.spec.scaling.width:.3f}",
         m.spec.scaling.resolution, f"{m.cost.trainable_params / 1e6:.2f}M",
         f"{m.cost.macs / 1e9:.3f}B", f"{m.macs_ratio:.2f}", f"{m.nominal_ratio:.2f}")
        for m in members
    ]
    print(
        f"alpha {coefficients.alpha:g}, beta {coefficients.beta:g}, gamma {coefficients.gamma:g}"
        f" (alpha*beta^2*gamma^2 = {coefficients.cost_ratio:.3f}); base resolution "
        f"{args.base_resolution}; baseline {'from ' + blocks_from if blocks_from else 'B0'}"
    )
    print(format_table(("phi", "depth", "width", "res", "params", "mult-adds", "ratio",
                        "nominal"), rows))
    print("ratio: multiply-adds relative to phi=0; nominal: (alpha*beta^2*gamma^2)^phi")
    caveat = coefficients_caveat(args.coefficients) if args.coefficients else None
    if caveat:
        print(f"note: {caveat}")
    if args.output_dir:
        for member in members:
            _save(build_model(spec=member.spec, name=f"efficientnet_phi{member.phi}"),
                  Path(args.output_dir) / f"phi{member.phi}.keras")


def _coefficients(args: argparse.Namespace) -> Coefficients:
    explicit = [args.alpha, args.beta, args.gamma]
    if args.coefficients is not None:
        if any(v is not None for v in explicit):
            raise ValueError("give either --coefficients or --alpha/--beta/--gamma, not both")
        return read_coefficients(args.coefficients)
    if any(v is None for v in explicit):
        raise ValueError(
            "scale needs --coefficients (results.json or 'paper') or all of --alpha --beta --gamma"
        )
    for name, value in zip(("alpha", "beta", "gamma"), explicit, strict=True):
        if value <= 0:
            raise ValueError(f"--{name} must be > 0, got {value}")
    return Coefficients(*explicit)


def _save(model, path: str | Path) -> None:
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"--output must end in .keras, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    logging.info("saved %s", path)
    print(f"saved {path}")
