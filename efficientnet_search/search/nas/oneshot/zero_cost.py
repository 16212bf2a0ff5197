"""One zero-cost proxy beside MACs and params in the calibration report: synflow.

Synflow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS; used to rank architectures at initialization by
Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS", ICLR) is
sum over parameters of |theta * dR/dtheta|, where every weight is replaced by its absolute
value, the input is all ones and R is the sum of the network's outputs (logits). It needs no
data and no labels: one forward and one backward pass of one image per architecture.

Why synflow and not NASWOT (Mellor et al. 2021): NASWOT scores the binary on/off codes of
ReLU units over a batch; our MBConv blocks use swish (SiLU), which has no such code, so
NASWOT is not well-defined for them. Synflow is defined for any differentiable network.
Abdelfattah et al. compute it without batch norm; here the network is built fresh and run
in inference mode, where each batch norm (mean 0, variance 1, scale 1, offset 0) is the
identity up to its epsilon, the same thing. It is computed in float64 (positive weights
multiply layer over layer; the reference implementation uses double precision too) and
reported as its natural logarithm (a rank correlation does not see the difference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from efficientnet_search.arch.model import ModelSpec


def synflow(spec: ModelSpec, channels: int, seed: int = 0) -> float:
    """log synflow of the network `spec` at its initialization seeded `seed` (`channels`
    input channels, the spec's resolution)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from efficientnet_search.arch.model import build_model

    keras.utils.set_random_seed(seed)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        resolution = spec.scaling.resolution
        model = build_model(spec=spec, include_preprocessing=False, classifier_activation=None,
                            input_shape=(resolution, resolution, channels))  # fmt: skip
        for variable in model.trainable_variables:
            variable.assign(tf.abs(variable))
        ones = tf.ones((1, resolution, resolution, channels), dtype=tf.float64)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.cast(model(ones, training=False), tf.float64))
        grads = tape.gradient(total, model.trainable_variables)
        value = sum(float(tf.reduce_sum(tf.abs(tf.cast(v, tf.float64) * tf.cast(g, tf.float64))))
                    for v, g in zip(model.trainable_variables, grads, strict=True)
                    if g is not None)  # fmt: skip
    finally:
        keras.config.set_dtype_policy(previous)
        keras.backend.clear_session()
    return math.log(value) if value > 0 and np.isfinite(value) else math.nan


def synflow_scores(specs: Sequence[ModelSpec], channels: int, seed: int = 0) -> list[float]:
    """log synflow of each network (one build, forward and backward each)."""
    return [synflow(spec, channels, seed) for spec in specs]
