"""Grad-CAM heatmaps (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization") for EfficientNet classifiers.

The class score's gradient with respect to a convolutional feature map is averaged over space
to weight each channel; the ReLU of the weighted channel sum, upsampled to the image, shows
where the evidence lies. The paper explains the last map (7x7 at 224 px); at the small inputs
of medical benchmarks (64 px: a 2x2 last map) that is a few blobs, so by default the deepest
map with at least 7x7 cells is used (`arch.features.gradcam_layer`), and the figure says
which. Used to show clinicians the most confident correct and wrong test predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from efficientnet_search import plotting
from efficientnet_search.arch.features import FeatureLayer, gradcam_layer


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: Sequence[int] | np.ndarray,
    layer_name: str | None = None,
) -> np.ndarray:
    """Heatmaps [n, H, W] in [0, 1] for `class_index[i]`'s score of each image.

    Args:
      model: a functional model containing `layer_name`.
      images: [n, H, W, 3] model input (pixels in [0, 255] for our models).
      class_index: one output column per image (the predicted or the true class).
      layer_name: the convolutional feature map to explain (default: `explained_layer`).
    """
    if layer_name is None:
        layer_name = explained_layer(model, np.shape(images)[1:3]).name
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


def explained_layer(model: keras.Model, image_size: Sequence[int]) -> FeatureLayer:
    """The feature map `gradcam` explains by default: the deepest with >= 7x7 cells."""
    return gradcam_layer(model, (int(image_size[0]), int(image_size[1])))


def pick_examples(labels: np.ndarray, predicted: np.ndarray, per_group: int,
                  margin: np.ndarray | None = None) -> dict[str, list]:
    """Indices of up to `per_group` correct and `per_group` wrong predictions.

    With `margin` (how decided each prediction is) the most decided of each group come
    first: confident mistakes are the ones a clinician most needs to see. Without it, in order.
    Each group takes the true classes in turn (the most decided of every class, then the
    second, ...), so a row of correct predictions shows the findings as well as the normals
    even when the normals are the more confident.
    """
    labels = np.asarray(labels).reshape(len(labels), -1)
    predicted = np.asarray(predicted).reshape(len(predicted), -1)
    right = np.all(labels == predicted, axis=1)
    order = np.arange(len(right)) if margin is None else np.argsort(-np.asarray(margin),
                                                                    kind="stable")

    def classes_in_turn(indices: np.ndarray) -> list[int]:
        seen: dict[bytes, int] = {}
        ranked = []
        for position, i in enumerate(indices):
            key = labels[i].tobytes()
            ranked.append((seen.get(key, 0), position, int(i)))
            seen[key] = seen.get(key, 0) + 1
        return [i for _, _, i in sorted(ranked)][:per_group]

    return {"correct": classes_in_turn(order[right[order]]),
            "wrong": classes_in_turn(order[~right[order]])}


def save_overlays(
    path: str | Path,
    images: np.ndarray,
    heatmaps: np.ndarray,
    titles: Sequence[str],
    *,
    layer: FeatureLayer | None = None,
    alpha: float = 0.45,
) -> Path:
    """Writes a grid: each image in gray with its heatmap (jet) on top, titled.

    `layer` (the explained feature map) is named in the figure title with its resolution.
    """
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        raise ValueError("save_overlays needs at least one image")
    cols = min(n, 4)
    rows = -(-n // cols)
    lines = max(str(t).count("\n") + 1 for t in titles)
    fig, axes = plotting.figure(rows, cols, figsize=(3 * cols, 2.8 * rows + 0.15 * lines * rows
                                                     + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, heat, title in zip(axes.ravel(), images, heatmaps, titles, strict=False):
        gray = np.asarray(image, dtype=np.float32).mean(axis=-1)
        ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    heading = "Grad-CAM (Selvaraju et al. 2017): evidence for the predicted class"
    if layer is not None:
        heading += (f"\nfeatures of {layer.describe()}, upsampled to the "
                    f"{images.shape[1]}x{images.shape[2]} px image")
    fig.suptitle(heading, fontsize=10)
    return plotting.save(fig, path)
