"""Graph vs eager for short proxy trainings: where `trainer.EAGER_BELOW_STEPS` should sit.

Times `train_proxy` (build, fit, validation) on synthetic data for each step count, once with
every training traced (graph) and once eagerly, alternating in one process so both see the
same machine load; best of `--rounds`. Not a test.

    python benchmarks/eager_short_trainings.py                    # 4, 12 and 24 steps
    python benchmarks/eager_short_trainings.py --steps 8 16 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from efficientnet_search import data  # noqa: E402
from efficientnet_search.data.config import DataConfig  # noqa: E402
from efficientnet_search.search.proxy import trainer  # noqa: E402
from efficientnet_search.search.proxy.config import ProxyConfig  # noqa: E402

# B0's first two stages at 32 px: the tiny proxy of the notebooks' CI settings.
BLOCKS = ("r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25")
SHIPPED = trainer.EAGER_BELOW_STEPS


def seconds(steps: int, eager: bool, splits, batch: DataConfig) -> float:
    trainer.EAGER_BELOW_STEPS = steps + 1 if eager else 0
    config = ProxyConfig(blocks=BLOCKS, base_resolution=32, epochs=1, steps_per_epoch=steps)
    tic = time.perf_counter()
    trainer.train_proxy(config, splits, alpha=1.0, beta=1.0, gamma=1.0, seed=0, data=batch)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 12, 24])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    splits = data.synthetic_splits(num_classes=3, image_size=32, n_train=192, n_val=64,
                                   n_test=8, seed=0)
    batch = DataConfig(source="synthetic", batch_size=32)
    seconds(2, False, splits, batch)  # warm-up: imports and first-use costs
    print(f"load average {os.getloadavg()[0]:.2f}, current EAGER_BELOW_STEPS "
          f"{SHIPPED}")
    print(f"{'steps':>5}  {'graph s':>8}  {'eager s':>8}  faster")
    for steps in args.steps:
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for eager in (False, True):
                best[eager] = min(best[eager], seconds(steps, eager, splits, batch))
        faster = "eager" if best[True] < best[False] else "graph"
        print(f"{steps:>5}  {best[False]:8.2f}  {best[True]:8.2f}  {faster}", flush=True)


if __name__ == "__main__":
    main()
