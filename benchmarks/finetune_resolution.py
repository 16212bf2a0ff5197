"""Which input resolution (and Lite backbone) for 28 px images fine-tuned from ImageNet?
Measured, not guessed.

    python benchmarks/finetune_resolution.py [--resolutions 96 128 160 224] \
        [--variants lite0 lite1 lite2] [--data npz:PATH]

For each resolution the 28 px images are upsampled (bilinear, as the pipeline does) and:
the frozen ImageNet backbone's pooled features of every train/val/test image are computed
once (wall time), a linear head is fit on them (the quick config's phase 1: Adam 1e-3,
class weights, 30 epochs), and its validation ROC-AUC is printed (the test split chooses
nothing, so it is not looked at here); then three
phase-2 training steps (top 2 stages unfrozen, BN in inference mode, batch 64, augmented)
are timed, which with the feature time gives the cost of the whole recipe at that size.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from efficientnet_search.data import splits as data  # noqa: E402
from efficientnet_search.medical import metrics, transfer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = "npz:" + str(ROOT.parent / "shared" / "data" / "pneumoniamnist_balanced.npz")


def measure(resolution: int, splits, seed: int = 0, variant: str = "lite0") -> dict:
    """Linear-probe AUCs, feature time and phase-2 step time at one resolution."""
    keras.utils.set_random_seed(seed)
    cfg = transfer.FinetuneModelConfig(init="imagenet", variant=variant, resolution=resolution)
    model = transfer.build_finetune_model(cfg, splits.num_classes, False)
    transfer.freeze_backbone(model)
    pipes = {name: data.make_pipeline(getattr(splits, name), resolution=resolution,
                                      batch_size=64, training=False)
             for name in ("train", "val")}
    start = time.perf_counter()
    backbone, head = transfer.split_at(model, transfer.pooled_boundary(model))
    features = {name: transfer.boundary_features(backbone, pipe) for name, pipe in pipes.items()}
    feature_s = time.perf_counter() - start
    counts = np.bincount(features["train"][1].astype(int), minlength=splits.num_classes)
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    head.fit(*features["train"], batch_size=64, epochs=30, verbose=0,
             class_weight=transfer.class_weights(counts))
    x_val, y_val = features["val"]
    val_auc = metrics.roc_auc(y_val.ravel() == 1, head.predict(x_val, verbose=0)[:, 1])
    transfer.unfreeze_top_blocks(model, 2, bn_inference=True)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    train = data.make_pipeline(splits.train, resolution=resolution, batch_size=64,
                               training=True, augment="medical", seed=seed)
    batches = iter(train)
    model.train_on_batch(*next(batches))  # trace
    start = time.perf_counter()
    for _ in range(3):
        model.train_on_batch(*next(batches))
    step_s = (time.perf_counter() - start) / 3
    keras.backend.clear_session()
    return {"variant": variant, "resolution": resolution, "feature_s": feature_s,
            "step_s": step_s,
            "val_auc": val_auc,
            "epoch_s": step_s * np.ceil(splits.sizes["train"] / 64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[96, 128, 160, 224])
    parser.add_argument("--variants", nargs="+", default=["lite0"],
                        help="Lite variants with ImageNet weights (lite0, lite1, lite2)")
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()
    splits = data.load_splits(args.data, seed=0)
    print(f"{'variant':>8}{'px':>5}{'features s':>12}{'probe val AUC':>15}"
          f"{'phase-2 step s':>16}{'phase-2 epoch s':>17}", flush=True)
    for variant in args.variants:
        for resolution in args.resolutions:
            r = measure(resolution, splits, variant=variant)
            print(f"{variant:>8}{r['resolution']:>5}{r['feature_s']:>12.1f}"
                  f"{r['val_auc']:>15.4f}{r['step_s']:>16.2f}{r['epoch_s']:>17.0f}", flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: times scale "
          "with it)")


if __name__ == "__main__":
    main()
