"""Synflow: deterministic, data-free, and larger for a larger network of the space."""

from __future__ import annotations

import math

from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.nas.oneshot.zero_cost import synflow_scores


def test_synflow_is_deterministic_and_grows_with_the_network(tiny_elastic):
    small, large = tiny_elastic.smallest(), tiny_elastic.largest()
    specs = [tiny_elastic.spec(tiny_elastic.blocks(p), p[RESOLUTION])
             for p in (small, large, small)]
    values = synflow_scores(specs, channels=1, seed=0)
    assert all(math.isfinite(v) for v in values)
    assert values[0] == values[2]
    assert values[1] > values[0] + 1.0  # log scale: many times the smallest's
