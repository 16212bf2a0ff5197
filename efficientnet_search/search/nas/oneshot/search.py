"""Searching on supernet scores: random search and regularized evolution, MnasNet's reward.

Each proposal is scored by the supernet (`scoring.Scorer`, cached), so a search of thousands
costs inference only. The fitness is MnasNet's reward, score x (cost / T)^w (Tan et al.
2019, Eq. 2; `objective.reward`) with T the baseline's cost times `objective.target_ratio`,
as in the multi-trial search. Random search (Li & Talwalkar 2019) is always run beside
evolution on the same budget. Regularized evolution follows Real et al. 2019, Algorithm 1:
the population is the `population` youngest proposals (the oldest dies), a tournament of
`sample_size` picks the fittest as parent, and the child changes one choice
(`ElasticSpace.mutate`); proposals are sequential here, so no lag is needed.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Mapping
from typing import Any

from efficientnet_search.search.nas.objective import reward
from efficientnet_search.search.nas.oneshot.elastic import ElasticSpace

Fitness = Callable[[Mapping[str, Any]], float]


def fitness_of(target: float, exponent: float, measure: str) -> Fitness:
    """MnasNet's reward of a scored record, against cost `measure` and target T."""

    def fitness(record: Mapping[str, Any]) -> float:
        return reward(record["score"], record[measure], target, exponent)

    return fitness


def random_search(elastic: ElasticSpace, score: Callable, trials: int, seed: int,
                  fitness: Fitness) -> list[dict[str, Any]]:
    """`trials` uniform proposals; each entry is the scored record plus its fitness."""
    rng = random.Random(seed)
    return [entry(score(elastic.sample(rng)), fitness, "random", n) for n in range(trials)]


def regularized_evolution(elastic: ElasticSpace, score: Callable, trials: int, seed: int,
                          fitness: Fitness, *, population: int,
                          sample_size: int) -> list[dict[str, Any]]:
    """Real et al. 2019, Algorithm 1 over supernet scores (`trials` proposals in all)."""
    rng = random.Random(seed + 1)
    history: list[dict[str, Any]] = []
    alive: collections.deque = collections.deque()
    for n in range(trials):
        if len(alive) < population:
            params = elastic.sample(rng)
        else:
            parent = max(rng.sample(list(alive), sample_size), key=lambda e: e["fitness"])
            params = elastic.mutate(parent["choice"], rng)
        child = entry(score(params), fitness, "evolution", n)
        history.append(child)
        alive.append(child)
        if len(alive) > population:
            alive.popleft()  # the oldest dies (regularized: age, not fitness)
    return history


def best(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The fittest entry (the earliest among equals)."""
    return max(entries, key=lambda e: (e["fitness"], -e["proposal"]))


def entry(record: Mapping[str, Any], fitness: Fitness, algorithm: str,
          n: int) -> dict[str, Any]:
    """Proposal `n` of `algorithm`: the scored record, its fitness, who proposed it."""
    return {**record, "fitness": fitness(record), "algorithm": algorithm, "proposal": n}
