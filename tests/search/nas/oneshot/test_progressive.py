"""Progressive shrinking (progressive.py): the phases come in Once-for-All's order, each
making one more kind of choice elastic, and a run stopped in a later phase resumes to the
uninterrupted weights."""

from __future__ import annotations

import numpy as np
import pytest

from efficientnet_search.search.nas.oneshot import progressive
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import SandwichTrainer, TrainConfig
from tests.search.nas.oneshot.test_train import _data, _weights


def _varied(elastic, subnets) -> set[str]:
    """The kinds of choice (kernel, repeats, ...) that differ from the largest network's."""
    largest = elastic.largest()
    return {name.split("_", 1)[1] if name != RESOLUTION else RESOLUTION
            for subnet in subnets for name, value in subnet.items()
            if value != largest[name]}  # fmt: skip


def test_phases_run_in_order_each_making_one_more_choice_elastic(tiny_elastic, tmp_path):
    config = TrainConfig(epochs=4, steps_per_epoch=10, random_subnets=3, progressive=True)
    trainer = SandwichTrainer(Supernet(tiny_elastic), _data(tiny_elastic.resolutions, n=80),
                              config, 8, 0, tmp_path)  # fmt: skip
    phases = [progressive.phase_at(n, trainer.total_steps) for n in range(trainer.total_steps)]
    assert phases == [p for p in progressive.PHASES for _ in range(10)]
    varied = {}
    for n, phase in enumerate(phases):
        subnets = trainer.subnets(n)
        assert subnets[0] == tiny_elastic.largest()
        if phase == "largest":
            assert subnets == [tiny_elastic.largest()]  # the largest network alone
        varied.setdefault(phase, set()).update(_varied(tiny_elastic, subnets))
    assert varied["largest"] == set()
    assert varied["kernel"] == {"kernel", RESOLUTION}
    assert varied["depth"] == {"kernel", "repeats", RESOLUTION}
    assert varied["width"] == {"kernel", "repeats", "expand", "se", "filters", RESOLUTION}
    # off by default: every choice varies from the first step
    plain = SandwichTrainer(Supernet(tiny_elastic), _data(tiny_elastic.resolutions, n=80),
                            TrainConfig(epochs=4, steps_per_epoch=10), 8, 0, tmp_path / "p")
    assert "expand" in _varied(tiny_elastic, plain.subnets(0))


@pytest.mark.slow  # 3 short supernet trainings, ~1 min on 2 loaded cores
def test_progressive_run_stopped_in_a_later_phase_resumes_to_the_same_weights(tiny_elastic,
                                                                               tmp_path):
    data = _data(tiny_elastic.resolutions)
    config = TrainConfig(epochs=4, steps_per_epoch=1, checkpoint_every=1, progressive=True)
    whole = Supernet(tiny_elastic, seed=1)
    assert len(SandwichTrainer(whole, data, config, 8, 0, tmp_path / "whole").fit()) == 4
    SandwichTrainer(Supernet(tiny_elastic, seed=1), data, config, 8, 0,
                    tmp_path / "killed").fit(stop_after=3)  # stopped in phase depth
    resumed_net = Supernet(tiny_elastic, seed=99)
    resumed = SandwichTrainer(resumed_net, data, config, 8, 0, tmp_path / "killed")
    assert int(resumed.step) == 3 and len(resumed.fit()) == 1
    for a, b in zip(_weights(whole), _weights(resumed_net), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
