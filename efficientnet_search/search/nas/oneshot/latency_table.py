"""Latency from a per-block lookup table measured on this machine (Once-for-All's latency
lookup tables, Cai et al. 2020, Section 3.3 and Appendix), checked against whole-network
timing.

Timing every scored subnet whole would cost a Keras build and tens of timed calls each;
a table times each distinct piece once: the stem at a resolution, each MBConv block by its
input side and block string (kernel, strides, expansion, SE, channels, skip), and the head
(head convolution, pooling and classifier) by its input side and channels. A network's
latency is then the sum of its pieces. Each timed piece also pays a fixed per-call cost
(dispatch, the copy of the output to the host), which a whole network pays once: the table
times an empty network for that cost and counts it once, `overhead + sum(piece - overhead)`.
Pieces are timed with the project's one way (`training.latency.measure_latency`, the
`LatencyConfig` given) on first use and appended to a CSV, so a resumed run times nothing
twice. `check` times a few whole networks the normal way (`proxy.latency.time_spec`) and
reports the table's relative error: a table's sum ignores what fusing across pieces saves
or costs, so the error is measured, never assumed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from efficientnet_search.arch.blocks import encode_block_string
from efficientnet_search.arch.model import ModelSpec
from efficientnet_search.search.proxy.latency import LatencyConfig, time_spec
from efficientnet_search.tables import append_csv_row

FIELDS = ("piece", "median_ms", "device")
CHANNELS = 3  # input channels, as `time_spec` builds and `arch.cost` counts
EMPTY = "empty"  # the piece that times the per-call overhead alone


def _side(side: int, strides: int) -> int:
    return -(-side // strides)  # "same" padding: ceil(side / strides)


def pieces(spec: ModelSpec, channels: int = CHANNELS) -> list[tuple[str, Any]]:
    """The network's timed pieces as (key, what builds it), stem to head."""
    resolution = spec.scaling.resolution
    out: list[tuple[str, Any]] = [(f"stem r{resolution} c{channels} o{spec.stem_channels}",
                                   ("stem", resolution, channels, spec.stem_channels))]
    side = _side(resolution, 2)
    last = spec.stem_channels
    for block in spec.planned_blocks():
        args = dataclasses.replace(block.args, repeats=1)
        out.append((f"block h{side} {encode_block_string(args)}", ("block", side, args)))
        side, last = _side(side, args.strides), args.filters_out
    out.append((f"head h{side} i{last} o{spec.head_channels} n{spec.num_classes}",
                ("head", side, last, spec.head_channels, spec.num_classes)))
    return out


@dataclasses.dataclass
class LatencyTable:
    """Per-piece latencies of one machine, batch and precision, read from and appended to
    `path`.

    Args:
      activation: the networks' activation (`ModelSpec.activation`).
      settings: how a piece is timed (its batch must be set).
      path: the CSV (piece, median_ms, device).
    """

    activation: str
    settings: LatencyConfig
    path: Path
    entries: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.path.exists():
            with self.path.open(newline="") as handle:
                self.entries = {r["piece"]: float(r["median_ms"]) for r in csv.DictReader(handle)}

    def network_ms(self, spec: ModelSpec) -> float:
        """The table's latency of network `spec` (ms per batch; pieces timed on first use)."""
        overhead = self._entry(EMPTY, (EMPTY,))
        return overhead + sum(self._entry(key, build) - overhead
                              for key, build in pieces(spec))

    def check(self, specs: Sequence[ModelSpec]) -> dict[str, Any]:
        """Each network timed whole (`time_spec`) beside the table's sum: the relative errors
        (table / whole - 1), their median absolute value and the Spearman of the two."""
        from efficientnet_search.search.stats import spearman

        rows = []
        for spec in specs:
            table = self.network_ms(spec)
            whole = time_spec(self.settings, spec, self.settings.batch_size or 1).median_ms
            rows.append({"table_ms": table, "whole_ms": whole, "error": table / whole - 1})
        errors = [abs(r["error"]) for r in rows]
        return {"networks": rows, "median_abs_error": statistics.median(errors) if rows
                else math.nan,
                "spearman": spearman([r["table_ms"] for r in rows],
                                     [r["whole_ms"] for r in rows]) if len(rows) >= 3
                else math.nan}  # fmt: skip

    def _entry(self, key: str, build) -> float:
        if key not in self.entries:
            from efficientnet_search.training.graph_memory import release_graph_memory
            from efficientnet_search.training.latency import measure_latency

            measured = measure_latency(
                _piece_model(build, self.activation), batch_size=self.settings.batch_size or 1,
                precision=self.settings.precision, warmup=self.settings.warmup,
                repeats=self.settings.repeats, min_seconds=self.settings.min_seconds)
            release_graph_memory()
            self.entries[key] = round(measured.median_ms, 5)  # as the CSV holds it
            append_csv_row(self.path, FIELDS, {"piece": key, "median_ms": self.entries[key],
                                               "device": measured.device})  # fmt: skip
        return self.entries[key]


def _piece_model(build, activation: str):
    """A Keras model of one piece (the layers the normal builder uses for it)."""
    import keras
    from keras import layers

    from efficientnet_search.arch.layers import BlockParts, batch_norm, conv_bn_act, mbconv_block

    parts = BlockParts(activation=activation, norm=batch_norm(0.9))
    kind = build[0]
    if kind == EMPTY:
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, layers.Identity()(inputs))
    if kind == "stem":
        _, resolution, channels, out = build
        inputs = keras.Input((resolution, resolution, channels))
        x = layers.Rescaling(1.0 / 255.0)(inputs)
        x = conv_bn_act(x, out, 3, strides=2, activation=activation, norm=parts.norm,
                        conv_name="stem_conv", bn_name="stem_bn", act_name="stem_act")
        return keras.Model(inputs, x)
    if kind == "block":
        _, side, args = build
        inputs = keras.Input((side, side, args.filters_in))
        return keras.Model(inputs, mbconv_block(inputs, args, name="b", parts=parts))
    _, side, channels, head, classes = build
    inputs = keras.Input((side, side, channels))
    x = conv_bn_act(inputs, head, 1, activation=activation, norm=parts.norm,
                    conv_name="top_conv", bn_name="top_bn", act_name="top_act")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def for_run(config, run_dir: str | Path, elastic) -> LatencyTable | None:
    """The run's table (RUN/latency_table.csv) when `oneshot.latency_table` is on or the
    objective's cost is latency; None otherwise. Timed as `objective.latency` says (its batch
    defaults to the data's)."""
    if not (config.oneshot.latency_table or config.objective.cost == "latency"):
        return None
    settings = config.objective.latency
    if settings.batch_size is None:
        settings = dataclasses.replace(settings, batch_size=config.data.batch_size)
    smallest = elastic.smallest()
    activation = elastic.spec(elastic.blocks(smallest), smallest["resolution"]).activation
    return LatencyTable(activation, settings, Path(run_dir) / "latency_table.csv")


def with_latency(score, table: LatencyTable | None, elastic):
    """`score` whose records also carry `latency` (the table's ms per batch); `score` itself
    when there is no table."""
    if table is None:
        return score

    def scored(params):
        record = score(params)
        if "latency" not in record:
            record["latency"] = table.network_ms(elastic.spec(record["blocks"],
                                                              record["resolution"]))
        return record

    return scored


def checked(table: LatencyTable, elastic, records: Sequence[dict], count: int) -> dict:
    """`table.check` on `count` scored architectures spread over MACs, with the table's size
    and device (for results.json)."""
    from efficientnet_search.search.nas.oneshot.calibration import spread_over_cost

    picks = spread_over_cost(records, count) if count else []
    out = table.check([elastic.spec(r["blocks"], r["resolution"]) for r in picks])
    return {**out, "pieces": len(table.entries), "batch_size": table.settings.batch_size,
            "device": _device()}


def _device() -> str:
    from efficientnet_search.training.latency import device_name

    return device_name()
