"""Random init vs ImageNet EfficientNet-Lite0 on PneumoniaMNIST, several seeds, side by side.

    python benchmarks/finetune_pneumonia.py [--seeds 0 1 2] [--arms imagenet random] \\
        [--out_dir runs/finetune_pneumonia] [--set train.finetune_epochs=5 ...]

Each (arm, seed) runs configs/finetune/pneumoniamnist_quick.yaml (the `imagenet` arm as it
is; the `random` arm with the overrides in RANDOM_INIT: the same network trained from
scratch) in `OUT_DIR/<arm>_seed<N>`; a finished run there is read back, not retrained, so the
benchmark can be run in pieces. Prints test ROC-AUC, balanced accuracy and accuracy at the
validation-chosen threshold, best epoch and the phase it came from (`head`: fine-tuning
never beat the frozen backbone on validation) and wall and CPU time per run, then mean and standard
deviation per arm, beside the numbers MedMNIST v2 reports for PneumoniaMNIST (Yang et al.,
Scientific Data 2023, Table 3). Caveat printed with the table: our file is a class-balanced
subsample with its own 468-image test split, not the official 624-image split, so the
comparison is indicative only. The quick config's budget is 15 minutes on 2 CPU cores; on a
shared machine wall time is noisy (report `uptime` with the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from efficientnet_search.config import load_config  # noqa: E402
from efficientnet_search.medical import finetune  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "finetune" / "pneumoniamnist_quick.yaml"
BUDGET_S = 15 * 60
# The same network from scratch: no frozen phase (a random backbone has nothing to keep),
# every layer and the BN statistics trained, a higher rate and more epochs (the recipe of
# the random-init quick config before ImageNet weights were available offline).
RANDOM_INIT = ("model.init=random", "model.bn_momentum=0.9", "train.head_epochs=0",
               "train.finetune_epochs=20", "train.finetune_learning_rate=0.002",
               "train.unfreeze_blocks=-1", "train.bn_inference=false", "train.patience=6")
ARMS = {"imagenet": (), "random": RANDOM_INIT}
# MedMNIST v2, PneumoniaMNIST, official test split: (AUC, ACC).
REFERENCE = {
    "ResNet-18 (28)": (0.944, 0.854),
    "ResNet-50 (224)": (0.962, 0.884),
    "AutoKeras": (0.947, 0.878),
    "Google AutoML Vision": (0.991, 0.946),
}


def run_arm(arm: str, seed: int, out_dir: Path, overrides: list[str]) -> dict:
    """One fine-tuning run (or the finished one in its directory): the row of the table."""
    import keras

    run_dir = out_dir / f"{arm}_seed{seed}"
    finished = (run_dir / "results.json").is_file()
    config = load_config(finetune.FinetuneConfig, CONFIG,
                         [*ARMS[arm], *overrides, f"seed={seed}"])
    start, cpu_start = time.perf_counter(), time.process_time()
    result = finetune.finetune(config, run_dir, verbose=2)
    keras.backend.clear_session()
    wall_file = run_dir / "wall.json"  # build, data, training, evaluation and report
    if not finished:
        wall_file.write_text(json.dumps({"wall_s": time.perf_counter() - start,
                                         "cpu_s": time.process_time() - cpu_start}))
    timing = json.loads(wall_file.read_text()) if wall_file.is_file() \
        else {"wall_s": result.results["timing"]["train_and_eval_s"]}
    test, history = result.test, result.results["history"]
    best_epoch = result.results["best_epoch"]
    # Runs finished before results recorded best_phase: the phase of the best epoch.
    best_phase = result.results.get("best_phase") or (
        history["phase"][best_epoch - 1] if best_epoch else "?")
    return {"arm": arm, "seed": seed, "auc": test["auc"],
            "balanced_accuracy": test["balanced_accuracy"], "accuracy": test["accuracy"],
            "best_epoch": best_epoch, "best_phase": best_phase,
            "epochs": len(history["phase"]), "wall_s": timing["wall_s"],
            "cpu_s": timing.get("cpu_s", float("nan")),
            "resolution": result.results["data"]["resolution"]}


def print_table(rows: list[dict]) -> None:
    print(f"\n{'arm':<10}{'seed':>5}{'test AUC':>10}{'bal. acc':>10}{'acc':>8}"
          f"{'best/epochs':>13}{'kept phase':>12}{'wall min':>10}{'CPU min':>9}")
    for r in rows:
        print(f"{r['arm']:<10}{r['seed']:>5}{r['auc']:>10.4f}{r['balanced_accuracy']:>10.4f}"
              f"{r['accuracy']:>8.4f}{r['best_epoch']:>7}/{r['epochs']:<5}"
              f"{r['best_phase']:>12}{r['wall_s'] / 60:>10.1f}"
              f"{r.get('cpu_s', float('nan')) / 60:>9.1f}")
    print()
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        stats = {k: (np.mean([r[k] for r in mine]), np.std([r[k] for r in mine], ddof=1)
                     if len(mine) > 1 else float("nan"))
                 for k in ("auc", "balanced_accuracy", "wall_s")}
        print(f"{arm:<10} {len(mine)} seeds, {mine[0]['resolution']} px: test AUC "
              f"{stats['auc'][0]:.4f} +- {stats['auc'][1]:.4f}, balanced accuracy "
              f"{stats['balanced_accuracy'][0]:.4f} +- {stats['balanced_accuracy'][1]:.4f}, "
              f"wall {stats['wall_s'][0] / 60:.1f} +- {stats['wall_s'][1] / 60:.1f} min")
    print("CPU min: this process's user + system time over all its threads (a run paused or "
          "sharing the cores reads long in wall time, not here); nan for older runs")
    print(f"\n{'MedMNIST v2 (official split)':<30}{'AUC':>8}{'ACC':>8}")
    for name, (auc, acc) in REFERENCE.items():
        print(f"{name:<30}{auc:>8.3f}{acc:>8.3f}")
    print("note: ours is on the balanced subsample's own test split (468 images), MedMNIST's on "
          "the official split (624 images, 62.5% pneumonia); our accuracy is at the threshold "
          "chosen on validation (Youden), MedMNIST's at 0.5.")
    slow = [r for r in rows if r["arm"] == "imagenet" and r["wall_s"] > BUDGET_S]
    if slow:
        print(f"warning: {len(slow)} imagenet run(s) over the {BUDGET_S / 60:.0f}-minute budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out_dir", default=str(ROOT / "runs" / "finetune_pneumonia"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    os.chdir(ROOT)  # the config's data path is relative to the repo root
    out_dir = Path(args.out_dir).resolve()
    rows = []
    for seed in args.seeds:  # seeds outermost: a cut-short run still compares the arms
        for arm in args.arms:
            rows.append(run_arm(arm, seed, out_dir, args.set))
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
