"""What a one-shot run and each of its scoring workers set up alike: the tf.distribute
strategy (`oneshot.train.strategy`), the data as arrays at every resolution, the elastic
space, the supernet (restored from RUN/supernet/ when trained), its trainer, and the scorer
with its fixed recalibration and validation subsets.

Every choice here depends only on the config (seeded), so a worker process that prepares
the same config and run directory scores a subnet exactly as the run itself would.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from efficientnet_search.search.nas.oneshot.config import OneShotConfig
from efficientnet_search.search.nas.oneshot.elastic import ElasticSpace, build_elastic


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One process's view of a one-shot run."""

    splits: Any
    elastic: ElasticSpace
    net: Any  # supernet.Supernet
    trainer: Any  # train.SandwichTrainer (restored from the run's checkpoint, if any)
    scorer: Any  # scoring.Scorer
    is_chief: bool = True  # False: a multi-worker strategy's other worker (trains only)


def prepare(config: OneShotConfig, run_dir: str | Path) -> Prepared:
    """Loads the data and builds the supernet, trainer and scorer of `config` in `run_dir`."""
    from efficientnet_search import data as data_lib
    from efficientnet_search.search.nas.oneshot import replicas
    from efficientnet_search.search.nas.oneshot.scoring import Scorer
    from efficientnet_search.search.nas.oneshot.supernet import Supernet
    from efficientnet_search.search.nas.oneshot.train import SandwichTrainer

    run_dir, section = Path(run_dir), config.oneshot
    dist = replicas.distribution_for(section.train.strategy)  # before data touches devices
    strategy = dist.strategy
    splits = data_lib.load(config.data, seed=section.seed)
    elastic = build_elastic(config.space, config.proxy.blocks, width=config.proxy.base_width,
                            depth=config.proxy.base_depth, resolutions=config.resolutions,
                            num_classes=splits.num_classes,
                            dropout=config.proxy.dropout)  # fmt: skip
    train = images(splits.train, elastic.resolutions)
    val = images(splits.val, elastic.resolutions)
    with strategy.scope():
        net = Supernet(elastic, channels=train.by_resolution[elastic.resolutions[0]].shape[-1],
                       mode=section.train.mode, seed=section.seed)  # fmt: skip
    trainer = SandwichTrainer(net, train, section.train, config.data.batch_size, section.seed,
                              run_dir / "supernet", strategy,
                              None if dist.is_chief else tempfile.mkdtemp(prefix="oneshot_"))
    calib = np.sort(np.random.default_rng(section.seed).permutation(len(train))[
        :section.recalibration_images])
    scorer = Scorer(net, subset(train, calib), subset(val, slice(0, section.score_images)),
                    run_dir / "scored.csv")  # fmt: skip
    return Prepared(splits, elastic, net, trainer, scorer, dist.is_chief)


def subset(split, index):
    """The images and labels of `split` at `index` (every resolution)."""
    return dataclasses.replace(split, labels=split.labels[index], by_resolution={
        r: a[index] for r, a in split.by_resolution.items()})  # fmt: skip


def images(ds, resolutions):
    """A split as arrays at every resolution (the same images, resized by the pipeline)."""
    from efficientnet_search import data as data_lib
    from efficientnet_search.search.nas.oneshot.train import Images

    by_resolution, labels = {}, None
    for r in resolutions:
        pipeline = data_lib.make_pipeline(ds, resolution=r, batch_size=1000, training=False,
                                          cache=False)  # fmt: skip
        arrays, labels = data_lib.dataset_to_numpy(pipeline)
        by_resolution[r] = arrays.astype(np.float32)
    return Images(by_resolution, np.asarray(labels).astype(np.int64))
