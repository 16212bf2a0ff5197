"""The supernet under tf.distribute: MirroredStrategy over 2 logical CPU devices trains like
one device, and a run stopped part way resumes to the uninterrupted weights (in a
subprocess: logical devices must be set before TensorFlow starts); two multi-worker
processes train in step, and only the chief writes the run's checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.paths import ROOT
from tests.ports import free_ports

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

mirrored = replicas.distribution_for("mirrored").strategy
out["replicas"] = mirrored.num_replicas_in_sync
whole, _, out["mirrored"] = train("whole", mirrored, 1, "whole")
_, _, out["single"] = train("single", replicas.distribution_for("cpu").strategy, 1, "single")
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


_WORKER_SCRIPT = """
import json, sys
from efficientnet_search.search.nas.oneshot import replicas
dist = replicas.distribution_for("multi_worker")
from efficientnet_search.search.nas.oneshot.elastic import build_elastic
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import SandwichTrainer, TrainConfig
from efficientnet_search.search.nas.space import SpaceConfig
from tests.search.nas.oneshot.conftest import TINY_BASELINE
from tests.search.nas.oneshot.test_train import _data

elastic = build_elastic(SpaceConfig(), TINY_BASELINE, width=0.5, depth=1.0,
                        resolutions=(32, 40), num_classes=4, dropout=0.0)
with dist.strategy.scope():
    net = Supernet(elastic, seed=1)
scratch = None if dist.is_chief else sys.argv[1] + "/scratch"
config = TrainConfig(epochs=1, steps_per_epoch=3)
trainer = SandwichTrainer(net, _data(elastic.resolutions), config, 8, 0,
                          sys.argv[1] + "/supernet", dist.strategy, scratch)
losses = trainer.fit()
print(json.dumps({"chief": dist.is_chief, "chief_task": replicas.chief_task(),
                  "replicas": dist.num_replicas, "losses": losses}))
"""


@pytest.mark.slow  # two processes, each a tiny supernet's 3 steps: ~1 min on 2 loaded cores
def test_multi_worker_processes_train_in_step_and_only_the_chief_checkpoints_the_run(tmp_path):
    from efficientnet_search.training.train import tf_config_for

    workers = [f"localhost:{port}" for port in free_ports(2)]
    procs = [subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT, str(tmp_path)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
             "TF_CONFIG": tf_config_for(workers, index)}) for index in range(2)]  # fmt: skip
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    chief, other = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert (chief["chief_task"], other["chief_task"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    assert len(chief["losses"]) == 3 and chief["losses"] == other["losses"]
    assert any((tmp_path / "supernet").glob("ckpt-3*"))  # the chief's checkpoint of the run
    assert not any((tmp_path / "supernet").glob("*scratch*"))
    assert any((tmp_path / "scratch").glob("ckpt-3*"))  # the other worker saved elsewhere
