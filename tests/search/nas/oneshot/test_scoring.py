"""Scoring: deterministic, cached by the built network, every score in the CSV, resumed."""

from __future__ import annotations

import csv
import random

import numpy as np

from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.nas.oneshot.scoring import Scorer
from efficientnet_search.search.nas.oneshot.supernet import Supernet
from efficientnet_search.search.nas.oneshot.train import Images


def _images(elastic, n, seed):
    rng = np.random.default_rng(seed)
    return Images({r: rng.uniform(0, 255, (n, r, r, 3)).astype("float32")
                   for r in elastic.resolutions}, rng.integers(0, 4, n))


def test_scores_are_deterministic_cached_and_recorded(tiny_elastic, tmp_path):
    net = Supernet(tiny_elastic, seed=2)
    path = tmp_path / "scored.csv"
    scorer = Scorer(net, _images(tiny_elastic, 16, 0), _images(tiny_elastic, 24, 1), path,
                    batch_size=10)
    rng = random.Random(0)
    subnets = [tiny_elastic.smallest(), *(tiny_elastic.sample(rng) for _ in range(2))]
    first = [scorer.score(p)["score"] for p in subnets]
    # Scored again from scratch in another order (other BN statistics in between): same.
    fresh = Scorer(net, _images(tiny_elastic, 16, 0), _images(tiny_elastic, 24, 1),
                   tmp_path / "other.csv", batch_size=10)
    assert [fresh.score(p)["score"] for p in subnets[::-1]] == first[::-1]
    assert scorer.score(dict(subnets[1]))["number"] == 1  # cached: not scored again
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert rows[0]["blocks"].split(" ") == list(tiny_elastic.blocks(subnets[0]))
    assert int(rows[0]["resolution"]) == subnets[0][RESOLUTION]
    assert int(rows[0]["macs"]) > 0 and int(rows[0]["params"]) > 0
    resumed = Scorer(net, _images(tiny_elastic, 16, 0), _images(tiny_elastic, 24, 1), path)
    assert len(resumed.records) == 3 and resumed.score(subnets[2])["score"] == first[2]
