"""How a proxy network's latency is measured: one way for the grid, the NAS and benchmarks."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from efficientnet_search.arch.model import ModelSpec

if TYPE_CHECKING:  # training.latency loads TensorFlow; it is imported where a network is timed
    from efficientnet_search.training.latency import Latency


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """How latency is measured (training.latency): the batch (default the proxy's), the
    precision, untimed warm-up calls, the fewest timed calls and the least timed duration
    (`min_seconds`: a small proxy's 20 calls last ~0.2 s, too short to average out the
    machine's noise); `record` measures it for every trained candidate even when another
    cost admits them."""

    batch_size: int | None = None
    precision: str = "float32"
    warmup: int = 5
    repeats: int = 20
    min_seconds: float = 0.0
    record: bool = True

    def __post_init__(self) -> None:
        if self.warmup < 1 or self.repeats < 3 or self.min_seconds < 0:
            raise ValueError(
                f"candidates.latency needs warmup >= 1, repeats >= 3 and min_seconds >= 0, "
                f"got warmup={self.warmup}, repeats={self.repeats}, "
                f"min_seconds={self.min_seconds}"
            )


def time_spec(settings: LatencyConfig, spec: ModelSpec, default_batch: int) -> Latency:
    """Times `spec` as `settings` say (`default_batch` when they name no batch), then frees
    the built network: the one way the grid, the architecture search and the benchmark time
    a candidate."""
    from efficientnet_search.training.graph_memory import release_graph_memory
    from efficientnet_search.training.latency import measure_latency

    measured = measure_latency(
        spec, batch_size=settings.batch_size or default_batch, precision=settings.precision,
        warmup=settings.warmup, repeats=settings.repeats, min_seconds=settings.min_seconds,
    )  # fmt: skip
    release_graph_memory()  # its traced predict step, kept alive by swish otherwise
    return measured
