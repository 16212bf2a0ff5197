"""A tiny elastic space shared by the one-shot tests (3 stages, width 0.5, 32-40 px)."""

from __future__ import annotations

import pytest

from efficientnet_search.search.nas.oneshot.elastic import build_elastic
from efficientnet_search.search.nas.space import SpaceConfig

TINY_BASELINE = ("r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25",
                 "r2_k5_s22_e6_i24_o40_se0.25")


@pytest.fixture(scope="session")
def tiny_elastic():
    """Kernels 3/5, expansions 1/4/6, SE on/off, repeats base-1..base+1, widths x0.75-1.25."""
    return build_elastic(SpaceConfig(), TINY_BASELINE, width=0.5, depth=1.0,
                         resolutions=(32, 40), num_classes=4, dropout=0.2)
