"""Keras' Adam, computed on all variables at once: the same numbers, a smaller graph.

Keras 3 builds Adam's update per variable: about sixteen graph operations for each of a
model's ~100-300 variables, plus the step's scalars again for each. Tracing that graph and
TensorFlow's graph optimization of it are a large part of a short trial's first step: for a
NAS-sized proxy (135 variables) on 2 CPU cores the first step took ~25 s with Keras' Adam and
~14 s with this one, while the steps after it cost the same (BUILD_NOTES.md, search
throughput; a grid trial's first step fell from 13 s to 7 s on average).

`FlatAdam` keeps the two moment vectors as one flat variable each and applies Keras' own
formula, operation by operation, to the concatenated gradients:

    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    var -= m * alpha / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)

Every operation is elementwise, so each weight gets the very float32 results that Keras' Adam
gives it (tested bit for bit). TF's fused `ResourceApplyAdam` kernel would be smaller still,
but it rounds 1 - beta differently and so changes results.

Used where a model trains from a fresh optimizer under no tf.distribute strategy (the search
proxies); under a strategy, or for variables it was not built for, it is Keras' Adam.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="efficientnet_search")
class FlatAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam with one flat moment variable each (see the module docstring);
    takes Adam's arguments (amsgrad and weight decay fall back to Adam)."""

    def build(self, var_list):
        if self.built:
            return
        self._flat = (not tf.distribute.has_strategy() and not self.amsgrad
                      and not self.weight_decay
                      and len({v.dtype for v in var_list}) == 1)  # fmt: skip
        if not self._flat:
            super().build(var_list)
            return
        super(keras.optimizers.Adam, self).build(var_list)  # iterations, learning rate
        # Identities, not the variables: a list of variables here would make them the
        # optimizer's own (Keras tracks it), and resetting its state would reset the model.
        self._flat_ids = tuple(id(_tf_variable(v)) for v in var_list)
        self._flat_shapes = [tuple(v.shape) for v in var_list]
        self._flat_sizes = [math.prod(shape) for shape in self._flat_shapes]
        total = sum(self._flat_sizes)
        self._flat_m = self.add_variable((total,), initializer="zeros", name="flat_momentum")
        self._flat_v = self.add_variable((total,), initializer="zeros", name="flat_velocity")

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        grads_and_vars = list(grads_and_vars)
        if not self._flat:
            return super()._distributed_tf_update_step(distribution, grads_and_vars,
                                                       learning_rate)  # fmt: skip
        variables = [var for _, var in grads_and_vars]
        if tuple(id(_tf_variable(v)) for v in variables) != self._flat_ids:
            raise ValueError(
                f"FlatAdam was built for {len(self._flat_ids)} variables and got gradients for "
                f"{len(variables)} others (a variable without a gradient, or trainable "
                "variables changed after the first step); use keras.optimizers.Adam there")
        dtype = variables[0].dtype
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        gradient = tf.concat([tf.reshape(ops.cast(g, dtype), [-1]) for g, _ in grads_and_vars],
                             axis=0)  # fmt: skip
        m, v = self._flat_m, self._flat_v
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v),
                                        1 - self.beta_2))  # fmt: skip
        step = ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon))
        for var, piece, shape in zip(variables, tf.split(step, self._flat_sizes),
                                     self._flat_shapes, strict=True):  # fmt: skip
            var.assign_sub(tf.reshape(piece, shape))


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable (the update step sees those)."""
    return variable.value if isinstance(variable, keras.Variable) else variable
