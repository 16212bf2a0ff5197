"""A fine-tuning config on any MedMNIST-layout .npz, over seeds, beside MedMNIST v2's figures.

    python benchmarks/medmnist.py NPZ [--dataset breastmnist] [--seeds 0 1 2] \\
        [--config configs/finetune/pneumoniamnist_quick.yaml] [--out_dir runs/medmnist] \\
        [--set train.cv=never ...]

Each seed runs the config with `data.source=npz:NPZ` in `OUT_DIR/<name>_seed<N>` (a finished
run there is read back, a killed one resumes). Prints per seed the test ROC-AUC, the argmax /
p=0.5 accuracy (what MedMNIST reports as ACC), the headline accuracy at the config's operating
threshold, the majority-class share (a headline accuracy below it is flagged), what
cross-validation chose and the wall time; then mean +- standard deviation, and the published
rows for the data set (benchmarks/medmnist_published.py; the name comes from the file name or
--dataset). Comparable with the published rows only on the official splits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.medmnist_published import published_for  # noqa: E402
from efficientnet_search.config import load_config  # noqa: E402
from efficientnet_search.medical import finetune  # noqa: E402

CONFIG = ROOT / "configs" / "finetune" / "pneumoniamnist_quick.yaml"


def run_seed(npz: Path, name: str, seed: int, args) -> dict:
    """One run (or the finished one in its directory): a row of the table."""
    import keras

    run_dir = Path(args.out_dir).resolve() / f"{name}_seed{seed}"
    config = load_config(finetune.FinetuneConfig, args.config,
                         [f"data.source=npz:{npz}", *args.set, f"seed={seed}"])
    started = time.perf_counter()
    result = finetune.finetune(config, run_dir, verbose=0)
    keras.backend.clear_session()
    r, test = result.results, result.test
    argmax = (r.get("test_at_0.5") or test)["accuracy"]
    recipe = (r.get("cv") or {}).get("recipe")
    return {"seed": seed, "auc": test["auc"], "argmax_accuracy": argmax,
            "accuracy": test["accuracy"], "balanced_accuracy": test["balanced_accuracy"],
            "majority_share": test.get("majority_class_share", float("nan")),
            "flagged": bool(r.get("flags")), "threshold": r["threshold"]["method"],
            "model": f"{r['config']['model']['variant']}@{r['data']['resolution']}"
                     + (" (CV)" if recipe else ""),
            "best_phase": r.get("best_phase"), "wall_s": time.perf_counter() - started}


def print_table(name: str, rows: list[dict]) -> None:
    print(f"\n{name}: {'seed':>4}{'AUC':>8}{'argmax acc':>12}{'headline acc':>14}"
          f"{'majority':>10}{'threshold':>12}  {'model':<18}{'kept':>9}{'wall min':>9}")
    for r in rows:
        flag = " BELOW" if r["flagged"] else ""
        print(f"{'':<{len(name) + 2}}{r['seed']:>4}{r['auc']:>8.4f}{r['argmax_accuracy']:>12.4f}"
              f"{r['accuracy']:>14.4f}{r['majority_share']:>10.4f}{r['threshold']:>12}  "
              f"{r['model']:<18}{r['best_phase'] or '-':>9}{r['wall_s'] / 60:>9.1f}{flag}")
    for key, label in (("auc", "test AUC"), ("argmax_accuracy", "argmax accuracy"),
                       ("accuracy", "headline accuracy")):
        values = [r[key] for r in rows]
        sd = np.std(values, ddof=1) if len(values) > 1 else float("nan")
        print(f"  {label}: {np.mean(values):.4f} +- {sd:.4f} over {len(values)} seed(s)")
    published = published_for(name)
    if published:
        print(f"\n  MedMNIST v2, Table 3 (official test split){'AUC':>10}{'ACC':>8}")
        for method, (auc, acc) in published.items():
            print(f"  {method:<42}{auc:>10.3f}{acc:>8.3f}")
    else:
        print(f"\n  no published MedMNIST v2 figures kept for {name!r} "
              "(benchmarks/medmnist_published.py)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npz", help="a MedMNIST-layout .npz (train/val/test images and labels)")
    parser.add_argument("--dataset", help="MedMNIST name for the published rows (default: the "
                                          "file name, e.g. breastmnist)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--out_dir", default=str(ROOT / "runs" / "medmnist"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    npz = Path(args.npz).resolve()
    if not npz.is_file():
        parser.error(f"no such file: {str(npz)!r}; give a MedMNIST-layout .npz "
                     "(official files: https://zenodo.org/records/10519652)")
    name = args.dataset or npz.stem
    os.chdir(ROOT)
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(npz, name, seed, args))
        print(json.dumps(rows[-1]), flush=True)
    print_table(name, rows)


if __name__ == "__main__":
    main()
