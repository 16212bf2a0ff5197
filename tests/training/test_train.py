"""Tests for training.train (and loop.py): runs, resume, strategies, evaluate, errors.

Every run uses a tiny B0-shaped model (width 0.25, 32 px) on a learnable synthetic `.npz`,
without augmentation: the synthetic class is where its square is, and a flip moves it to
another class's cell (with `flip`, 24 steps ended at chance: val top-1 0.16-0.41).
Runs that need their own process (logical devices, TF_CONFIG, SIGKILL) go through subprocesses.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from efficientnet_search import config as config_lib
from efficientnet_search.data.synthetic import synthetic_arrays
from efficientnet_search.training import train
from tests.paths import CONFIGS, ROOT
from tests.ports import free_ports

TINY = {
    "name": "tiny",
    # B0's first two stages: every test here checks training plumbing, and each traced
    # stage costs seconds per process (the full seven stages made this file ~5 min).
    "model": {"variant": None, "width": 0.25, "depth": 0.25, "resolution": 32,
              "dropout": 0.0, "bn_momentum": 0.9,
              "blocks": ["r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25"]},
    "data": {"augment": "none", "max_val": 128, "batch_size": 32},
    "train": {"epochs": 3, "base_lr": 0.05, "warmup_epochs": 0.5, "ema_decay": 0.99},
    "strategy": "cpu", "checkpoint_every_steps": 3,
    "input_benchmark_batches": 2, "verbose": 0,
}  # fmt: skip


def _write_npz(path: Path, *, n_train=256, n_val=128, classes=4, val_label_shift=0) -> str:
    arrays = {}
    for offset, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_val))):
        images, labels = synthetic_arrays(n, num_classes=classes, channels=3, seed=offset)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels + (val_label_shift if split == "val" else 0)
    np.savez(path, **arrays)
    return f"npz:{path}"


def _config_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["data"]["source"] = _write_npz(tmp_path / "tiny.npz")
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "efficientnet_search.cli.main", *args], cwd=ROOT, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def _history(run_dir: Path) -> list[dict]:
    with (run_dir / "logs" / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_writes_run_record_and_exports_averaged_weights(tmp_path, capsys):
    config = config_lib.load_config(train.TrainConfig, _config_file(tmp_path))
    result = train.train(config, tmp_path / "run")
    run = tmp_path / "run"
    record = json.loads((run / "results.json").read_text())
    assert record["planned_steps"] == record["completed_steps"] == 3 * (256 // 32)
    assert record["resumed_from_step"] == 0
    assert {"val_top1", "val_top5", "images_per_second", "wall_seconds",
            "input_images_per_second"} <= set(record)  # fmt: skip
    assert result.val_top1 > 0.35  # 4 learnable classes, 128 images: chance is 0.25 +- 0.04
    losses = [float(row["loss"]) for row in _history(run)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert list((run / "checkpoints" / "best").glob("ckpt-*.index"))
    assert "top-1" in capsys.readouterr().out

    # The exported model holds the moving averages, not the raw weights.
    import keras
    import tensorflow as tf

    exported = keras.models.load_model(run / "model.keras", compile=False)
    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    averages = [reader.get_tensor(f"ema/{i}/.ATTRIBUTES/VARIABLE_VALUE")
                for i in range(len(exported.variables))
                if reader.has_tensor(f"ema/{i}/.ATTRIBUTES/VARIABLE_VALUE")]  # fmt: skip
    floats = [v.numpy() for v in exported.variables if "float" in str(v.dtype)]
    assert len(averages) == len(floats)
    for got, want in zip(floats, averages, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    raw = reader.get_tensor("optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE")
    assert not np.allclose(exported.trainable_variables[0].numpy(), raw)

    # `evaluate` on the validation split reproduces the run's (averaged-weight) top-1.
    capsys.readouterr()
    args = argparse.Namespace(model=str(run / "model.keras"), data=config.data.source,
                              split="val", resolution=None, batch_size=64)  # fmt: skip
    train.evaluate_main(args)
    top1 = float(re.search(r"top-1 ([0-9.]+)", capsys.readouterr().out).group(1))
    assert top1 == pytest.approx(result.val_top1, abs=1e-4)

    # Running a finished run again does not train again.
    again = train.train(config, tmp_path / "run")
    assert again == result


def test_evaluate_at_another_resolution_warns(tmp_path, capsys, caplog):
    from efficientnet_search.arch.model import build_model

    build_model(width=0.25, depth=0.25, resolution=32, num_classes=4).save(tmp_path / "m.keras")
    args = argparse.Namespace(model=str(tmp_path / "m.keras"),
                              data=_write_npz(tmp_path / "d.npz"), split="test",
                              resolution=48, batch_size=32)  # fmt: skip
    train.evaluate_main(args)
    assert "at 48 px" in capsys.readouterr().out
    assert "built for 32 px" in caplog.text


def test_killed_run_resumes_and_finishes_the_planned_steps(tmp_path):
    _kill_and_resume(tmp_path)


def _kill_and_resume(tmp_path: Path) -> tuple[Path, Path]:
    """SIGKILLs a run after its first checkpoint, re-runs the same command, checks the record."""
    config = _config_file(tmp_path, **{"train.epochs": 4})
    run = tmp_path / "run"
    first = _cli("train", "--config", str(config), "--run_dir", str(run))
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "checkpoint").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1]
        time.sleep(0.01)  # a two-stage model runs a step in milliseconds
    first.send_signal(signal.SIGKILL)
    first.wait()
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    first_seconds = tf.train.load_variable(latest, "wall_seconds/.ATTRIBUTES/VARIABLE_VALUE")
    second = _cli("train", "--config", str(config), "--run_dir", str(run))
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    record = json.loads((run / "results.json").read_text())
    assert 0 < record["resumed_from_step"] < record["planned_steps"]
    assert record["completed_steps"] == record["planned_steps"] == 4 * 8
    # The run's wall time counts the killed invocation (to its checkpoint) and the resumed one.
    with (run / "logs" / "history.csv").open() as f:
        resumed_epochs = sum(float(row["seconds"]) for row in csv.DictReader(f)
                             if int(row["step"]) > record["resumed_from_step"])
    assert first_seconds > 0 and record["wall_seconds"] >= first_seconds + resumed_epochs
    return config, run


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    # The resumed run continues exactly where the killed one stopped (model, optimizer,
    # averages, random state, input order): the same as an uninterrupted run, same seed.
    config, run = _kill_and_resume(tmp_path)
    reference = tmp_path / "reference"
    third = _cli("train", "--config", str(config), "--run_dir", str(reference))
    assert third.wait(timeout=300) == 0, third.communicate()[1]
    resumed, straight = _history(run)[-2:], _history(reference)[-2:]
    for a, b in zip(resumed, straight, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)
        assert float(a["val_top1"]) == pytest.approx(float(b["val_top1"]), abs=1e-6)


_MIRRORED_SCRIPT = """
import csv, json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from efficientnet_search import config
from efficientnet_search.training import train
from tests.paths import CONFIGS, ROOT
out = {}
for strategy, batch in (("mirrored", 16), ("cpu", 32)):
    cfg = config.load_config(train.TrainConfig, sys.argv[1],
                             [f"strategy={strategy}", f"data.batch_size={batch}"])
    result = train.train(cfg, f"{sys.argv[2]}/{strategy}")
    rows = list(csv.DictReader(open(f"{sys.argv[2]}/{strategy}/logs/history.csv")))
    out[strategy] = {"losses": [float(r["loss"]) for r in rows],
                     "replicas": result.num_replicas, "batch": result.global_batch_size}
print(json.dumps(out))
"""


def test_mirrored_over_two_cpus_trains_like_one_device(tmp_path):
    config = _config_file(tmp_path, **{"train.epochs": 2, "model.drop_connect_rate": 0.0})
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, str(config), str(tmp_path)], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    mirrored, single = runs["mirrored"], runs["cpu"]
    assert (mirrored["replicas"], mirrored["batch"]) == (2, 32)
    assert (single["replicas"], single["batch"]) == (1, 32)
    assert mirrored["losses"][-1] < mirrored["losses"][0]
    # Same global batch, same data order: the same losses up to batch-norm statistics, which
    # each replica computes on its own 16 images (a loss summed over replicas would be 2x).
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=0.25)


def test_multi_worker_two_processes_train_with_identical_losses(tmp_path):
    config = _config_file(tmp_path, **{"train.epochs": 2})
    workers = [f"localhost:{port}" for port in free_ports(2)]
    procs = [
        _cli("train", "--config", str(config), "--run_dir", str(tmp_path / "run"),
             "--strategy", "multi_worker",
             env={"TF_CONFIG": train.tf_config_for(workers, index)})
        for index in range(2)
    ]  # fmt: skip
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    losses = [re.findall(r"epoch \d+/2: loss ([0-9.]+)", err) for _, err in outputs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["strategy"] == "multi_worker" and record["num_replicas"] == 2
    assert record["completed_steps"] == record["planned_steps"] == 2 * (256 // 64)
    # Only the chief wrote the run directory.
    assert "top-1" in outputs[0][0] and "top-1" not in outputs[1][0]


def test_tfds_source_trains_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = config_lib.load_config(
        train.TrainConfig, _config_file(tmp_path),
        ["data.source=tfds:mnist", "train.epochs=1", "data.max_train=64", "data.max_val=32"],
    )
    with tfds.testing.mock_data(num_examples=120):
        result = train.train(config, tmp_path / "run")
    assert result.completed_steps == result.planned_steps == 64 // 32


def _cli_error(*args: str) -> tuple[int, str]:
    """Exit status and the error line(s) of a failing command (TF's own start-up chatter on
    stderr aside), checking that no traceback was printed."""
    proc = _cli(*args)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return proc.returncode, "\n".join(
        line for line in err.splitlines() if line.startswith("efficientnet-search"))


def test_bad_data_fails_with_one_clear_line(tmp_path):
    missing = tmp_path / "nope.npz"
    config = _config_file(tmp_path, **{"data.source": f"npz:{missing}"})
    code, err = _cli_error("train", "--config", str(config), "--run_dir", str(tmp_path / "a"))
    assert code == 2 and len(err.splitlines()) == 1 and str(missing) in err
    bad = _write_npz(tmp_path / "bad.npz", val_label_shift=7)
    config = _config_file(tmp_path, **{"data.source": bad})
    code, err = _cli_error("train", "--config", str(config), "--run_dir", str(tmp_path / "b"))
    assert code == 2 and len(err.splitlines()) == 1
    assert "bad.npz" in err and "out of range" in err


def test_empty_folder_and_corrupt_image_fail_naming_the_file(tmp_path):
    from efficientnet_search.data.splits import (
        load_splits,  # the errors train passes on as they are
    )

    (tmp_path / "empty").mkdir()
    config = config_lib.load_config(train.TrainConfig, _config_file(tmp_path),
                                    [f"data.source=folder:{tmp_path / 'empty'}"])  # fmt: skip
    with pytest.raises((ValueError, FileNotFoundError), match="empty"):
        train.train(config, tmp_path / "run_empty")
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "imgs" / label / f"{i}.png").write_bytes(_png())
    (tmp_path / "imgs" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_splits(f"folder:{tmp_path / 'imgs'}")
    config = config_lib.load_config(train.TrainConfig, _config_file(tmp_path),
                                    [f"data.source=folder:{tmp_path / 'imgs'}"])  # fmt: skip
    with pytest.raises(ValueError, match="broken.png"):
        train.train(config, tmp_path / "run_corrupt")


def _png() -> bytes:
    import tensorflow as tf

    image = tf.cast(tf.random.uniform((8, 8, 3), 0, 255), tf.uint8)
    return tf.io.encode_png(image).numpy()


def test_train_config_rejects_unknown_strategy(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="strategy"):
        config_lib.load_config(train.TrainConfig, _config_file(tmp_path), ["strategy=gpus"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "train").glob("*.yaml")),
                         ids=lambda p: p.stem)  # fmt: skip
def test_shipped_configs_load(path):
    config = config_lib.load_config(train.TrainConfig, path)
    if path.stem.startswith("b0_imagenet"):
        # The reference recipe, unchanged (Tan & Le 2019, Section 5.2).
        assert (config.model.variant, config.data.augment) == ("b0", "inception")
        r = config.train
        assert (r.base_lr, r.decay_rate, r.decay_epochs, r.warmup_epochs) == (0.016, 0.97, 2.4, 5)
        assert (r.weight_decay, r.label_smoothing, r.ema_decay) == (1e-5, 0.1, 0.9999)
        assert r.epochs == 350


@pytest.mark.slow
def test_smoke_config_runs_under_two_minutes_with_checkpoints(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("needs Fashion-MNIST: apt-get install dataset-fashion-mnist (make data)")
    started = time.monotonic()
    smoke = str(CONFIGS / "train" / "smoke.yaml")
    proc = _cli("train", "--config", smoke, "--run_dir", str(tmp_path))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - started < 120
    assert len(list((tmp_path / "checkpoints").glob("ckpt-*.index"))) >= 2


@pytest.mark.slow
def test_mixed_float16_runs_with_loss_scaling_and_float32_outputs(tmp_path):
    # The GPU precision path, exercised on CPU (float16 is emulated there: ~1 min).
    import keras

    config = config_lib.load_config(train.TrainConfig, _config_file(tmp_path),
                                    ["precision=mixed_float16", "train.epochs=1"])  # fmt: skip
    result = train.train(config, tmp_path / "run")
    assert result.precision == "mixed_float16"
    assert np.isfinite(float(_history(tmp_path / "run")[0]["loss"]))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert model.output.dtype == "float32"
