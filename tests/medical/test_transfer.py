"""Tests for medical.transfer: what each phase freezes really stays unchanged."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search.data.synthetic import synthetic_arrays
from efficientnet_search.medical import transfer


def _tiny_model_and_data():
    cfg = transfer.FinetuneModelConfig(width=0.1, depth=0.1, resolution=32, bn_momentum=0.5)
    model = transfer.build_finetune_model(cfg, num_classes=2, multi_label=False)
    images, labels = synthetic_arrays(64, seed=4)
    ds = tf.data.Dataset.from_tensor_slices(
        (np.repeat(images, 3, axis=-1).astype("float32"), labels)).batch(32)
    return model, ds


def _weights(model, layers):
    return {v.path: v.numpy().copy() for layer in layers for v in layer.weights}


def test_phase1_keeps_every_backbone_weight_and_trains_the_head():
    model, ds = _tiny_model_and_data()
    transfer.freeze_backbone(model)
    backbone = [la for la in model.layers if not la.name.startswith(transfer.HEAD_PREFIX)]
    before, head_before = _weights(model, backbone), _weights(model, model.layers[-1:])
    tracker = transfer.BestWeights(ds, "binary", 1)
    transfer.run_phase(model, ds, ds, epochs=2, learning_rate=1e-2, task="binary",
                       tracker=tracker, patience=5, verbose=0)
    after = _weights(model, backbone)
    assert before.keys() == after.keys() and len(before) > 50  # BN moving stats included
    for path, value in before.items():
        np.testing.assert_array_equal(value, after[path], err_msg=path)
    assert any(not np.array_equal(v, _weights(model, model.layers[-1:])[k])
               for k, v in head_before.items())


def test_phase2_unfreezes_top_blocks_only_and_keeps_bn_statistics():
    model, ds = _tiny_model_and_data()
    unfrozen = transfer.unfreeze_top_blocks(model, 1, bn_inference=True)
    last_stage = max(int(la.name[5]) for la in model.layers if la.name.startswith("block"))
    assert "top_conv" in unfrozen and "head_predictions" in unfrozen
    assert all(n.startswith((f"block{last_stage}", "top_", "head_")) for n in unfrozen)
    bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    frozen = [la for la in model.layers if la.name.startswith(("stem_", "block1"))]
    before_bn, before_frozen = _weights(model, bns), _weights(model, frozen)
    conv_before = model.get_layer("top_conv").kernel.numpy().copy()
    tracker = transfer.BestWeights(ds, "binary", 1)
    transfer.run_phase(model, ds, ds, epochs=2, learning_rate=1e-2, task="binary",
                       tracker=tracker, patience=5, verbose=0)
    for path, value in {**before_bn, **before_frozen}.items():
        np.testing.assert_array_equal(value, _weights(model, bns + frozen)[path], err_msg=path)
    assert not np.array_equal(conv_before, model.get_layer("top_conv").kernel.numpy())


def test_class_weights_and_balanced_stream_even_out_an_imbalanced_set():
    labels = np.array([0] * 90 + [1] * 10, dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((100, 4, 4, 1), np.uint8), labels))
    counts = transfer.class_counts(ds, 2)
    np.testing.assert_array_equal(counts, [90, 10])
    weights = transfer.class_weights(counts)
    assert weights[1] / weights[0] == 9.0
    assert weights[0] * 90 == weights[1] * 10 == 50.0  # each class weighs n / K in total
    drawn = np.array([y for _, y in transfer.balanced_stream(ds, 2, seed=0).take(2000)])
    assert 0.45 < drawn.mean() < 0.55


def test_start_from_a_keras_file_or_reference_weights_keeps_the_backbone(tmp_path):
    from efficientnet_search.arch.model import build_model

    source = build_model(width=0.1, depth=0.1, resolution=32, num_classes=7)
    source.save(tmp_path / "trained.keras")  # as `train`/`grid` leave it, with its own top
    kept = source.get_layer("top_conv").kernel.numpy()
    from_keras = transfer.build_finetune_model(
        transfer.FinetuneModelConfig(init="keras", path=str(tmp_path / "trained.keras")), 3, True)
    np.testing.assert_array_equal(from_keras.get_layer("top_conv").kernel.numpy(), kept)
    assert from_keras.output_shape == (None, 3)
    assert from_keras.layers[-1].get_config()["activation"] == "sigmoid"
    from_reference = transfer.build_finetune_model(transfer.FinetuneModelConfig(
        init="reference", path=str(tmp_path / "trained.keras"), width=0.1, depth=0.1,
        resolution=32), 2, False)
    np.testing.assert_array_equal(from_reference.get_layer("top_conv").kernel.numpy(), kept)
    assert transfer.model_resolution(from_reference, transfer.FinetuneModelConfig()) == 32


def test_best_weights_break_auc_ties_by_validation_loss(monkeypatch):
    model, ds = _tiny_model_and_data()

    def best_epoch(aucs, losses):
        tracker = transfer.BestWeights(ds.take(1), "binary", 1)
        tracker.set_model(model)
        values = iter(aucs)
        monkeypatch.setattr(transfer.clinical, "task_auc", lambda *args: next(values))
        for epoch, loss in enumerate(losses):
            tracker.on_epoch_end(epoch, {"val_loss": loss})
        return tracker.best_epoch

    # 0.9955 ties 0.9950 and has the lower loss; 0.9990 is better by more than noise.
    assert best_epoch([0.9950, 0.9955, 0.9990], [0.30, 0.20, 0.40]) == 3
    assert best_epoch([0.9950, 0.9955], [0.30, 0.20]) == 2
    assert best_epoch([0.9950, 0.9958], [0.20, 0.30]) == 1  # a tie with a worse loss
    assert best_epoch([0.90, 0.95], [0.20, 0.30]) == 2  # a real AUC gain beats the loss


def test_shift_class_prior_is_bayes_rule_on_the_saved_probabilities():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax",
                                 name=transfer.HEAD_PREFIX + "predictions")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    before = model.predict_on_batch(x)
    target = np.array([0.6, 0.3, 0.1])
    transfer.shift_class_prior(model, np.ones(3), target * 10)  # counts work as priors
    after = model.predict_on_batch(x)
    expected = before * target / (before * target).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert np.mean(after.argmax(1) == 0) > np.mean(before.argmax(1) == 0)


def test_head_model_on_pooled_features_equals_the_whole_model():
    model, ds = _tiny_model_and_data()
    backbone, head = transfer.split_at(model, transfer.pooled_boundary(model))
    features, labels = transfer.boundary_features(backbone, ds)
    assert features.shape == (64, model.get_layer(transfer.HEAD_PREFIX + "pool").output.shape[-1])
    whole = np.concatenate([model.predict_on_batch(x) for x, _ in ds])
    np.testing.assert_allclose(head.predict_on_batch(features), whole, rtol=1e-4, atol=1e-5)
    assert {v.path for v in head.weights} <= {v.path for v in model.weights}  # shared


def test_the_cut_below_the_unfrozen_stages_leaves_every_trainable_weight_on_top():
    model, ds = _tiny_model_and_data()
    transfer.freeze_backbone(model)
    assert transfer.trainable_boundary(model) is not None  # the head: the pooled features
    unfrozen = transfer.unfreeze_top_blocks(model, 2, bn_inference=True)
    boundary = transfer.trainable_boundary(model)
    bottom, top = transfer.split_at(model, boundary)
    assert not bottom.trainable_weights
    assert {v.path for v in top.trainable_weights} == {v.path for v in model.trainable_weights}
    assert unfrozen[0] == top.layers[1].name  # the cut is right below the lowest unfrozen stage
    features, _ = transfer.boundary_features(bottom, ds)
    whole = np.concatenate([model.predict_on_batch(x) for x, _ in ds])
    np.testing.assert_allclose(top.predict_on_batch(features), whole, rtol=1e-4, atol=1e-5)
    transfer.unfreeze_top_blocks(model, -1)
    assert transfer.trainable_boundary(model) is None  # nothing frozen: nothing to cache


def test_a_cut_that_a_skip_connection_crosses_is_refused():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, name="low")(inputs)
    mid = keras.layers.Dense(8, name="mid")(hidden)
    outputs = keras.layers.Add()([mid, hidden])  # `hidden` skips over the cut at `mid`
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="cannot cut the model at"):
        transfer.split_at(model, mid)
    bottom, top = transfer.split_at(model, hidden)  # below the skip's start: fine
    x = np.ones((2, 8), "float32")
    np.testing.assert_allclose(top.predict_on_batch(bottom.predict_on_batch(x)),
                               model.predict_on_batch(x), rtol=1e-6)


def test_predict_split_scores_a_partial_last_batch_without_tracing_again():
    inputs = keras.Input((3,))
    normalized = keras.layers.BatchNormalization()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(normalized))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(5))).batch(2)  # batches of 2, 2, 1
    labels, scores = transfer.predict_split(model, ds)
    assert model.predict_function.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(labels, np.arange(5))
    np.testing.assert_allclose(scores, model(x, training=False).numpy(), atol=1e-6)
