"""The proxy trainer: validation passes inside an epoch, and stopping where a pruner says."""

from __future__ import annotations

import contextlib
import io

import optuna
import pytest
import tensorflow as tf
from optuna.trial import TrialState

from efficientnet_search import data
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.grid import plan, results, worker
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.proxy.config import ProxyConfig
from tests.paths import CONFIGS

TINY_BLOCKS = ("r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e6_i16_o24_se0.25")


@pytest.fixture(scope="module")
def splits():
    return data.synthetic_splits(num_classes=3, image_size=32, n_train=96, n_val=32, n_test=8,
                                 seed=0)  # fmt: skip


def _config(**overrides) -> ProxyConfig:
    settings = dict(blocks=TINY_BLOCKS, epochs=2, base_resolution=32)
    return ProxyConfig(**{**settings, **overrides})


BATCH_16 = DataConfig(source="synthetic", batch_size=16)


def _train(config, splits, report=None) -> proxy.ProxyResult:
    return proxy.train_proxy(config, splits, alpha=1.0, beta=1.0, gamma=1.0, seed=3,
                             data=BATCH_16, report=report)  # fmt: skip


def test_passes_inside_an_epoch_are_reported_and_do_not_change_training(splits):
    once = _train(_config(), splits)
    seen: list[tuple[int, float]] = []
    thrice = _train(_config(evals_per_epoch=3), splits,
                    report=lambda step, acc: seen.append((step, acc)) and False)
    # 96 images at batch 16: 6 steps an epoch, passes after steps 2, 4 and at the epoch end.
    assert [epochs for epochs, _ in thrice.curve] == [0.3333, 0.6667, 1.0, 1.3333, 1.6667, 2.0]
    assert [step for step, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert thrice.epoch_accuracies == once.epoch_accuracies
    assert [acc for _, acc in thrice.curve][2::3] == list(once.epoch_accuracies)


def test_a_report_that_says_stop_ends_training_inside_the_epoch(splits):
    result = _train(_config(evals_per_epoch=3), splits, report=lambda step, acc: step == 2)
    assert result.stopped_early
    assert [epochs for epochs, _ in result.curve] == [0.3333, 0.6667]
    assert result.epoch_accuracies == ()


def test_unlisted_passes_inside_an_epoch_are_skipped(splits):
    seen: list[int] = []
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # a log file: one progress line per epoch
        result = proxy.train_proxy(_config(evals_per_epoch=3), splits, alpha=1.0, beta=1.0,
                                   gamma=1.0, seed=3, data=BATCH_16, passes={2}, verbose=1,
                                   report=lambda step, acc: seen.append(step) and False)
    assert seen == [2, 3, 6]  # pass 2 asked for, epoch ends always
    assert [epochs for epochs, _ in result.curve] == [0.6667, 1.0, 2.0]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert sum("loss" in line for line in log.getvalue().splitlines()) == 2  # epochs=2


def test_more_passes_than_steps_is_refused(splits):
    with pytest.raises(ValueError, match=r"evals_per_epoch \(8\) exceeds the 6 training steps"):
        _train(_config(evals_per_epoch=8), splits)


class _PruneAtSecondPass(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.last_step == 2


def test_a_pruned_grid_trial_records_its_curve_and_the_epochs_it_trained(splits, tmp_path):
    config = grid.load_grid_config(str(CONFIGS / "grid" / "smoke.yaml"), [
        f"proxy.blocks=[{', '.join(TINY_BLOCKS)}]", "data.batch_size=16", "proxy.epochs=2",
        "proxy.evals_per_epoch=3", "search.pruner=successive_halving"], None)  # fmt: skip
    study = optuna.create_study(direction="maximize", pruner=_PruneAtSecondPass())
    study.enqueue_trial({"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "seed": 0},
                        {"candidate": "a1.00_b1.00_g1.00", "alpha": 1.0, "beta": 1.0,
                         "gamma": 1.0, "seed": 0})  # fmt: skip
    worker.train_trial(config, study, study.ask(), splits)
    (frozen,) = study.get_trials()
    record = results.trial_record(frozen)
    assert record["state"] == TrialState.PRUNED.name
    assert record["epochs"] == pytest.approx(2 / 3, abs=1e-3)
    assert record["val_accuracy"] == record["curve"][-1][1]
    assert sorted(frozen.intermediate_values) == [1, 2]


@pytest.mark.parametrize(
    ("min_epochs", "evals_per_epoch", "pruner", "expected"),
    [(1.0, 1, "successive_halving", 1), (1 / 3, 3, "successive_halving", 1),
     (1.0, 3, "hyperband", 3), (0.5, 4, "successive_halving", 2)],
)
def test_the_first_rung_is_given_in_epochs(min_epochs, evals_per_epoch, pruner, expected):
    search = grid.SearchConfig(pruner=pruner, pruner_min_epochs=min_epochs)
    proxy_config = _config(evals_per_epoch=evals_per_epoch, epochs=3)
    made = plan.make_pruner(search, proxy_config)
    first = _first_pruned_steps(made, proxy_config.evaluations)
    # Weak trials go on until the first rung and some stop exactly there (with Hyperband,
    # those in its most aggressive bracket; the others at later rungs).
    assert min(first) == expected, first


def _first_pruned_steps(pruner, steps: int, trials: int = 12) -> list[int]:
    """The pass at which each weak trial is first pruned, behind strong ones (public API)."""
    study = optuna.create_study(study_name="rungs", direction="maximize", pruner=pruner)
    pruned_at = []
    for number in range(trials):
        strong = number % 2 == 0
        trial = study.ask()
        for step in range(1, steps + 1):
            trial.report(1.0 if strong else 0.0, step)
            if trial.should_prune():
                pruned_at.append(step)
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, 1.0 if strong else 0.0)
    return pruned_at


def test_v2_baseline_proxy_builds_and_counts_fused_blocks():
    # A grid over a V2 baseline: the proxy takes V2 rules (stem from the first stage, no
    # 10% rounding guard) and both cost routes count its Fused-MBConv stages alike.
    from efficientnet_search.arch.blocks import V2_BASE_BLOCK_STRINGS
    from efficientnet_search.arch.cost import model_cost, spec_cost
    from efficientnet_search.arch.model import build_model
    from efficientnet_search.search.proxy.config import ProxyConfig

    proxy = ProxyConfig(blocks=V2_BASE_BLOCK_STRINGS)
    spec = proxy.spec(1.2, 1.1, 1.15, num_classes=10)
    assert spec.family == "v2" and spec.blocks[0].fused
    model = build_model(spec=spec)
    assert {"block1a_project_activation", "block2a_expand_conv", "block4a_dwconv2"} <= {
        layer.name for layer in model.layers}
    built, counted = model_cost(model), spec_cost(spec)
    assert built.macs == counted.macs and built.trainable_params == counted.trainable_params
    assert 1.3 < proxy.macs_ratio(1.2, 1.1, 1.15, num_classes=10) < 3.0


def test_threads_asked_after_tensorflow_started_warn_instead_of_failing_the_search():
    tf.constant(1.0) + 1.0  # TensorFlow's context now exists in this process
    current = tf.config.threading.get_intra_op_parallelism_threads()
    proxy.configure_threads(current + 3)  # a search's `threads`, too late to apply
    assert tf.config.threading.get_intra_op_parallelism_threads() == current


def test_a_few_step_training_runs_eagerly_with_the_graphs_results(splits, monkeypatch):
    """6 steps (1 epoch) are under EAGER_BELOW_STEPS: no tracing, the same training."""
    import keras

    modes = []
    original = keras.Model.fit

    def spy(model, *args, **kwargs):
        modes.append(model.run_eagerly)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    eager = _train(_config(epochs=1), splits)
    monkeypatch.setattr(proxy, "EAGER_BELOW_STEPS", 0)
    graph = _train(_config(epochs=1), splits)
    assert modes == [True, False]
    assert eager.epoch_accuracies == pytest.approx(graph.epoch_accuracies, abs=1e-6)
