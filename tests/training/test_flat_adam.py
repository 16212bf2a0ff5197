"""FlatAdam: Keras' Adam to the bit, with a graph a fraction of the size."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet_search.training.flat_adam import FlatAdam


def _model() -> keras.Model:
    """Variables of every shape an EfficientNet has (conv, depthwise, BN, dense), traced in
    a second or two rather than a whole network's twenty."""
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("swish"),
        keras.layers.DepthwiseConv2D(3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(4, activation="softmax"),
    ])


def _trained(optimizer: keras.optimizers.Optimizer, steps: int = 6) -> keras.Model:
    model = _model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (steps * 8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 4, steps * 8)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


def test_every_weight_and_moment_equals_keras_adam_bit_for_bit():
    keras_adam = _trained(keras.optimizers.Adam(3e-3))
    flat_adam = _trained(FlatAdam(3e-3))
    assert flat_adam.optimizer._flat  # the flat path ran, not Keras' own
    pairs = list(zip(keras_adam.weights, flat_adam.weights, strict=True))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)
    untrained = _model().weights
    assert not np.array_equal(flat_adam.weights[0].numpy(), untrained[0].numpy())  # it trained
    moments = np.concatenate([m.numpy().ravel() for m in keras_adam.optimizer._momentums])
    assert np.array_equal(moments, flat_adam.optimizer._flat_m.numpy())
    assert int(flat_adam.optimizer.iterations) == int(keras_adam.optimizer.iterations) == 6
    # Its state is its own four variables: resetting it (search.reuse_models) must not reset
    # the model's weights.
    assert len(flat_adam.optimizer.variables) == 4


def test_the_update_graph_is_a_fraction_of_keras_adams():
    def update_ops(optimizer) -> int:
        variables = [keras.Variable(np.ones((3, 3), "float32")) for _ in range(40)]
        optimizer.build(variables)

        @tf.function
        def step():
            optimizer.apply([tf.ones((3, 3))] * 40, variables)

        return len(step.get_concrete_function().graph.get_operations())

    assert update_ops(FlatAdam(1e-3)) < 0.5 * update_ops(keras.optimizers.Adam(1e-3))


def test_under_a_distribution_strategy_it_is_keras_adam():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        optimizer = FlatAdam(1e-3)
        optimizer.build([keras.Variable(np.ones(3, "float32"))])
    assert not optimizer._flat and len(optimizer._momentums) == 1


def test_gradients_for_other_variables_are_refused_with_the_fix():
    optimizer = FlatAdam(1e-3)
    built = [keras.Variable(np.ones(3, "float32")) for _ in range(2)]
    optimizer.build(built)
    with pytest.raises(ValueError, match="built for 2 variables and got gradients for 1"):
        optimizer.apply([tf.ones(3)], built[:1])
