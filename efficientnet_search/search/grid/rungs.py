"""The grid's rungs: every candidate at one budget, or successive halving over candidates.

A plain grid search is one rung: every (candidate, seed) trained for the full budget.
With `search.pruner: candidate_halving` it is synchronous successive halving (Jamieson &
Talwalkar 2016) over whole candidates: rung 0 trains every candidate (all its seeds) for a
short budget; once the rung is finished, the best 1/`pruner_reduction_factor` candidates by
mean validation accuracy train again, from scratch with the same seeds, for a budget that many
times longer; the last rung gets the full budget.

Why restart rather than continue: a restarted run with the same seed repeats the shorter run
exactly (tested), so the last rung's accuracies are those an exhaustive search would have
measured, and no model has to be kept between rungs. Why rung-synchronous: every promotion
compares all candidates of the rung, so its cost is known in advance and does not depend on
the order trials arrive in (Optuna's asynchronous pruners, `successive_halving` and
`hyperband`, promote early arrivals that had few rivals; on the 14-trial quick grid that cost
48-51% of the exhaustive epochs, measured in `benchmarks/pruner_replay.py`). Whole candidates,
not single seeds, move up, so every rung keeps `repeats` seeds per candidate for the noise test.

Each rung is its own Optuna study, `<study>/rung<r>`; its points follow deterministically
from the finished rung below, so every worker computes the same list and `study.open_study`
queues it exactly once, as it does for rung 0. Racing (search/racing.py, `search.max_repeats`)
climbs the same way after the last rung: rounds of more seeds for the candidates still tied
with the best, each round a study whose points follow from the rounds before it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from efficientnet_search.search import racing, stats
from efficientnet_search.search.grid import results as results_lib
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib

HALVING = "candidate_halving"


def budgets(evaluations: int, min_passes: int, factor: int, halving: bool) -> tuple[int, ...]:
    """Validation passes trained at each rung, shortest first; one rung without halving."""
    found = [evaluations]
    while halving:
        shorter = round(found[-1] / factor)
        if shorter < max(1, min_passes) or shorter >= found[-1]:
            break
        found.append(shorter)
    return tuple(reversed(found))


def planned_share(candidates: int, budgets_: Sequence[int], factor: int) -> float:
    """Training a halving search costs, as a share of training every candidate fully.

    Counts each rung's candidates (ceil(n / factor) of the rung below) times its budget;
    seeds and epochs cancel out. Failed candidates only lower it.
    """
    spent, alive = 0, candidates
    for index, budget in enumerate(budgets_):
        if index:
            alive = math.ceil(alive / factor)
        spent += alive * budget
    return spent / (candidates * budgets_[-1])


def promoted(records: Sequence[dict[str, Any]], factor: int) -> list[str]:
    """Candidates that move up: the best ceil(n / factor) by mean over completed seeds."""
    ranked = stats.summarize(records).candidates
    return [c.key for c in ranked[: math.ceil(len(ranked) / factor)]]


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung (or one racing round at the last rung's budget): its index, its budget in
    validation passes, its queue, the points queued in it and its racing round."""

    index: int
    budget: int
    queue: study_lib.TrialQueue
    points: tuple[study_lib.Point, ...] = ()
    round: int = 0


@dataclasses.dataclass
class Ladder:
    """Opens the rungs of one search in order, as far as finished rungs allow.

    `points0` are rung 0's points (every candidate and seed, in queue order); `open_queue`
    opens (or joins) a rung's study with given points. `race` (search/racing.py) adds rounds of
    seeds at the last rung; None or a plan without racing: no rounds.
    """

    points0: list[study_lib.Point]
    budgets: tuple[int, ...]
    factor: int
    open_queue: Callable[[str, list[study_lib.Point]], study_lib.TrialQueue]
    base_name: str
    race: racing.RacePlan | None = None
    _opened: list[Rung] = dataclasses.field(default_factory=list)

    def current(self) -> Rung:
        """The lowest rung (or round) with work left, or the last opened when all is done."""
        if not self._opened:
            self._opened.append(self._rung(0, self.points0))
        while True:
            rung = self._opened[-1]
            if rung.queue.unfinished():
                return rung
            if rung.index == len(self.budgets) - 1:
                nxt = self._next_round(rung)
                if nxt is None:
                    return rung
                self._opened.append(nxt)
                continue
            points = self._next_points(rung)
            if not points:  # nothing completed at this rung: nothing to promote
                return rung
            self._opened.append(self._rung(rung.index + 1, points))

    def rungs(self) -> list[Rung]:
        """The rungs and rounds opened so far (after `current`)."""
        return list(self._opened)

    def last_rung(self) -> list[Rung]:
        """The last rung reached and its racing rounds, first round first (after `current`)."""
        top = self._opened[-1].index if self._opened else 0
        return [r for r in self._opened if r.index == top]

    def records(self, rungs: list[Rung]) -> list[dict[str, Any]]:
        """Trial records of `rungs`, with the race's group attribute where it has one."""
        group = self.race.group if self.race else None
        out = []
        for rung in rungs:
            for trial in rung.queue.point_trials():
                record = results_lib.trial_record(trial)
                if group:
                    record[group] = trial.user_attrs.get(group)
                out.append(record)
        return out

    def _rung(self, index: int, points: list[study_lib.Point]) -> Rung:
        if len(self.budgets) > 1:  # a halving rung's points are marked `_r<index>`
            points = [dataclasses.replace(p, key=f"{p.key}_r{index}",
                                          attrs={**p.attrs, "rung": index}) for p in points]
        return Rung(index, self.budgets[index],
                    self.open_queue(self._study(index), list(points)), tuple(points))

    def _study(self, index: int) -> str:
        return self.base_name if len(self.budgets) == 1 else f"{self.base_name}/rung{index}"

    def _next_round(self, rung: Rung) -> Rung | None:
        """The next racing round after the finished `rung`, or None when the race is over."""
        if self.race is None or not self.race.racing:
            return None
        done = self.last_rung()
        points = [p for r in done for p in r.points]
        round_ = rung.round + 1
        nxt = racing.next_study(self.race, self._study(rung.index), points,
                                self.records(done), round_)  # fmt: skip
        if nxt is None:
            return None
        name, points = nxt
        return Rung(rung.index, rung.budget, self.open_queue(name, points), tuple(points),
                    round_)  # fmt: skip

    def finished(self) -> bool:
        """Whether the last rung is open and done (or no rung can be promoted)."""
        return not self.current().queue.unfinished()

    def _next_points(self, rung: Rung) -> list[study_lib.Point]:
        records = [results_lib.trial_record(t) for t in rung.queue.point_trials()]
        keep = set(promoted(records, self.factor))
        return [p for p in self.points0 if p.attrs["candidate"] in keep]


def open_ladder(points0: list[study_lib.Point], budgets_: tuple[int, ...], factor: int,
                url: str, base_name: str, *, pruner: optuna.pruners.BasePruner,
                heartbeat_interval: int, grace_period: int,
                race: racing.RacePlan | None = None) -> Ladder:
    """A Ladder over the storage at `url` (one storage handle for every rung)."""
    storage = storage_lib.open_storage(url, heartbeat_interval=heartbeat_interval,
                                     grace_period=grace_period)  # fmt: skip
    lock = storage_lib.sqlite_claim_lock(url)

    def open_queue(name: str, points: list[study_lib.Point]) -> study_lib.TrialQueue:
        return study_lib.open_study(
            storage, name, points, pruner=pruner, claim_lock=lock,
            heartbeat_interval=heartbeat_interval, grace_period=grace_period,
        )  # fmt: skip

    return Ladder(points0, budgets_, factor, open_queue, base_name, race)


def rung_summaries(ladder: Ladder, records_by_rung: dict[int, list[dict[str, Any]]],
                   evals_per_epoch: int, confidence: float) -> list[dict[str, Any]]:
    """Per rung: its budget in epochs, its candidates' means and best set, who moved up."""
    out = []
    rungs = [rung for rung in ladder.rungs() if rung.round == 0]  # racing rounds: search/racing.py
    for rung in rungs:
        records = records_by_rung.get(rung.index, [])
        summary = stats.summarize(records, confidence)
        out.append({
            "rung": rung.index,
            "epochs": rung.budget / evals_per_epoch,
            "reduction_factor": ladder.factor,
            "candidates": [stats.candidate_json(c) for c in summary.candidates],
            "best_set": None if summary.best_set is None else list(summary.best_set),
            "promoted": (promoted(records, ladder.factor)
                         if rung.index + 1 < len(rungs) else []),
        })  # fmt: skip
    return out


def halving_note(summaries: Sequence[dict[str, Any]]) -> str:
    """One sentence on how the halving went and how sure its last promotion was."""
    if len(summaries) < 2:
        return ""
    counts = " -> ".join(str(len(r["candidates"])) for r in summaries)
    epochs = ", ".join(f"{r['epochs']:.3g}" for r in summaries)
    text = f" Candidate halving: {counts} candidates at {epochs} epochs."
    decided = [r for r in summaries if r["promoted"]]
    if decided:
        last = decided[-1]
        rivals = [k for k in last["best_set"] or [] if k not in last["promoted"]]
        if last["best_set"] is None:
            text += f" At {last['epochs']:.3g} epochs seed noise was unknown (one seed)."
        elif rivals:
            text += (f" The last promotion ({last['epochs']:.3g} epochs) was within seed noise "
                     f"of {', '.join(rivals)}: treat those as tied with the winner.")
        else:
            text += (f" At {last['epochs']:.3g} epochs the promoted candidates led the others "
                     "by more than seed noise.")
    return text
