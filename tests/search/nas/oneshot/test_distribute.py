"""The supernet under tf.distribute: MirroredStrategy over 2 logical CPU devices trains like
one device, and a run stopped part way resumes to the uninterrupted weights (in a
subprocess: logical devices must be set before TensorFlow starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.paths import ROOT

_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from efficientnet_search.search.nas.oneshot import replicas
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import SandwichTrainer, TrainConfig
from tests.search.nas.oneshot.conftest import TINY_BASELINE
from tests.search.nas.oneshot.test_train import _data
from efficientnet_search.search.nas.oneshot.elastic import build_elastic
from efficientnet_search.search.nas.space import SpaceConfig

elastic = build_elastic(SpaceConfig(), TINY_BASELINE, width=0.5, depth=1.0,
                        resolutions=(32, 40), num_classes=4, dropout=0.0)
data = _data(elastic.resolutions)
config = TrainConfig(epochs=2, steps_per_epoch=2, checkpoint_every=1)
out = {}

def train(name, strategy, seed, directory, stop_after=None):
    with strategy.scope():
        net = Supernet(elastic, seed=seed)
    trainer = SandwichTrainer(net, data, config, 8, 0, f"{sys.argv[1]}/{directory}", strategy)
    return net, trainer, trainer.fit(stop_after=stop_after)

mirrored = replicas.strategy_for("mirrored")
out["replicas"] = mirrored.num_replicas_in_sync
whole, _, out["mirrored"] = train("whole", mirrored, 1, "whole")
_, _, out["single"] = train("single", replicas.strategy_for("cpu"), 1, "single")
train("killed", mirrored, 1, "killed", stop_after=3)
resumed, trainer, _ = train("resumed", mirrored, 99, "killed")
out["resumed_step"] = int(trainer.step)
out["resumed_diff"] = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in
                          zip(whole.trainable_variables, resumed.trainable_variables))
print(json.dumps(out))
"""


@pytest.mark.slow  # 4 tiny supernet trainings, 2 of them mirrored: 1.5 min on 2 idle cores
def test_mirrored_over_two_cpus_trains_like_one_device_and_resumes(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert len(out["mirrored"]) == len(out["single"]) == 4
    assert out["mirrored"][-1] < out["mirrored"][0]
    # Same global batch and subnets: the same losses up to batch-norm statistics, which each
    # replica computes on its own 4 images (a loss summed over replicas twice would be 2x).
    np.testing.assert_allclose(out["mirrored"], out["single"], rtol=0.25)
    assert out["resumed_step"] == 4 and out["resumed_diff"] < 1e-5
