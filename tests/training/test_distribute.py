"""Tests for efficientnet_search.training.distribute: names, precision, batch/lr scaling."""

from __future__ import annotations

import json

import pytest

from efficientnet_search.training import distribute


def _devices(monkeypatch, **found: int) -> None:
    """Makes TensorFlow report `found` devices per kind (GPU=2, ...), none of other kinds."""
    def listed(kind=None):
        return [f"/device:{kind}:{i}" for i in range(found.get(kind, 0))]

    monkeypatch.setattr(distribute.tf.config, "list_physical_devices", listed)
    monkeypatch.setattr(distribute.tf.config, "list_logical_devices", listed)


def test_auto_picks_cpu_without_accelerators_and_gpus_when_present(monkeypatch):
    for name in ("TF_CONFIG", "TPU_NAME"):
        monkeypatch.delenv(name, raising=False)
    _devices(monkeypatch)
    assert distribute.resolve_strategy_name("auto") == "cpu"
    _devices(monkeypatch, GPU=2)
    assert distribute.resolve_strategy_name("auto") == "gpu"
    assert distribute.resolve_precision("auto", "gpu") == "mixed_float16"


def test_tpu_without_a_tpu_says_how_to_name_one(monkeypatch):
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        pytest.skip("this machine has a TPU: the no-TPU message cannot show here")
    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=r"no TPU found.*--tpu NAME.*TPU_NAME"):
        distribute.make_strategy("tpu")


def test_auto_picks_tpu_when_named_and_multi_worker_from_tf_config(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert distribute.resolve_strategy_name("auto", tpu="my-tpu") == "tpu"
    cluster = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute.resolve_strategy_name("auto") == "multi_worker"


def test_unknown_strategy_is_rejected_naming_it():
    with pytest.raises(ValueError, match="'gpus'.*accepted|one of.*got 'gpus'"):
        distribute.resolve_strategy_name("gpus")


def test_bad_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.resolve_strategy_name("auto")


def test_precision_auto_follows_hardware():
    assert distribute.resolve_precision("auto", "cpu") == "float32"
    assert distribute.resolve_precision("auto", "tpu") == "mixed_bfloat16"
    assert distribute.resolve_precision("mixed_float16", "cpu") == "mixed_float16"
    with pytest.raises(ValueError, match="float8"):
        distribute.resolve_precision("float8", "cpu")


def test_batch_and_lr_scale_with_replicas():
    assert distribute.scale_batch_and_lr(32, 8) == (256, pytest.approx(0.016))
    # The paper's run: 4096 images per step -> 0.256.
    assert distribute.scale_batch_and_lr(128, 32) == (4096, pytest.approx(0.256))
    with pytest.raises(ValueError, match="per_replica_batch=0"):
        distribute.scale_batch_and_lr(0, 1)


def test_setup_cpu_is_one_chief_replica_in_float32():
    dist = distribute.setup("cpu")
    assert (dist.name, dist.num_replicas, dist.is_chief, dist.precision) == (
        "cpu", 1, True, "float32")
