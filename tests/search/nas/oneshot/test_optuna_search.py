"""TPE and NSGA-II on supernet scores: Optuna's samplers over the NAS space's parameters."""

from __future__ import annotations

import random

import numpy as np
import pytest

from efficientnet_search.search.nas.oneshot import search as search_lib
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION
from efficientnet_search.search.nas.oneshot.optuna_search import optuna_search, pareto_front


def _fake_scorer(elastic):
    """A deterministic 'supernet': the score rises with kernel 5 and expansion 6 per stage;
    the cost rises with both and the resolution (no training, so the test is quick)."""

    def score(params):
        blocks = elastic.blocks(params)
        big = sum(params[k] == 5 for k in params if k.endswith("_kernel")) + sum(
            params[k] == 6 for k in params if k.endswith("_expand"))
        return {"score": 0.1 * big + 0.01 * (params[RESOLUTION] == 40), "macs": 100 + 10 * big
                + params[RESOLUTION], "blocks": list(blocks),
                "resolution": params[RESOLUTION], "choice": dict(params)}  # fmt: skip

    return score


def test_tpe_proposes_fitter_networks_than_random_search(tiny_elastic):
    score = _fake_scorer(tiny_elastic)
    fitness = search_lib.fitness_of(target=1e9, exponent=0.0, measure="macs")  # score alone
    tpe = optuna_search(tiny_elastic, score, 60, 0, fitness, algorithm="tpe", cost="macs",
                        population=10)  # fmt: skip
    randoms = search_lib.random_search(tiny_elastic, score, 60, 0, fitness)
    assert [e["algorithm"] for e in tpe] == ["tpe"] * 60
    assert [e["proposal"] for e in tpe] == list(range(60))
    for e in tpe:  # every proposal is a network of the space, at one of its resolutions
        assert e["resolution"] in tiny_elastic.resolutions
        tiny_elastic.encode(e["blocks"], e["resolution"])
    late_tpe = np.mean([e["fitness"] for e in tpe[30:]])
    late_random = np.mean([e["fitness"] for e in randoms[30:]])
    assert late_tpe > late_random + 0.1, (late_tpe, late_random)
    again = optuna_search(tiny_elastic, score, 60, 0, fitness, algorithm="tpe", cost="macs",
                          population=10)  # fmt: skip
    assert [e["choice"] for e in again] == [e["choice"] for e in tpe]  # seeded: reproducible


def test_nsga2_spreads_over_the_score_cost_front(tiny_elastic):
    score = _fake_scorer(tiny_elastic)
    fitness = search_lib.fitness_of(target=150.0, exponent=-0.07, measure="macs")
    history = optuna_search(tiny_elastic, score, 40, 1, fitness, algorithm="nsga2",
                            cost="macs", population=8)  # fmt: skip
    assert len(history) == 40 and all("fitness" in e for e in history)
    front = pareto_front(history, "macs")
    assert len(front) >= 3  # a trade-off, not one point
    assert [e["macs"] for e in front] == sorted(e["macs"] for e in front)
    assert [e["score"] for e in front] == sorted(e["score"] for e in front)
    randoms = [score(tiny_elastic.sample(random.Random(n))) for n in range(40)]
    best_random = max(r["score"] for r in randoms)
    assert max(e["score"] for e in history) >= best_random - 0.1


def test_unknown_algorithm_is_named(tiny_elastic):
    with pytest.raises(ValueError, match="'cmaes'.*tpe, nsga2"):
        optuna_search(tiny_elastic, _fake_scorer(tiny_elastic), 1, 0, lambda r: 0.0,
                      algorithm="cmaes", cost="macs", population=2)  # fmt: skip
