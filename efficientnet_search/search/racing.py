"""Racing: seeds spent where a search's answer is still uncertain (`search.max_repeats`).

After the first `repeats` seeds of every candidate, a round adds one seed to each candidate
still tied with the best (the best included), and the next round is decided from every seed
finished so far, until the best set is one candidate or the contenders have `max_repeats`
seeds. The rule (search/stats.py) tests each look at `1 - confidence` split over the planned
looks (Bonferroni), so the race's chance of dropping a candidate as good as the best stays
what `search.confidence` says. Racing in the spirit of Maron & Moore (1994) and F-race
(Birattari et al. 2002): candidates that are clearly worse stop costing seeds.

Shared by the grid (its last rung and verify's phi, grid/rungs.py) and the NAS's retraining
of its top candidates (nas/plan.py). Each round is its own Optuna study,
`<study>/race-m<max_repeats>-c<confidence>/round<k>`, whose points follow deterministically
from the finished rounds before it, so every worker computes the same list and the queue
takes each point exactly once; a run resumes round by round (`Rounds` opens them for one
budget; the grid's Ladder opens them after its last rung). The study names carry the plan
because its looks' confidence depends on it: raising `max_repeats` on a finished run
(`save_run_config`) races again on top of the same first seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial

from efficientnet_search import config as config_lib
from efficientnet_search.search import stats
from efficientnet_search.search.trials import study as study_lib


@dataclasses.dataclass(frozen=True)
class RacePlan:
    """Seeds at the start (`repeats`) and at most (`max_repeats`), and the overall confidence.

    `group` names a point attribute whose values race separately (verify races each phi on
    its own); None: one race over every candidate.
    """

    repeats: int
    max_repeats: int
    confidence: float
    group: str | None = None

    @property
    def looks(self) -> int:
        return stats.planned_looks(self.repeats, self.max_repeats)

    @property
    def look_confidence(self) -> float:
        """The confidence of every look, the final best set's included."""
        return stats.look_confidence(self.confidence, self.looks)

    @property
    def racing(self) -> bool:
        return self.looks > 1

    def study_suffix(self, round_: int) -> str:
        return f"race-m{self.max_repeats}-c{self.confidence:g}/round{round_}"


def next_round(plan: RacePlan, points: Sequence[study_lib.Point],
               records: Sequence[Mapping[str, Any]], round_: int) -> list[study_lib.Point]:
    """The points of round `round_`: each contender's next seed, from the finished rounds.

    `points` are every point queued so far at this budget (all earlier rounds), `records`
    their trial records (results.trial_record, with the `group` attribute where one is set).
    A contender's next seed is one past the last seed queued for it, so a failed trial does
    not make a seed repeat. Empty when every race is decided or out of seeds.
    """
    queued: dict[str, list[study_lib.Point]] = {}
    for point in points:
        queued.setdefault(point.attrs["candidate"], []).append(point)
    out = []
    for group_records in _groups(plan, records).values():
        summary = stats.summarize(group_records, plan.look_confidence)
        alive = stats.contenders(summary)
        if len(alive) < 2:
            continue
        for key in sorted(alive):
            own = queued.get(key, [])
            if not own or len(own) >= plan.max_repeats:
                continue
            last = max(own, key=lambda p: p.attrs["seed"])
            out.append(reseeded(last, int(last.attrs["seed"]) + 1, round_))
    return out


def next_study(plan: RacePlan, base_name: str, points: Sequence[study_lib.Point],
               records: Sequence[Mapping[str, Any]], round_: int
               ) -> tuple[str, list[study_lib.Point]] | None:
    """The study name and points of round `round_` after study `base_name`'s finished rounds
    (`points`, `records`: see next_round); None when the race is over."""
    if not plan.racing:
        return None
    nxt = next_round(plan, points, records, round_)
    return (f"{base_name}/{plan.study_suffix(round_)}", nxt) if nxt else None


@dataclasses.dataclass(frozen=True)
class Round:
    """One round of a race: its index (0: the first `repeats` seeds), queue and points."""

    index: int
    queue: study_lib.TrialQueue
    points: tuple[study_lib.Point, ...]


@dataclasses.dataclass
class Rounds:
    """The rounds of one race at one budget, opened in order as far as finished rounds allow.

    `points0` are round 0's points (every candidate with its first seeds), queued in study
    `base_name`; `open_queue(name, points)` opens (or joins) a study; `record` turns a trial
    into the record stats.summarize reads (candidate, seed, state, val_accuracy).
    """

    plan: RacePlan
    base_name: str
    points0: list[study_lib.Point]
    open_queue: Callable[[str, list[study_lib.Point]], study_lib.TrialQueue]
    record: Callable[[FrozenTrial], dict[str, Any]]
    _opened: list[Round] = dataclasses.field(default_factory=list)

    def current(self) -> Round:
        """The first round with work left, or the last one when the race is over."""
        if not self._opened:
            self._opened.append(Round(0, self.open_queue(self.base_name, self.points0),
                                      tuple(self.points0)))  # fmt: skip
        while not self._opened[-1].queue.unfinished():
            points = [p for r in self._opened for p in r.points]
            nxt = next_study(self.plan, self.base_name, points, self.records(),
                             len(self._opened))  # fmt: skip
            if nxt is None:
                break
            name, new = nxt
            self._opened.append(Round(len(self._opened), self.open_queue(name, new), tuple(new)))
        return self._opened[-1]

    def finished(self) -> bool:
        return not self.current().queue.unfinished()

    def opened(self) -> list[Round]:
        """The rounds opened so far (after `current`), first round first."""
        return list(self._opened)

    def records(self, rounds: Sequence[Round] | None = None) -> list[dict[str, Any]]:
        """Records of `rounds` (default: every opened round), each with its round index."""
        return [{**self.record(t), "round": r.index}
                for r in (self._opened if rounds is None else rounds)
                for t in r.queue.point_trials()]  # fmt: skip


def reseeded(point: study_lib.Point, seed: int, round_: int) -> study_lib.Point:
    """`point` with another seed, marked as round `round_` (its key ends in `_s<seed>`, and a
    halving rung's `_r<index>` after it)."""
    head, sep, tail = point.key.rpartition(f"_s{point.attrs['seed']}")
    if not sep:
        raise ValueError(f"point key {point.key!r} names no seed {point.attrs['seed']}")
    return study_lib.Point(key=f"{head}_s{seed}{tail}", params={**point.params, "seed": seed},
                           attrs={**point.attrs, "seed": seed, "round": round_})  # fmt: skip


def _groups(plan: RacePlan, records: Sequence[Mapping[str, Any]]
            ) -> dict[Any, list[Mapping[str, Any]]]:
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record.get(plan.group) if plan.group else None, []).append(record)
    return groups


def round_summaries(plan: RacePlan, rounds: Sequence[Sequence[Mapping[str, Any]]]
                    ) -> list[dict[str, Any]]:
    """Per round (records of that round alone, first round first): who trained, how many
    trials, and the best set judged on everything finished up to it."""
    out, seen = [], []
    for index, group in enumerate(rounds):
        seen += group
        summary = stats.summarize(seen, plan.look_confidence)
        out.append({
            "round": index, "trials": len(group),
            "candidates": sorted({r["candidate"] for r in group}),
            "best_set": None if summary.best_set is None else list(summary.best_set),
        })  # fmt: skip
    return out


def section(plan: RacePlan, rounds: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """results.json's `racing`: the plan and each round (`rounds`: each round's records)."""
    return {"repeats": plan.repeats, "max_repeats": plan.max_repeats,
            "confidence": plan.confidence, "looks": plan.looks,
            "look_confidence": plan.look_confidence,
            "rounds": round_summaries(plan, rounds)}  # fmt: skip


def racing_note(plan: RacePlan, summaries: Sequence[Mapping[str, Any]]) -> str:
    """One sentence on how the race went and why it stopped."""
    if not plan.racing or not summaries:
        return ""
    counts = " -> ".join(str(len(r["candidates"])) for r in summaries)
    text = (f" Racing: {counts} candidates over {len(summaries)} round(s) of seeds, each look "
            f"at {plan.look_confidence:.2%} ({1 - plan.confidence:.0%} split over "
            f"{plan.looks} looks, Bonferroni).")
    final = summaries[-1]["best_set"]
    if final is not None and len(final) == 1:
        text += " It stopped with a single best."
    elif final is not None:
        text += (f" It stopped with {len(final)} candidates still tied: each had "
                 f"max_repeats={plan.max_repeats} seeds or no more could be added.")
    return text


def save_run_config(config: Any, run_dir: str | Path) -> Path:
    """Writes config.yaml (config.save_config), letting a finished run race further.

    A run directory refuses a different config, except a new `search.max_repeats`: racing
    only adds rounds of seeds on top of the same first seeds, so raising it is how a tie is
    settled; config.yaml then records the latest value.
    """
    path = Path(run_dir) / "config.yaml"
    if path.is_file():
        old = config_lib.read_yaml(path) or {}
        new = config_lib.to_dict(config)
        if (isinstance(old.get("search"), dict)
                and old["search"].get("max_repeats") != new["search"]["max_repeats"]):
            old["search"]["max_repeats"] = new["search"]["max_repeats"]
            if old == new:
                path.write_text(yaml.safe_dump(new, sort_keys=False))
    return config_lib.save_config(config, run_dir)
