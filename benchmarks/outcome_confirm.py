"""The outcome test again on fresh seeds: does a finished one-shot run's verdict hold up?

    python benchmarks/outcome_confirm.py --run_dir runs/os_quick --first_seed 3 --seeds 5

A one-shot run's outcome test (oneshot/outcome.py) retrains the chosen network, the baseline
and random search's best with seeds 0, 1, ... and judges the chosen one against each. That
verdict was read off the seeds that produced it; a claim built on it needs a confirmation
decided before it runs: the same three networks, the run's own recipe and data, new seeds
only (`--first_seed` past the run's), judged by the same rule and margin. Adding seeds to
the run's own and re-judging would not do: it stops when the answer looks right.

Each training is one row of RUN/outcome_confirm.csv (resumed: nothing trains twice); the
verdicts on the new seeds alone go to `--out` (default RUN/outcome_confirm.json) and are
printed. Nothing else in the run directory changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def named_networks(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The outcome test's networks of a run's results.json, as `outcome.outcome` takes them."""
    section = results.get("outcome")
    if not section:
        raise ValueError("its results.json has no outcome test (oneshot.outcome_seeds was 0); "
                         "run the one-shot search with outcome_seeds >= 3 first")
    return {name: {**network, "score": results.get(name, {}).get("score", float("nan"))}
            for name, network in section["networks"].items()}  # fmt: skip


def confirm(run_dir: Path, first_seed: int | None, seeds: int) -> dict[str, Any]:
    """Trains the run's outcome networks on seeds `first_seed`... (None: the first after the
    run's own) and judges them."""
    from efficientnet_search import data as data_lib
    from efficientnet_search.search.nas.oneshot import calibration, outcome
    from efficientnet_search.search.nas.oneshot.run import load_oneshot_config

    results = json.loads((run_dir / "results.json").read_text())
    named = named_networks(results)
    config = load_oneshot_config(str(run_dir / "config.yaml"), [], None)
    earlier = results["outcome"]["seeds"]
    first_seed = earlier if first_seed is None else first_seed
    if first_seed < earlier:
        raise ValueError(f"--first_seed {first_seed} reuses the run's own seeds 0-{earlier - 1}"
                         f"; give --first_seed {earlier} or more")  # fmt: skip
    splits = data_lib.load(config.data, seed=config.oneshot.seed)
    accuracies = calibration.train_standalone(
        outcome.distinct(named), config.proxy, splits, config.data, seeds,
        run_dir / "outcome_confirm.csv", label="confirm", first_seed=first_seed)
    judged = outcome.outcome(named, accuracies, config.oneshot.noninferiority_margin)
    return {"run_dir": str(run_dir), "run_statement": results["outcome"]["statement"],
            **judged, "fresh_seeds": list(range(first_seed, first_seed + seeds))}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="a finished one-shot run")
    parser.add_argument("--first_seed", type=int, default=None,
                        help="the first fresh seed (default: the one after the run's "
                        "outcome seeds)")
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds a network (>= 3)")
    parser.add_argument("--out", default=None, help="default RUN/outcome_confirm.json")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "results.json").exists():
        print(f"--run_dir {run_dir}: no results.json; give a finished one-shot run")
        sys.exit(2)
    if args.seeds < 3:
        print(f"--seeds {args.seeds}: the test needs >= 3 seeds a network; raise it")
        sys.exit(2)
    try:
        confirmed = confirm(run_dir, args.first_seed, args.seeds)
    except ValueError as err:
        print(f"--run_dir {run_dir}: {err}")
        sys.exit(2)
    out = Path(args.out) if args.out else run_dir / "outcome_confirm.json"
    out.write_text(json.dumps(confirmed, indent=1) + "\n")
    print(f"the run's own seeds: {confirmed['run_statement']}")
    print(f"fresh seeds {confirmed['fresh_seeds']}: {confirmed['statement']}")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
