"""Sandwich training: the loss falls, and a killed run resumes to the uninterrupted weights."""

from __future__ import annotations

import numpy as np
import pytest

from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import Images, SandwichTrainer, TrainConfig


def _data(resolutions, n=32):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, n)
    # Class-dependent brightness: learnable in a few steps.
    base = {r: (labels[:, None, None, None] * 60.0
                + rng.uniform(0, 20, (n, r, r, 3))).astype("float32") for r in resolutions}
    return Images(base, labels)


def _weights(net):
    return [v.numpy().copy() for v in net.trainable_variables]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(tiny_elastic, tmp_path):
    data = _data(tiny_elastic.resolutions)
    config = TrainConfig(epochs=2, steps_per_epoch=2, checkpoint_every=1)
    whole = Supernet(tiny_elastic, seed=1)
    losses = SandwichTrainer(whole, data, config, 8, 0, tmp_path / "whole").fit()
    assert len(losses) == 4
    first = Supernet(tiny_elastic, seed=1)
    SandwichTrainer(first, data, config, 8, 0, tmp_path / "killed").fit(stop_after=3)
    resumed_net = Supernet(tiny_elastic, seed=99)  # other initial weights: all must come back
    resumed = SandwichTrainer(resumed_net, data, config, 8, 0, tmp_path / "killed")
    assert int(resumed.step) == 3
    assert resumed.fit() and int(resumed.step) == 4
    for a, b in zip(_weights(whole), _weights(resumed_net), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    initial = _weights(Supernet(tiny_elastic, seed=1))
    moved = [np.abs(a - b).max() for a, b in zip(_weights(whole), initial, strict=True)]
    assert max(moved) > 1e-4  # training changed the weights (the check above can fail)


def test_sandwich_is_largest_smallest_then_random(tiny_elastic, tmp_path):
    trainer = SandwichTrainer(Supernet(tiny_elastic), _data(tiny_elastic.resolutions),
                              TrainConfig(random_subnets=2), 8, 0, tmp_path)
    subnets = trainer.subnets(5)
    assert subnets[0] == tiny_elastic.largest() and subnets[1] == tiny_elastic.smallest()
    assert len(subnets) == 4 and trainer.subnets(5) == subnets != trainer.subnets(6)
