"""extract: the stand-alone model built by build_model equals the supernet's subnet."""

from __future__ import annotations

import random

import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.nas.oneshot.extract import extract
from efficientnet_search.search.nas.oneshot.supernet import Supernet


def _perturbed(elastic, mode):
    """A supernet whose BN scales and shifts are not the identity, so a wrong prefix shows."""
    net = Supernet(elastic, channels=3, mode=mode, seed=3)
    rng = np.random.default_rng(0)
    for bn in net.batch_norms:
        bn.gamma.assign(rng.uniform(0.5, 1.5, bn.channels).astype("float32"))
        bn.beta.assign(rng.normal(0, 0.3, bn.channels).astype("float32"))
    return net


def _subnets(elastic, drawn=1):
    rng = random.Random(5)
    return [elastic.smallest(), elastic.largest(), *(elastic.sample(rng) for _ in range(drawn))]


@pytest.mark.parametrize("mode, drawn", [
    ("slice", 2), pytest.param("mask", 3, marks=pytest.mark.slow),
    pytest.param("slice", 6, marks=pytest.mark.slow)])
def test_extracted_model_equals_the_supernet_for_each_subnet(tiny_elastic, mode, drawn):
    net = _perturbed(tiny_elastic, mode)
    rng = np.random.default_rng(1)
    for params in _subnets(tiny_elastic, drawn):
        r = params[RESOLUTION]
        blocks = tiny_elastic.blocks(params)
        choices = tiny_elastic.encode(blocks, r)
        calib = [rng.uniform(0, 255, (8, r, r, 3)).astype("float32") for _ in range(2)]
        net.recalibrate(calib, choices)
        images = rng.uniform(0, 255, (6, r, r, 3)).astype("float32")
        expected = net.infer(images, choices).numpy()
        model = extract(net, blocks, r)
        got = model(images, training=False).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=str(blocks))
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert trainable <= sum(int(np.prod(v.shape)) for v in net.trainable_variables)


def test_largest_and_smallest_differ(tiny_elastic):
    """A check that the comparison can fail: two subnets give different outputs."""
    net = _perturbed(tiny_elastic, "slice")
    images = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    outs = []
    for params in (tiny_elastic.smallest(), {**tiny_elastic.largest(), RESOLUTION: 32}):
        choices = tiny_elastic.encode(tiny_elastic.blocks(params), 32)
        net.recalibrate([images], choices)
        outs.append(net.infer(images, choices).numpy())
    assert np.abs(outs[0] - outs[1]).max() > 1e-3


def test_one_trace_serves_every_subnet_and_resolution(tiny_elastic):
    net = _perturbed(tiny_elastic, "slice")
    for params in _subnets(tiny_elastic):
        r = params[RESOLUTION]
        net.infer(tf.zeros([2, r, r, 3]), tiny_elastic.encode(tiny_elastic.blocks(params), r))
    assert net._forward["infer"].experimental_get_tracing_count() == 1
