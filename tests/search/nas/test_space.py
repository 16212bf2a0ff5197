"""The NAS search space, objective and samplers: no training, so these run in a second."""

from __future__ import annotations

import json
import random
import threading
import time

import optuna
import pytest

from efficientnet_search import config as config_lib
from efficientnet_search.arch.blocks import B0_BLOCK_STRINGS, decode_block_string
from efficientnet_search.arch.family import read_baseline
from efficientnet_search.search.nas import algorithms as nas_algorithms
from efficientnet_search.search.nas import objective as nas_objective
from efficientnet_search.search.nas.config import NasConfig
from efficientnet_search.search.nas.space import SpaceConfig, build_space, canonical_key

SPACE = build_space(SpaceConfig())


def test_the_default_space_holds_b0_and_every_sample_is_a_chained_block_list():
    assert SPACE.decode(SPACE.base_params()) == B0_BLOCK_STRINGS
    rng = random.Random(0)
    for _ in range(20):
        blocks = SPACE.decode(SPACE.sample(rng))
        args = [decode_block_string(b) for b in blocks]
        assert args[0].filters_in == 32
        assert all(a.filters_in == b.filters_out for b, a in zip(args, args[1:], strict=False))
        base = [decode_block_string(b) for b in B0_BLOCK_STRINGS]
        assert [a.strides for a in args] == [b.strides for b in base]  # strides fixed
        assert all(a.repeats >= 1 and a.filters_out % 8 == 0 for a in args)
        assert canonical_key(blocks) == " ".join(blocks)
    # MnasNet's choices per stage: stages with one baseline block cannot drop to 0 repeats.
    assert SPACE.options[0]["repeats"] == (1, 2) and SPACE.options[3]["repeats"] == (2, 3, 4)
    assert SPACE.options[2]["filters"] == (32, 40, 48)  # 40 x {0.75, 1, 1.25} rounded to 8
    # kernel x expansion x SE = 12 per stage; repeats 2,3,3,3,3,3,2; channels 2,2,3,3,3,3,3.
    assert SPACE.size == 12**7 * (2 * 3**5 * 2) * (2 * 2 * 3**5)


def test_fused_choice_joins_the_space_and_builds_v2_style_blocks():
    from efficientnet_search.arch.blocks import V2_BASE_BLOCK_STRINGS
    from efficientnet_search.arch.cost import spec_cost
    from efficientnet_search.search.proxy.config import ProxyConfig

    assert SPACE.options[0]["fused"] == (False,)  # by default each stage keeps its type
    v2 = build_space(SpaceConfig(), V2_BASE_BLOCK_STRINGS)
    assert v2.decode(v2.base_params()) == tuple(V2_BASE_BLOCK_STRINGS)  # V2's own types kept
    both = build_space(SpaceConfig(fused=(False, True)))
    assert both.size == SPACE.size * 2**7
    params = {**both.base_params(), "stage1_fused": True, "stage2_fused": True}
    blocks = both.decode(params)
    assert [decode_block_string(b).fused for b in blocks] == [True, True] + [False] * 5
    assert "_c1" in blocks[0] and "_c1" not in blocks[2]
    spec = ProxyConfig(blocks=blocks).spec(1.0, 1.0, 1.0, num_classes=10)
    assert spec.family == "v2" and spec_cost(spec).macs > 0  # builds and counts


def test_mutation_changes_exactly_one_choice():
    rng = random.Random(1)
    parent = SPACE.sample(rng)
    for _ in range(20):
        child = SPACE.mutate(parent, rng)
        assert sum(child[k] != parent[k] for k in parent) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("space.kernels=[]", "space.kernels is empty"),
        ("space.kernels=[4]", "space.kernels holds [4]"),
        ("space.fused=[2]", "space.fused[0] must be true or false"),
        ("space.repeat_offsets=[-3]", "leave stage 1 (baseline repeats 1) no repeats >= 1"),
        ("objective.target_ratio=0.05", "the cheapest architecture in the space costs"),
        ("search.algorithms=[evolution]", "lack random"),
        ("search.algorithms=[nsga2, random]", "set objective.kind=pareto"),
    ],
)
def test_bad_spaces_and_targets_are_refused_with_the_fix(override, message):
    with pytest.raises(config_lib.ConfigError) as info:
        config = config_lib.load_config(NasConfig, None, [override])
        nas_objective.resolve_objective(config)
    assert message in str(info.value)


def test_reward_is_mnasnet_soft_constraint_and_the_front_keeps_undominated_points():
    assert nas_objective.reward(0.8, 200, 100, -0.07) == pytest.approx(0.8 * 2**-0.07)
    assert nas_objective.reward(0.8, 100, 100, -0.07) == 0.8
    records = [{"number": i, "val_accuracy": a, "macs": m, "trained_key": str(i)}
               for i, (a, m) in enumerate([(0.7, 10), (0.8, 20), (0.75, 30), (0.9, 40)])]
    front = nas_objective.pareto_front(records, "macs")
    assert [r["number"] for r in front] == [0, 1, 3]


def _history(sampler, n: int, study=None) -> optuna.Study:
    study = study or optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = {k: trial.suggest_categorical(k, d.choices)
                  for k, d in SPACE.distributions.items()}  # fmt: skip
        value = sum(float(v) for v in params.values())
        trial.set_user_attr(nas_algorithms.SCORE_ATTR, value)
        return value

    study.optimize(objective, n_trials=n)
    return study


def test_regularized_evolution_mutates_a_tournament_winner_of_the_newest_trials():
    sampler = nas_algorithms.RegularizedEvolutionSampler(SPACE, population=4, sample_size=2,
                                                         seed=0)  # fmt: skip
    study = _history(sampler, 10)
    trials = study.trials
    for trial in trials[4:]:
        older = [t for t in trials if t.number < trial.number][-4:]  # the population
        assert any(sum(trial.params[k] != t.params[k] for k in t.params) == 1 for t in older)
    # Resuming: a fresh sampler proposes for the next trial what the first one would.
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)
    frozen.number = len(trials)
    again = nas_algorithms.RegularizedEvolutionSampler(SPACE, 4, 2, seed=0)
    space = sampler.infer_relative_search_space(study, frozen)
    assert sampler.sample_relative(study, frozen, space) == again.sample_relative(
        study, frozen, space)


def _slot_trial(study: optuna.Study, source: optuna.trial.FrozenTrial, state) -> None:
    """Adds a copy of `source` (its slot, params and score) to `study` in `state`."""
    done = state == optuna.trial.TrialState.COMPLETE
    study.add_trial(optuna.trial.create_trial(
        state=state, params=source.params if done else None,
        distributions=source.distributions if done else None,
        value=source.value if done else None,
        user_attrs={"slot": source.number, **(source.user_attrs if done else {})}))


def _proposal(sampler, study: optuna.Study, slot: int) -> dict:
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                       user_attrs={"slot": slot})  # fmt: skip
    return sampler.sample_relative(study, frozen, sampler.infer_relative_search_space(
        study, frozen))


def test_evolution_with_a_lag_ignores_completion_order_and_younger_slots():
    sampler = nas_algorithms.RegularizedEvolutionSampler(SPACE, population=3, sample_size=2,
                                                         seed=1, lag=2)  # fmt: skip
    history = _history(sampler, 9).trials  # slots 0-8, one at a time
    ordered = optuna.create_study(direction="maximize")
    for trial in history:
        _slot_trial(ordered, trial, optuna.trial.TrialState.COMPLETE)
    in_order = _proposal(sampler, ordered, 9)
    # Another run: the slots finished in another order, and slot 8 (younger than 9 - lag)
    # still runs on another worker. The proposal for slot 9 is the same.
    shuffled = optuna.create_study(direction="maximize")
    for trial in [history[i] for i in (2, 0, 1, 5, 3, 7, 4, 6)]:
        _slot_trial(shuffled, trial, optuna.trial.TrialState.COMPLETE)
    _slot_trial(shuffled, history[8], optuna.trial.TrialState.RUNNING)
    assert _proposal(sampler, shuffled, 9) == in_order
    population = [nas_algorithms.slot_of(t) for t in sampler.population(shuffled, 9)]
    assert population == [5, 6, 7]  # the youngest 3 of slots <= 9 - 2
    # Without the lag (as before), slot 8's result would be in the population.
    lag_one = nas_algorithms.RegularizedEvolutionSampler(SPACE, 3, 2, seed=1, lag=1)
    assert [nas_algorithms.slot_of(t) for t in lag_one.population(ordered, 9)] == [6, 7, 8]


def test_evolution_waits_for_the_slots_it_needs_then_proposes_as_if_they_had_finished():
    sampler = nas_algorithms.RegularizedEvolutionSampler(SPACE, population=2, sample_size=1,
                                                         seed=0, lag=1)  # fmt: skip
    history = _history(sampler, 3).trials
    settled = _copy_of(history)
    settled.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"slot": 3, "error": "out of memory"}))
    expected = _proposal(sampler, settled, 4)
    study = _copy_of(history)
    running = _running_elsewhere(study, slot=3)

    def finish() -> None:  # the other worker's slot 3 fails with a recorded error
        time.sleep(1.0)
        running.set_user_attr("error", "out of memory")
        study.tell(running, state=optuna.trial.TrialState.FAIL)

    finisher = threading.Thread(target=finish)
    started = time.monotonic()
    finisher.start()
    proposal = _proposal(sampler, study, 4)
    finisher.join()
    assert time.monotonic() - started >= 1.0 and proposal == expected


def test_evolution_stops_waiting_after_max_wait_and_uses_what_finished(caplog):
    sampler = nas_algorithms.RegularizedEvolutionSampler(SPACE, population=2, sample_size=1,
                                                         seed=0, lag=1, max_wait_s=0.5)
    study = _copy_of(_history(sampler, 3).trials)
    _running_elsewhere(study, slot=3)  # never finishes
    fallback = nas_algorithms.RegularizedEvolutionSampler(SPACE, 2, 1, seed=0, lag=2)
    assert _proposal(sampler, study, 4) == _proposal(fallback, study, 4)
    assert "depends on timing" in caplog.text


def _running_elsewhere(study: optuna.Study, slot: int) -> optuna.Trial:
    """A trial of `slot` that another worker is running."""
    trial = study.ask()
    trial.set_user_attr("slot", slot)
    return trial


def _copy_of(trials) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        _slot_trial(study, trial, optuna.trial.TrialState.COMPLETE)
    return study


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_a_resumed_sampler_does_not_replay_its_first_proposals(algorithm):
    def make():
        return nas_algorithms.make_sampler(algorithm, SPACE, seed=3, population=2,
                                           sample_size=1)  # fmt: skip

    study = _history(make(), 4)
    resumed = optuna.load_study(study_name=study.study_name, storage=study._storage,
                                sampler=make())  # a new process after a kill
    _history(None, 4, resumed)
    keys = [tuple(sorted(t.params.items())) for t in resumed.trials]
    assert len(set(keys)) == 8


def test_blocks_from_accepts_nas_and_grid_results_and_refuses_anything_else(tmp_path):
    nas = tmp_path / "nas.json"
    nas.write_text(json.dumps({"kind": "nas", "chosen": {"blocks": list(B0_BLOCK_STRINGS[:2])}}))
    assert read_baseline(nas) == B0_BLOCK_STRINGS[:2]
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"best": {}, "blocks": list(B0_BLOCK_STRINGS)}))
    assert read_baseline(grid) == B0_BLOCK_STRINGS
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(ValueError, match="is not a NAS or grid result"):
        read_baseline(other)
    unfinished = tmp_path / "unfinished.json"
    unfinished.write_text(json.dumps({"kind": "nas", "chosen": None}))
    with pytest.raises(ValueError, match="chose no architecture"):
        read_baseline(unfinished)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_baseline(tmp_path / "missing.json")


def test_evolution_lag_defaults_to_twice_the_workers_less_one_and_refuses_zero():
    search = NasConfig().search
    assert [search.lag_for(w) for w in (1, 2, 4)] == [1, 3, 7]  # benchmarks/evolution_lag.py
    chosen = config_lib.from_dict(NasConfig, {"search": {"evolution_lag": 2}}).search
    assert chosen.lag_for(4) == 2
    with pytest.raises(config_lib.ConfigError, match="evolution_lag must be >= 1"):
        config_lib.from_dict(NasConfig, {"search": {"evolution_lag": 0}})
