"""One-shot architecture search: train a supernet once, score many subnets, check honestly.

    efficientnet-search oneshot --config configs/nas/oneshot_smoke.yaml --run_dir runs/os

1. The NAS space (`space`) of the baseline (`proxy.blocks`) at the proxy's base width and
   depth becomes an elastic supernet (elastic.py, supernet.py), trained with the sandwich
   rule and in-place distillation (train.py; checkpoints in RUN/supernet/, resumed).
2. Random search and regularized evolution (and, where configured, Optuna's TPE and NSGA-II:
   optuna_search.py) propose subnets; each is scored by the supernet
   after BN recalibration (scoring.py), cached, and recorded in RUN/scored.csv.
3. A calibration set spread over multiply-adds is trained stand-alone with the proxy's recipe
   (calibration.py, RUN/calibration.csv); the report compares the supernet's ranking with
   multiply-adds and params alone (ranking.py) and says "not a finding" where it is no better.
4. The outcome test (outcome.py, RUN/outcome.csv): the chosen network, the baseline and
   random search's best retrained stand-alone with `oneshot.outcome_seeds` seeds each; the
   chosen one beats each beyond seed noise, is non-inferior within the configured margin at
   lower measured MACs, or neither (results.json `outcome`, first in report.md).
5. RUN/results.json (`kind: nas`, `method: oneshot`, `chosen.blocks`: `grid --set
   proxy.blocks_from=RUN/results.json` takes it) and RUN/report.md.

Re-running the same command resumes every step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.search.nas.oneshot import calibration as calibration_lib
from efficientnet_search.search.nas.oneshot import latency_table as latency_lib
from efficientnet_search.search.nas.oneshot import outcome as outcome_lib
from efficientnet_search.search.nas.oneshot import plots as plots_lib
from efficientnet_search.search.nas.oneshot import ranking, replicas, spread
from efficientnet_search.search.nas.oneshot import report as report_lib
from efficientnet_search.search.nas.oneshot import search as search_lib
from efficientnet_search.search.nas.oneshot.config import OneShotConfig
from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, build_elastic
from efficientnet_search.search.nas.oneshot.honesty import calibration_ranking
from efficientnet_search.search.nas.oneshot.optuna_search import optuna_search
from efficientnet_search.search.nas.oneshot.scoring import costs
from efficientnet_search.search.nas.oneshot.zero_cost import synflow_scores


def check(config: OneShotConfig, num_classes: int = 10):
    """The elastic space of `config` (raises ConfigError on a baseline it cannot hold)."""
    return build_elastic(config.space, config.proxy.blocks, width=config.proxy.base_width,
                         depth=config.proxy.base_depth, resolutions=config.resolutions,
                         num_classes=num_classes, dropout=config.proxy.dropout)  # fmt: skip


def run_oneshot(config: OneShotConfig, run_dir: str | Path, *, workers: int = 1,
                storage: str | None = None) -> dict[str, Any]:
    """Runs (or resumes) the one-shot search of `config` in `run_dir`; returns results.
    With `workers` > 1 or a `storage`, the proposals that need no score are scored by worker
    processes through the shared queue (spread.py)."""
    from efficientnet_search.search.nas.oneshot.prepare import prepare
    from efficientnet_search.search.proxy.trainer import configure_threads

    run_dir = Path(run_dir)
    check(config)  # a bad baseline fails before anything is written
    spread.check_workers(workers, storage)
    if replicas.chief_task():  # a multi-worker strategy's other workers write nothing here
        config_lib.save_config(config, run_dir)
    section, start = config.oneshot, time.perf_counter()
    configure_threads(section.threads)
    prepared = prepare(config, run_dir)  # the strategy, data, supernet, trainer and scorer
    splits, elastic, net, scorer = (prepared.splits, prepared.elastic, prepared.net,
                                    prepared.scorer)  # fmt: skip
    losses = prepared.trainer.fit()
    trained = time.perf_counter()
    if not prepared.is_chief:  # trained its replicas' share; the chief scores and writes
        logging.info("oneshot: supernet trained; this worker is not the chief, done")
        return {}
    if workers > 1 or storage:
        spread.spread_scores(config, scorer, spread.independent_proposals(elastic, config),
                             run_dir, workers=workers, storage=storage,
                             threads=section.threads)  # fmt: skip
    objective = config.objective
    table = latency_lib.for_run(config, run_dir, elastic)  # None unless asked for
    score = latency_lib.with_latency(scorer.score, table, elastic)
    at = (config.proxy.blocks, config.proxy.base_resolution)  # the baseline's T
    base = (table.network_ms(elastic.spec(*at)) if objective.cost == "latency"
            else costs(elastic, *at)[objective.cost])
    fitness = search_lib.fitness_of(base * objective.target_ratio, objective.exponent,
                                    objective.cost)  # fmt: skip
    randoms = search_lib.random_search(elastic, score, section.random_trials,
                                       section.seed, fitness)  # fmt: skip
    evolved = search_lib.regularized_evolution(
        elastic, score, section.evolution_trials, section.seed, fitness,
        population=section.population, sample_size=section.sample_size)
    sampled = {name: optuna_search(elastic, score, trials, section.seed, fitness,
                                   algorithm=name, cost=objective.cost,
                                   population=section.population)
               for name, trials in (("tpe", section.tpe_trials), ("nsga2", section.nsga2_trials))
               if trials}  # fmt: skip
    baseline = score({**elastic.space.base_params(),
                             RESOLUTION: config.proxy.base_resolution})  # fmt: skip
    baseline = {**baseline, "fitness": fitness(baseline)}
    searched = time.perf_counter()
    # the fittest whichever search proposed it
    chosen = search_lib.best(randoms + evolved + [e for h in sampled.values() for e in h])
    picks = calibration_lib.spread_over_cost(list(scorer.records.values()),
                                             section.calibration_size)  # fmt: skip
    standalone = calibration_lib.train_standalone(
        picks, config.proxy, splits, config.data, section.calibration_seeds,
        run_dir / "calibration.csv")
    calibrated = time.perf_counter()
    retrained = retrain_outcome(config, splits, run_dir, {
        "chosen": chosen, "baseline": baseline, "random_best": search_lib.best(randoms)})
    outcome_seconds = time.perf_counter() - calibrated
    synflow = synflow_scores([elastic.spec(p["blocks"], p["resolution"]) for p in picks],
                             net.channels, section.seed)  # fmt: skip
    payload = _payload(config, elastic, scorer, chosen, search_lib.best(randoms),
                       search_lib.best(evolved) if evolved else None, baseline, picks,
                       standalone, losses, synflow)  # fmt: skip
    for name, history in sampled.items():
        payload[f"{name}_best"] = _keep(search_lib.best(history))
    payload["outcome"] = retrained
    entries = randoms + evolved + [e for h in sampled.values() for e in h]
    if table is not None:
        payload["latency_table"] = latency_lib.checked(table, elastic,
                                                       list(scorer.records.values()),
                                                       section.latency_check)  # fmt: skip
    payload["plots"] = plots_lib.write_plots(run_dir, payload, list(scorer.records.values()),
                                             entries)  # fmt: skip
    payload["seconds"] = {"supernet": round(trained - start, 1),
                          "search": round(searched - trained, 1),
                          "calibration": round(time.perf_counter() - searched
                                               - outcome_seconds, 1),
                          "outcome": round(outcome_seconds, 1)}
    write_json(run_dir / "results.json", payload)
    report_lib.write_report(run_dir / "report.md", payload)
    print(payload["verdict"])
    print(retrained["statement"] if retrained else outcome_lib.OFF)
    print(f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.md'}")
    return payload


def retrain_outcome(config: OneShotConfig, splits, run_dir: Path,
                    named: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The outcome test (outcome.py): the networks of `named` (chosen, baseline, random
    best) trained stand-alone, each once however many names it has, `oneshot.outcome_seeds`
    seeds each, into RUN/outcome.csv (resumed: nothing trained twice); None when off."""
    section = config.oneshot
    if not section.outcome_seeds:
        return None
    accuracies = calibration_lib.train_standalone(
        outcome_lib.distinct(named), config.proxy, splits, config.data, section.outcome_seeds,
        run_dir / "outcome.csv", label="outcome")
    return outcome_lib.outcome(named, accuracies, section.noninferiority_margin)


def _payload(config, elastic, scorer, chosen, random_best, evolution_best, baseline, picks,
             standalone, losses, synflow=None) -> dict[str, Any]:
    truth = [float(np.mean(standalone[p["key"]])) for p in picks]
    comparison = calibration_ranking(truth, picks, synflow, samples=config.oneshot.bootstrap,
                                     seed=config.oneshot.seed)  # fmt: skip
    finding = comparison["finding"]  # over all and within equal-MACs bins (honesty.py)
    if config.oneshot.calibration_seeds >= 2:  # the ceiling: stand-alone seed 0 vs seed 1
        first, second = ([standalone[p["key"]][s] for p in picks] for s in (0, 1))
        comparison["seed_to_seed"] = {
            "spearman": ranking.spearman(first, second),
            "spearman_ci": ranking.bootstrap(first, second, ranking.spearman,
                                             samples=config.oneshot.bootstrap)}  # fmt: skip

    return {
        "kind": "nas", "method": "oneshot",
        "verdict": (
            f"chosen (from {chosen['algorithm']} search): {' '.join(chosen['blocks'])} at "
            f"{chosen['resolution']} px, supernet "
            f"score {chosen['score']:.4f} at {chosen['macs'] / baseline['macs']:.2f}x the "
            f"baseline's MACs (baseline score {baseline['score']:.4f}). The supernet's "
            f"ranking {'beats' if finding else 'does not beat'} MACs/params alone on the "
            f"calibration set (over all and within equal-MACs bins): "
            f"{'a finding' if finding else 'not a finding'}."),
        "chosen": _keep(chosen), "baseline": _keep(baseline),
        "random_best": _keep(random_best), "evolution_best": _keep(evolution_best),
        "scored": len(scorer.records),
        "resolutions": list(elastic.resolutions),
        "supernet_loss": {"first": losses[0] if losses else None,
                          "last": losses[-1] if losses else None, "steps": len(losses)},
        "calibration": {"architectures": [
            {"blocks": p["blocks"], "resolution": p["resolution"], "supernet": p["score"],
             "macs": p["macs"], "params": p["params"], "standalone": standalone[p["key"]],
             "synflow": synflow[i] if synflow else None}
            for i, p in enumerate(picks)], "ranking": comparison, "finding": finding},
    }  # fmt: skip


def _keep(record):
    return record and {k: record[k] for k in ("algorithm", "blocks", "resolution", "score",
                                              "fitness", "macs", "params", "activations",
                                              "latency")
                       if k in record}  # fmt: skip


def load_oneshot_config(path: str, overrides: list[str], seed: int | None) -> OneShotConfig:
    """Reads a one-shot YAML with `--set` overrides; `--seed` overrides oneshot.seed."""
    if seed is not None:
        overrides = [*overrides, f"oneshot.seed={seed}"]
    config = config_lib.load_config(OneShotConfig, path, overrides)
    check(config)
    return config


def main(args) -> None:
    """CLI entry: `efficientnet-search oneshot` (see the module docstring)."""
    config = load_oneshot_config(args.config, list(args.set or []), getattr(args, "seed", None))
    logging.info("oneshot %s: %d resolution(s), supernet %d epochs", config.name,
                 len(config.resolutions), config.oneshot.train.epochs)  # fmt: skip
    run_oneshot(config, args.run_dir or str(Path("runs") / config.name),
                workers=1 if getattr(args, "workers", None) is None else args.workers,
                storage=getattr(args, "storage", None))
