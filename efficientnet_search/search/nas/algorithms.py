"""The search algorithms, as Optuna samplers that read only the study's finished trials.

* `random`: uniform sampling, choice by choice (Optuna's RandomSampler): the baseline every
  NAS result is compared with (Li & Talwalkar 2019; Yang et al. 2020).
* `evolution`: regularized evolution (Real et al. 2019, Algorithm 1): the population is the
  `population` youngest finished trials (so the oldest die: age-based removal, not
  worst-based); a tournament of `sample_size` of them picks the best as parent, and the
  child changes one choice. Until the population is full, children are random. Age is the
  budget slot's number, and slot n's population is drawn from slots up to n - `lag` only,
  waiting for those to finish: with `lag` at 2 x workers - 1 nobody waits in a simulation
  (benchmarks/evolution_lag.py), and the proposals depend on the seed, the lag and the
  results, not on which worker finished first (with completion order, two workers gave a
  different search every run). One worker with lag 1 is Algorithm 1 exactly.
* `tpe`: Optuna's TPESampler (Bergstra et al. 2011), multi-objective under `pareto`.
* `nsga2`: Optuna's NSGAIISampler (Deb et al. 2002), multi-objective only.

Why every sampler is re-seeded per trial (seed and budget slot): a search resumed after a
kill builds its sampler afresh, and a sampler seeded once would replay the proposals of the
first trials (random search would re-propose what it already trained). Seeded per slot,
each proposal depends only on the seed, the slot and the finished trials, so an interrupted
search proposes what an uninterrupted one would have, given the same history; a killed
trial's retry (a new trial number, the same slot) proposes what the killed one did.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable
from typing import Any

import optuna
from absl import logging
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from efficientnet_search.search.nas.space import SearchSpace
from efficientnet_search.search.trials.study import is_finished

SCORE_ATTR = "score"  # the reward of a finished trial, what evolution's tournament compares
SLOT_ATTR = "slot"  # the budget slot a trial fills (nas_plan queues slot0, slot1, ...)


def trial_seed(seed: int, number: int) -> int:
    """The seed of slot (or trial) `number`'s proposal in a search seeded `seed`."""
    return (seed * 1_000_003 + number * 7_919) % 2**31


def slot_of(trial: FrozenTrial) -> int:
    """The budget slot the trial fills; its number where it fills none (a plain study)."""
    return int(trial.user_attrs.get(SLOT_ATTR, trial.number))


class RegularizedEvolutionSampler(BaseSampler):
    """Regularized evolution over a SearchSpace (see the module docstring).

    Args:
      space: the architectures; all its parameters are sampled together (relative).
      population: number of youngest finished slots that form the population.
      sample_size: tournament size.
      seed: search seed.
      lag: slot n's population comes from slots <= n - lag (>= 1; above the number of
        workers that run at once those slots have usually finished: nas_config's default is
        2 x workers - 1).
      max_wait_s: how long a proposal waits for those slots (a worker that died holds its
        slot until its heartbeat goes stale and the slot is retried); past it the proposal
        uses the slots finished so far and says so in the log.
    """

    def __init__(self, space: SearchSpace, population: int, sample_size: int,
                 seed: int, lag: int = 1, max_wait_s: float = 600.0) -> None:
        if not 1 <= sample_size <= population:
            raise ValueError(f"need 1 <= sample_size <= population, got {sample_size=}, "
                             f"{population=}")
        if lag < 1:
            raise ValueError(f"evolution's lag must be >= 1, got {lag=}")
        self._space = space
        self._population = population
        self._sample_size = sample_size
        self._seed = seed
        self._lag = lag
        self._max_wait_s = max_wait_s

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._space.distributions)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        slot = slot_of(trial)
        rng = random.Random(trial_seed(self._seed, slot))
        population = self.population(study, slot)
        if len(population) < self._population:
            return self._space.sample(rng)
        contenders = rng.sample(population, self._sample_size)
        parent = max(contenders, key=lambda t: (t.user_attrs[SCORE_ATTR], -slot_of(t)))
        return self._space.mutate(parent.params, rng)

    def population(self, study: Study, slot: int) -> list[FrozenTrial]:
        """Slot `slot`'s population: the youngest `population` scored trials among slots
        <= slot - lag, once those have finished."""
        last = slot - self._lag
        deadline = time.monotonic() + self._max_wait_s
        while True:
            trials = [t for t in study.get_trials(deepcopy=False) if slot_of(t) <= last]
            settled = {slot_of(t) for t in trials if is_finished(t)}
            if len(settled) >= last + 1:
                break
            if time.monotonic() > deadline:
                logging.warning(
                    "evolution: slot %d waited %.0f s for slots %s to finish; its population "
                    "is what has finished, so this proposal depends on timing", slot,
                    self._max_wait_s, sorted(set(range(last + 1)) - settled)[:10])
                break
            time.sleep(0.5)
        done = [t for t in trials if t.state == TrialState.COMPLETE and SCORE_ATTR in t.user_attrs
                and set(self._space.distributions) <= set(t.params)]
        done.sort(key=slot_of)
        return done[-self._population:]

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        rng = random.Random(trial_seed(self._seed, slot_of(trial))
                            + zlib.crc32(param_name.encode()))
        return rng.choice(param_distribution.choices)


class PerTrialSeeded(BaseSampler):
    """Delegates to a fresh Optuna sampler per trial, seeded from the trial's number."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = seed
        self._inner: dict[int, BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._inner:
            self._inner[trial.number] = self._factory(trial_seed(self._seed, slot_of(trial)))
        return self._inner[trial.number]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name,
                                                   param_distribution)  # fmt: skip

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        inner = self._inner.pop(trial.number, None) or self._for(trial)
        inner.after_trial(study, trial, state, values)
        self._inner.pop(trial.number, None)


def make_sampler(algorithm: str, space: SearchSpace, *, seed: int, population: int,
                 sample_size: int, lag: int = 1, max_wait_s: float = 600.0) -> BaseSampler:
    """The sampler of `algorithm` (random, evolution, tpe, nsga2) for one search seed
    (`lag`, `max_wait_s`: evolution's, see RegularizedEvolutionSampler)."""
    if algorithm == "evolution":
        return RegularizedEvolutionSampler(space, population, sample_size, seed, lag,
                                           max_wait_s)
    factories: dict[str, Callable[[int], BaseSampler]] = {
        "random": lambda s: optuna.samplers.RandomSampler(seed=s),
        "tpe": lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=population),
        "nsga2": lambda s: optuna.samplers.NSGAIISampler(
            seed=s, population_size=max(2, population)),
    }
    if algorithm not in factories:
        raise ValueError(f"unknown search algorithm {algorithm!r}; accepted: evolution, "
                         f"{', '.join(factories)}")
    return PerTrialSeeded(factories[algorithm], seed)
