"""Progressive learning against fixed-size training, same epochs, several seeds (not a test).

EfficientNetV2 (Tan & Le 2021, Section 4) trains early epochs on small images with weak
regularization and reports the same accuracy in less time. This runs the train command's
quick Fashion-MNIST config twice per seed, in one process and alternating: once at the fixed
final size, once with the `progressive:` section given here, and prints final validation
top-1 and wall time per run, then the mean +- std per arm and the paired difference.

    python benchmarks/progressive.py                                  # seeds 0 1 2
    python benchmarks/progressive.py --seeds 0 --max_train 2000 --epochs 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from efficientnet_search import config as config_lib  # noqa: E402
from efficientnet_search.tables import format_table  # noqa: E402
from efficientnet_search.training import train  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +- {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIGS / "train" / "fashion_mnist_quick.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max_train", type=int, default=6000)
    parser.add_argument("--max_val", type=int, default=3000)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--min_resolution", type=int, default=16)
    parser.add_argument("--min_dropout", type=float, default=0.1)
    args = parser.parse_args()
    common = [f"train.epochs={args.epochs}", f"data.max_train={args.max_train}",
              f"data.max_val={args.max_val}", "verbose=0"]
    arms = {
        "fixed": [],
        "progressive": [f"progressive.stages={args.stages}",
                        f"progressive.min_resolution={args.min_resolution}",
                        f"progressive.min_dropout={args.min_dropout}"],
    }
    rows, results = [], {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm, extra in arms.items():
                config = config_lib.load_config(train.TrainConfig, args.config,
                                                [*common, f"seed={seed}", *extra])
                result = train.train(config, Path(tmp) / f"{arm}_{seed}")
                results[arm].append(result)
                rows.append([seed, arm, f"{result.val_top1:.4f}", f"{result.wall_seconds:.1f}",
                             f"{os.getloadavg()[0]:.2f}"])
                print(format_table(["seed", "arm", "val top-1", "wall s", "load"], rows[-1:]),
                      flush=True)
    print(format_table(["seed", "arm", "val top-1", "wall s", "load"], rows))
    summary = [[arm, _mean_std([r.val_top1 for r in rs]),
                f"{statistics.mean(r.wall_seconds for r in rs):.1f}"]
               for arm, rs in results.items()]
    print(format_table(["arm", "val top-1 mean +- std", "mean wall s"], summary))
    gaps = [p.val_top1 - f.val_top1 for p, f in zip(results["progressive"], results["fixed"],
                                                    strict=True)]
    ratio = (sum(r.wall_seconds for r in results["progressive"])
             / sum(r.wall_seconds for r in results["fixed"]))
    print(f"progressive - fixed, paired by seed: {_mean_std(gaps)} top-1; wall time x{ratio:.2f}")


if __name__ == "__main__":
    main()
