"""Slicing or masking: which channel mechanism trains the supernet faster (and scores faster).

Builds the supernet of the quick NAS space (B0's seven stages, the NAS proxy's width 0.25 and
depth 0.5, 32 px) in both modes and times sandwich steps (batch 128, random pixels) and
inference passes of the smallest and largest subnets, each after a warm-up that traces
(the first step's time, tracing included, is printed too).

    .venv/bin/python benchmarks/oneshot_modes.py [--steps 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import tensorflow as tf

from efficientnet_search.arch.blocks import B0_BLOCK_STRINGS
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, build_elastic
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import Images, SandwichTrainer, TrainConfig
from efficientnet_search.search.nas.space import SpaceConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    elastic = build_elastic(SpaceConfig(), B0_BLOCK_STRINGS, width=0.25, depth=0.5,
                            resolutions=(32,), num_classes=10, dropout=0.2)  # fmt: skip
    rng = np.random.default_rng(0)
    data = Images({32: rng.uniform(0, 255, (1024, 32, 32, 3)).astype("float32")},
                  rng.integers(0, 10, 1024))  # fmt: skip
    for mode in ("slice", "mask"):
        net = Supernet(elastic, 3, mode)
        trainer = SandwichTrainer(net, data, TrainConfig(mode=mode), 128, 0,
                                  tempfile.mkdtemp())  # fmt: skip
        start = time.perf_counter()
        trainer.run_step(0)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for n in range(1, args.steps + 1):
            trainer.run_step(n)
        step = (time.perf_counter() - start) / args.steps
        times = {}
        for name, params in (("smallest", elastic.smallest()), ("largest", elastic.largest())):
            choices = elastic.encode(elastic.blocks(params), params[RESOLUTION])
            images = data.by_resolution[32][:512]
            net.infer(images, choices)
            start = time.perf_counter()
            for _ in range(3):
                net.infer(images, choices)
            times[name] = (time.perf_counter() - start) / 3 / 512 * 1000
        print(f"{mode}: first step (traces) {first:.0f} s; sandwich step (4 subnets, batch "
              f"128) {step * 1000:.0f} ms; inference "
              f"{times['smallest']:.3f} ms/img smallest, {times['largest']:.3f} largest")


if __name__ == "__main__":
    main()
