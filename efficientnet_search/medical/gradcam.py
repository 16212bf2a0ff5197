"""Grad-CAM heatmaps (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization") for EfficientNet classifiers.

The class score's gradient with respect to the last convolutional feature map
(`top_activation`, the reference's layer name) is averaged over space to weight each channel;
the ReLU of the weighted channel sum, upsampled to the image, shows where the evidence lies.
Used to show clinicians the most confident correct and wrong test predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

DEFAULT_LAYER = "top_activation"


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: Sequence[int] | np.ndarray,
    layer_name: str = DEFAULT_LAYER,
) -> np.ndarray:
    """Heatmaps [n, H, W] in [0, 1] for `class_index[i]`'s score of each image.

    Args:
      model: a functional model containing `layer_name`.
      images: [n, H, W, 3] model input (pixels in [0, 255] for our models).
      class_index: one output column per image (the predicted or the true class).
      layer_name: the convolutional feature map to explain.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"layer_name {layer_name!r} not in model; its last layers: {names[-5:]}")
    probe = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[0]])
    images = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        features, scores = probe(images, training=False)
        picked = tf.gather(scores, tf.constant(np.asarray(class_index), tf.int32), batch_dims=1)
    grads = tape.gradient(picked, features)
    channel_weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)


def pick_examples(labels: np.ndarray, predicted: np.ndarray, per_group: int,
                  margin: np.ndarray | None = None) -> dict[str, list]:
    """Indices of up to `per_group` correct and `per_group` wrong predictions.

    With `margin` (how decided each prediction is) the most decided of each group come
    first: confident mistakes are the ones a clinician most needs to see. Without it, in order.
    """
    labels = np.asarray(labels).reshape(len(labels), -1)
    predicted = np.asarray(predicted).reshape(len(predicted), -1)
    right = np.all(labels == predicted, axis=1)
    order = np.arange(len(right)) if margin is None else np.argsort(-np.asarray(margin),
                                                                    kind="stable")
    return {"correct": order[right[order]][:per_group].tolist(),
            "wrong": order[~right[order]][:per_group].tolist()}


def save_overlays(
    path: str | Path,
    images: np.ndarray,
    heatmaps: np.ndarray,
    titles: Sequence[str],
    *,
    alpha: float = 0.45,
) -> Path:
    """Writes a grid: each image in gray with its heatmap (jet) on top, titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("save_overlays needs at least one image")
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, heat, title in zip(axes.ravel(), images, heatmaps, titles, strict=False):
        gray = np.asarray(image, dtype=np.float32).mean(axis=-1)
        ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    fig.suptitle("Grad-CAM (Selvaraju et al. 2017): evidence for the predicted class")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
