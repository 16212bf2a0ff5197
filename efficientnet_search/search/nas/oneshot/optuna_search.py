"""TPE and NSGA-II on supernet scores: Optuna's samplers in an in-process ask/tell study.

The samplers are the multi-trial search's (`nas.algorithms.make_sampler`: TPESampler,
Bergstra et al. 2011; NSGAIISampler, Deb et al. 2002; each re-seeded per trial from the
search seed and the proposal's number) over the same parameters (`nas.space.SearchSpace.
distributions`) plus the input resolution as one more categorical choice. No storage and
no workers: a proposal is scored by the supernet in this process (`scoring.Scorer`, cached),
so an Optuna study in memory with `ask`/`tell` is all it takes.

* `tpe` maximizes MnasNet's reward (score x (cost / T)^w, `search.fitness_of`), the
  single objective random search and evolution maximize, so the four are compared on one
  scale.
* `nsga2` is multi-objective, as NSGA-II is meant to be: score up and the run's cost
  (`objective.cost`: MACs, params, activations or latency) down. Each of its proposals is
  still given the reward, so its best enters the choice beside the others'.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import optuna
from optuna.distributions import CategoricalDistribution

from efficientnet_search.search.nas.algorithms import make_sampler
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, ElasticSpace
from efficientnet_search.search.nas.oneshot.search import Fitness, entry

ALGORITHMS = ("tpe", "nsga2")
SEED_OFFSET = {"tpe": 2, "nsga2": 3}  # random uses the seed, evolution seed + 1


def optuna_search(elastic: ElasticSpace, score: Callable, trials: int, seed: int,
                  fitness: Fitness, *, algorithm: str, cost: str,
                  population: int) -> list[dict]:
    """`trials` proposals of `algorithm` (tpe or nsga2), each a scored record plus its
    fitness, in proposal order.

    Args:
      elastic: the supernet's space (its parameters and resolutions are what is sampled).
      score: parameters -> scored record (`Scorer.score`).
      trials: proposals to make.
      seed: the search seed (offset per algorithm, so they do not share proposals).
      fitness: the reward of a record (`search.fitness_of`).
      algorithm: tpe (single objective: the reward) or nsga2 (score up, `cost` down).
      cost: the record's cost field NSGA-II minimizes.
      population: TPE's random start-up proposals and NSGA-II's population size (the
        multi-trial search's meaning of `population` for these samplers).

    Raises:
      ValueError: an algorithm other than tpe or nsga2.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown supernet search algorithm {algorithm!r}; accepted: "
                         f"{', '.join(ALGORITHMS)} (random and evolution live in search.py)")
    sampler = make_sampler(algorithm, elastic.space, seed=seed + SEED_OFFSET[algorithm],
                           population=population, sample_size=1)  # fmt: skip
    directions = ["maximize"] if algorithm == "tpe" else ["maximize", "minimize"]
    distributions = {**elastic.space.distributions,
                     RESOLUTION: CategoricalDistribution(elastic.resolutions)}
    history = []
    with _quiet():
        study = optuna.create_study(directions=directions, sampler=sampler)
        for n in range(trials):
            trial = study.ask(distributions)
            record = entry(score(dict(trial.params)), fitness, algorithm, n)
            values = [record["fitness"]] if algorithm == "tpe" else [record["score"],
                                                                     record[cost]]
            study.tell(trial, values)
            history.append(record)
    return history


def pareto_front(entries: list[dict], cost: str) -> list[dict]:
    """The entries no other entry beats on both score (higher) and `cost` (lower), by cost."""
    front = [e for e in entries if not any(
        o["score"] >= e["score"] and o[cost] <= e[cost]
        and (o["score"] > e["score"] or o[cost] < e[cost]) for o in entries)]
    unique = {(e["score"], e[cost], tuple(e["blocks"]), e["resolution"]): e for e in front}
    return sorted(unique.values(), key=lambda e: e[cost])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's per-trial INFO lines off (hundreds of in-memory trials), restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
