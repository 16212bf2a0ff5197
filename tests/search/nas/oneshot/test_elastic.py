"""The elastic space: slots of the largest network, subnets as choice rows, refusals."""

from __future__ import annotations

import random

import pytest

from efficientnet_search import config as config_lib
from efficientnet_search.search.nas.oneshot.elastic import (
    FIELDS,
    HEAD,
    RESOLUTION,
    STEM,
    build_elastic,
)
from efficientnet_search.search.nas.space import SpaceConfig

from .conftest import TINY_BASELINE

ACTIVE, CIN, COUT = FIELDS.index("active"), FIELDS.index("cin"), FIELDS.index("cout")


def test_largest_fills_every_slot_and_smallest_keeps_a_first_block_per_stage(tiny_elastic):
    largest = tiny_elastic.encode(tiny_elastic.blocks(tiny_elastic.largest()), 40)
    assert largest.shape == tiny_elastic.choice_shape == (len(tiny_elastic.slots) + 1,
                                                          len(FIELDS))
    slots = largest[:-1]  # the last row holds the network's stem and head widths
    assert slots[:, ACTIVE].all()
    assert [(s.cin, s.cout) for s in tiny_elastic.slots] == [tuple(r) for r in
                                                              slots[:, [CIN, COUT]]]
    assert list(largest[-1, [STEM, HEAD]]) == [tiny_elastic.stem, tiny_elastic.head]
    smallest = tiny_elastic.encode(tiny_elastic.blocks(tiny_elastic.smallest()), 32)[:-1]
    stages = [s.stage for s in tiny_elastic.slots]
    firsts = [i for i, s in enumerate(tiny_elastic.slots) if s.index == 0]
    assert smallest[firsts, ACTIVE].all() and smallest[:, ACTIVE].sum() == len(set(stages))
    # channels are prefixes: every subnet's widths are at most the slot's
    for params in (tiny_elastic.sample(random.Random(i)) for i in range(20)):
        rows = tiny_elastic.encode(tiny_elastic.blocks(params), params[RESOLUTION])[:-1]
        for slot, row in zip(tiny_elastic.slots, rows, strict=True):
            assert row[ACTIVE] == 0 or (row[CIN] <= slot.cin and row[COUT] <= slot.cout)


def test_subnet_outside_the_supernet_is_refused(tiny_elastic):
    blocks = list(tiny_elastic.blocks(tiny_elastic.largest()))
    with pytest.raises(ValueError, match="does not fit the supernet"):
        tiny_elastic.encode([blocks[0].replace("k3", "k7").replace("k5", "k7"), *blocks[1:]],
                            32)
    with pytest.raises(ValueError, match="resolution 48 is not one of"):
        tiny_elastic.encode(blocks, 48)


def test_mutation_changes_one_choice(tiny_elastic):
    rng = random.Random(3)
    parent = tiny_elastic.sample(rng)
    for _ in range(20):
        child = tiny_elastic.mutate(parent, rng)
        assert sum(child[k] != parent[k] for k in parent) == 1


def test_fused_baseline_cannot_be_made_elastic():
    fused = ("r1_k3_s1_e1_i32_o16_c1", "r2_k3_s2_e4_i16_o32")
    with pytest.raises(config_lib.ConfigError, match="Fused-MBConv.*drop c1"):
        build_elastic(SpaceConfig(), fused, width=0.25, depth=0.5, resolutions=(32,),
                      num_classes=10, dropout=0.2)
    with pytest.raises(config_lib.ConfigError, match="sides >= 32"):
        build_elastic(SpaceConfig(), TINY_BASELINE, width=0.25, depth=0.5, resolutions=(16,),
                      num_classes=10, dropout=0.2)
