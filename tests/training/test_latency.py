"""Latency: a median of timed calls on this machine, recorded with the device's name.

No timing thresholds: the machine is shared (a loaded machine made one of two calls of the
same model 5x slower), so only what is recorded is checked.
"""

from __future__ import annotations

import math

import pytest

from efficientnet_search.arch.model import build_model, resolve_spec
from efficientnet_search.training.latency import device_name, measure_latency

TINY = {"width": 0.1, "depth": 0.25, "resolution": 32, "num_classes": 10}


def test_latency_records_median_spread_device_batch_and_precision():
    first = measure_latency(resolve_spec(**TINY), batch_size=4, warmup=2, repeats=5)
    built = measure_latency(build_model(**TINY), batch_size=2, warmup=1, repeats=3)
    assert first.median_ms > 0 and math.isfinite(first.spread) and first.spread >= 0
    assert first.device == device_name() and first.device.split(":")[0] in ("CPU", "GPU", "TPU")
    assert (first.batch_size, first.precision, first.repeats) == (4, "float32", 5)
    assert built.median_ms > 0 and built.batch_size == 2
    assert set(first.to_json()) >= {"median_ms", "device", "batch_size", "precision"}


def test_latency_refuses_too_few_timed_calls():
    with pytest.raises(ValueError, match="repeats >= 3.*repeats=1"):
        measure_latency(resolve_spec(**TINY), repeats=1)


def test_latency_keeps_timing_until_the_minimum_duration():
    model = build_model(**TINY)
    quick = measure_latency(model, batch_size=1, warmup=1, repeats=3)
    long = measure_latency(model, batch_size=1, warmup=1, repeats=3, min_seconds=0.3)
    assert quick.repeats == 3
    # a tiny model's call takes milliseconds, so 0.3 s of timed calls is many more than 3
    assert long.repeats >= 10


def test_latency_refuses_a_negative_minimum_duration():
    with pytest.raises(ValueError, match="min_seconds >= 0.*min_seconds=-1"):
        measure_latency(resolve_spec(**TINY), min_seconds=-1)
