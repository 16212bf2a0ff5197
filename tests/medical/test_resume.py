"""Tests for medical.resume through finetune: a killed run, rerun, ends as an uninterrupted
one (same seed, deterministic on one machine) without repeating finished epochs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search.config import ConfigError, load_config
from efficientnet_search.medical import finetune, resume, transfer
from tests.medical.test_finetune import SMOKE, TINY, _npz

# Phase 1 on cached pooled features, phase 2 on freshly augmented images (the quick config's
# shape), early stopping off (patience above the epochs) so every epoch runs.
RECIPE = ["train.head_epochs=2", "train.head_augment=false", "train.head_learning_rate=0.01",
          "train.finetune_epochs=3", "train.unfreeze_blocks=1", "train.bn_inference=true",
          "train.finetune_learning_rate=0.003", "train.patience=5", "data.max_train=96",
          "eval.gradcam_images=0", "eval.bootstrap_resamples=20"]


class Killed(RuntimeError):
    pass


def _config(data, *extra):
    return load_config(finetune.FinetuneConfig, SMOKE,
                       [f"data.source=npz:{data}", *TINY, *RECIPE, *extra])


def _kill_after(monkeypatch, saves: int) -> None:
    """Raises right after the `saves`-th checkpoint, as a kill between two epochs would."""
    original = resume.Checkpoints.save
    count = [0]

    def save(self, *args, **kwargs):
        state = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == saves:
            raise Killed(f"killed after checkpoint {saves}")
        return state

    monkeypatch.setattr(resume.Checkpoints, "save", save)


def _count_fits(monkeypatch) -> list[int]:
    calls = []
    original = keras.Model.fit

    def fit(model, *args, **kwargs):
        calls.append(kwargs["initial_epoch"])
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    data = _npz(tmp / "binary.npz")
    result = finetune.finetune(_config(data), tmp / "whole", verbose=0)
    return data, result


@pytest.mark.slow  # three short fine-tunings, ~60 s on 2 cores
@pytest.mark.parametrize("saves, phase, done", [(1, "head", 1), (4, "finetune", 2)])
def test_a_killed_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(
        uninterrupted, tmp_path, monkeypatch, caplog, saves, phase, done):
    data, whole = uninterrupted
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        _kill_after(patch, saves)
        with pytest.raises(Killed):
            finetune.finetune(_config(data), run_dir, verbose=0)
    assert not (run_dir / "results.json").exists()
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["epochs_done"]) == (phase, done)

    # A changed setting on the same run directory is refused, naming the key and the fix.
    with pytest.raises(ConfigError, match=r"changed: train.patience\).*another --run_dir"):
        finetune.finetune(_config(data, "train.patience=4"), run_dir, verbose=0)

    fits = _count_fits(monkeypatch)
    with caplog.at_level("WARNING"):
        again = finetune.finetune(_config(data), run_dir, verbose=0)
    assert f"phase {phase} at epoch {done + 1}" in caplog.text
    # Only the epochs after the kill ran: phase-relative initial epochs.
    assert fits == ([1] if phase == "head" else []) + [e for e in range(3)
                                                      if phase == "head" or e >= done]
    assert again.results["history"]["phase"] == ["head"] * 2 + ["finetune"] * 3
    assert again.results["history"]["loss"] == pytest.approx(whole.results["history"]["loss"])
    assert again.test["auc"] == pytest.approx(whole.test["auc"])
    a = np.load(run_dir / "predictions.npz")["s_test"]
    b = np.load(whole.run_dir / "predictions.npz")["s_test"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not (run_dir / "checkpoints").exists()  # finished: the checkpoints are removed
    fits.clear()
    with caplog.at_level("WARNING"):
        finetune.finetune(_config(data), run_dir, verbose=0)
    assert fits == [] and "holds a finished run" in caplog.text  # not retrained


def test_the_epoch_loop_resumed_after_a_kill_gives_the_uninterrupted_weights(tmp_path):
    """run_epochs alone on a small dense model: kill after epoch 2 of 4, continue."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=64) > 0).astype("int32")
    val = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(16)

    def plan(epoch):
        seed = resume.epoch_seed(0, "finetune", epoch)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=seed).batch(16)
        return resume.EpochPlan(ds)

    def train(folder, epochs, kill_at=None):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dropout(0.3),
                                  keras.layers.Dense(2, activation="softmax")])
        transfer.compile_phase(model, 0.05, "binary")
        tracker = transfer.BestWeights(val, "binary", 1)
        checkpoints = resume.Checkpoints(folder, model)
        saved = checkpoints.load()
        if saved is not None:
            checkpoints.restore(saved, tracker, optimizer=model.optimizer)
        history = resume.run_epochs(
            model, plan, val, phase="finetune", epochs=epochs,
            history=saved.history if saved else {}, tracker=tracker, patience=9,
            checkpoints=checkpoints, resume=saved, verbose=0)
        return model, history, tracker

    whole, history, tracker = train(tmp_path / "a", 4)
    train(tmp_path / "b", 2)  # "killed" after epoch 2: its state says 2 epochs done
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert (state["epochs_done"], state["phase_done"]) == (2, True)
    state["phase_done"] = False  # the same run asked for 4 epochs
    (tmp_path / "b" / "state.json").write_text(json.dumps(state))
    resumed, history_b, tracker_b = train(tmp_path / "b", 4)
    assert history_b["loss"] == history["loss"] and len(history["loss"]) == 4
    assert history_b["phase"] == ["finetune"] * 4
    assert tracker_b.best_epoch == tracker.best_epoch
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(whole.optimizer.variables, resumed.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
