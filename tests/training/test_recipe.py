"""Tests for efficientnet_search.training.recipe: schedule, weight decay, EMA, optimizer."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from efficientnet_search.arch.model import build_model
from efficientnet_search.training import recipe


def _tiny_model() -> keras.Model:
    return build_model(width=0.1, depth=0.1, resolution=32, num_classes=3, dropout=0.0)


@pytest.mark.parametrize("step", [0, 10, 49, 50, 119, 120, 239, 240, 1000])
def test_exponential_schedule_matches_reference_formula(step):
    # 10 steps per epoch, 5 warm-up epochs, x0.97 every 2.4 epochs (24 steps), peak 0.128.
    cfg = recipe.RecipeConfig()
    schedule = recipe.make_schedule(cfg, peak_lr=0.128, steps_per_epoch=10, total_steps=3500)
    expected = 0.128 * 0.97 ** math.floor(step / 24) if step >= 50 else 0.128 * step / 50
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("step", [0, 20, 50, 700, 1400])
def test_cosine_schedule_matches_formula(step):
    cfg = recipe.RecipeConfig(schedule="cosine", warmup_epochs=1.0)
    schedule = recipe.make_schedule(cfg, peak_lr=0.1, steps_per_epoch=40, total_steps=1400)
    expected = 0.1 * step / 40 if step < 40 else 0.05 * (1 + math.cos(math.pi * step / 1400))
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_schedule_survives_serialization():
    schedule = recipe.EfficientNetSchedule(0.2, warmup_steps=3, decay_steps=7, total_steps=50)
    clone = recipe.EfficientNetSchedule.from_config(schedule.get_config())
    assert [float(clone(s)) for s in (1, 9, 30)] == [float(schedule(s)) for s in (1, 9, 30)]


def test_weight_decay_skips_batch_norm_and_biases():
    model = _tiny_model()
    decayed = {v.path for v in recipe.decay_variables(model)}
    bn_paths = {
        v.path for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.trainable_variables
    }
    assert bn_paths and not decayed & bn_paths
    assert not any(p.endswith("/bias") for p in decayed)
    assert {"stem_conv/kernel", "block1a_dwconv/kernel", "predictions/kernel"} <= decayed


def test_l2_penalty_is_half_sum_of_squares_times_decay():
    variables = [keras.Variable(np.full((2, 2), 2.0, "float32")), keras.Variable([3.0])]
    assert float(recipe.l2_penalty(variables, 1e-2)) == pytest.approx(1e-2 * (16 + 9) / 2)


def test_ema_follows_reference_decay_and_swaps_weights_back():
    model = _tiny_model()
    ema = recipe.ExponentialMovingAverage(model, decay=0.9999)
    kernel = model.get_layer("stem_conv").kernel
    start = kernel.numpy().copy()
    kernel.assign(start + 1.0)
    ema.update(step=0)  # warm-up decay min(0.9999, 1/10) = 0.1
    index = [v.path for v in ema.variables].index("stem_conv/kernel")
    np.testing.assert_allclose(ema.averages[index].numpy(), start + 0.9, rtol=1e-6)
    with ema.average_weights():
        np.testing.assert_allclose(kernel.numpy(), start + 0.9, rtol=1e-6)
    np.testing.assert_allclose(kernel.numpy(), start + 1.0)
    # Batch-norm moving statistics are averaged too, as in the reference.
    assert "stem_bn/moving_variance" in {v.path for v in ema.variables}


def test_rmsprop_starts_like_tf1_accumulator_at_one():
    var = keras.Variable(np.zeros(3, "float32"))
    opt = recipe.make_optimizer(recipe.RecipeConfig(momentum=0.0), 0.1)
    opt.apply([keras.ops.convert_to_tensor(np.ones(3, "float32"))], [var])
    # ms = 0.9 * 1 + 0.1 * 1 = 1 -> step = lr * g / sqrt(1 + eps); Keras' default would be ~3x.
    np.testing.assert_allclose(var.numpy(), -0.1 / math.sqrt(1.001), rtol=1e-5)


def test_mixed_float16_wraps_in_loss_scale_optimizer():
    opt = recipe.make_optimizer(recipe.RecipeConfig(), 0.1, precision="mixed_float16")
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)


def test_regularization_follows_variant_table():
    assert recipe.regularization_for("b0") == (0.2, 0.2)
    assert recipe.regularization_for("b7") == (0.5, 0.2)


@pytest.mark.parametrize("field,value", [("ema_decay", 1.0), ("base_lr", 0.0),
                                         ("label_smoothing", -0.1)])
def test_recipe_config_rejects_bad_values_naming_them(field, value):
    with pytest.raises(ValueError, match=f"train.{field}"):
        recipe.RecipeConfig(**{field: value})
