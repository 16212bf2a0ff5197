"""Latency from a per-block table: pieces timed once, summed, checked against whole timing."""

from __future__ import annotations

import math

import pytest

from efficientnet_search.search.nas.oneshot import latency_table as latency_lib
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.proxy.latency import LatencyConfig

SETTINGS = LatencyConfig(batch_size=8, warmup=1, repeats=3)


def _spec(elastic, params):
    return elastic.spec(elastic.blocks(params), params[RESOLUTION])


def test_a_network_is_its_stem_blocks_and_head(tiny_elastic):
    spec = _spec(tiny_elastic, tiny_elastic.largest())
    keys = [k for k, _ in latency_lib.pieces(spec)]
    assert keys[0].startswith("stem r40 c3") and keys[-1].startswith("head h")
    assert len(keys) == len(spec.planned_blocks()) + 2
    assert keys[1].startswith("block h20 ")  # the stem halves the side


def test_table_sums_pieces_times_each_once_and_is_checked(tiny_elastic, tmp_path, monkeypatch):
    small, large = (_spec(tiny_elastic, p) for p in (tiny_elastic.smallest(),
                                                      tiny_elastic.largest()))
    table = latency_lib.LatencyTable(small.activation, SETTINGS, tmp_path / "t.csv")
    low, high = table.network_ms(small), table.network_ms(large)
    assert 0 < low < high
    timed = len(table.entries)
    assert table.network_ms(large) == high and len(table.entries) == timed  # looked up
    check = table.check([small, large])
    assert len(check["networks"]) == 2 and math.isfinite(check["median_abs_error"])
    assert check["networks"][0]["table_ms"] == pytest.approx(low)

    def refuse(*_, **__):
        raise AssertionError("a piece in the CSV was timed again")

    monkeypatch.setattr("efficientnet_search.training.latency.measure_latency", refuse)
    resumed = latency_lib.LatencyTable(small.activation, SETTINGS, tmp_path / "t.csv")
    assert resumed.network_ms(large) == high  # from the CSV, nothing timed
