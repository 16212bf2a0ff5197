"""Memory kept per trial in one process, with and without purging custom-gradient entries.

Trains `--trials` distinct candidates of the quick grid's proxy (B0-shaped, width 0.25, depth
0.25, 32 px; a few steps each on synthetic data: what a trial keeps depends on its traced
graphs, not on its step count) one after another in one process, releasing memory after each
as the grid's workers do, and prints resident memory and the traced graphs still alive after
each trial. Two fresh processes: `clear_session` + gc only (TensorFlow's registry keeps every
trial's graphs), then `training.graph_memory.release_graph_memory` (purged). Not a test.

    python benchmarks/graph_memory.py               # 6 trials each
    python benchmarks/graph_memory.py --trials 10
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Distinct (alpha, beta, gamma) of the quick grid's range: each trial builds a new network.
CANDIDATES = [(1.0, 1.0, 1.0), (1.2, 1.1, 1.15), (2.0, 1.0, 1.0), (1.0, 1.4, 1.0),
              (1.0, 1.0, 1.2), (1.4, 1.2, 1.0), (1.1, 1.3, 1.1), (1.6, 1.1, 1.05),
              (1.3, 1.0, 1.2), (1.0, 1.2, 1.25)]


def child(trials: int, purge: bool) -> None:
    from tensorflow.python.framework import func_graph

    from efficientnet_search import data
    from efficientnet_search.config import load_config
    from efficientnet_search.data.config import DataConfig
    from efficientnet_search.search.grid.config import GridConfig
    from efficientnet_search.search.proxy import trainer
    from efficientnet_search.training import graph_memory

    if not purge:
        graph_memory.purge_custom_gradients = lambda: 0
    config = load_config(GridConfig, ROOT / "configs/grid/fashion_mnist_quick.yaml",
                         ["proxy.epochs=1", "proxy.steps_per_epoch=8"])
    splits = data.synthetic_splits(num_classes=10, image_size=32, n_train=512, n_val=256,
                                   n_test=8, seed=0)
    batch = DataConfig(source="synthetic", batch_size=64)
    label = "purged" if purge else "clear_session + gc"
    first = None
    for i, (alpha, beta, gamma) in enumerate(CANDIDATES[:trials]):
        trainer.train_proxy(config.proxy, splits, alpha=alpha, beta=beta, gamma=gamma, seed=i,
                            data=batch)  # releases memory before returning
        rss = trainer.current_rss_mb()
        first = first or rss
        graphs = sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())
        print(f"{label:>19}  {i + 1:>5}  {rss:>7.0f}  {100 * (rss / first - 1):>+9.1f}%  "
              f"{graphs:>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trials, args.child == "on")
        return
    print(f"load average {os.getloadavg()[0]:.2f}; RSS after each trial (MiB), growth over "
          "the first trial's, traced graphs alive")
    print(f"{'release':>19}  {'trial':>5}  {'RSS MiB':>7}  {'growth':>10}  {'graphs':>6}")
    for mode in ("off", "on"):
        subprocess.run([sys.executable, __file__, "--trials", str(args.trials), "--child",
                        mode], check=True)


if __name__ == "__main__":
    main()
