"""Where a trained supernet works and where it does not: its scores by kind of subnet.

    python benchmarks/supernet_probe.py --run_dir RUN [--draws 4] [--out FILE.json]

The sandwich rule trains the largest and the smallest subnet at every step and a few random
ones beside them (BigNAS). A supernet whose random subnets score near chance ranks nothing,
however well its extremes do. This probe scores, as the run scores (BN recalibrated on the
run's fixed subset, then its validation images; `prepare.py`), on a copy of RUN's checkpoint:

* the largest and the smallest subnet, and `--draws` random ones (drawn as the search draws);
* for each kind of choice of the space (kernel, expansion, SE, repeats, filters, ...), the
  largest and the smallest subnet with only that kind drawn at random, `--draws` times:
  the kind whose mixing breaks the scores is where weight sharing has not been learned.

RUN is only read. The table is printed and, with `--out`, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any


def kinds(params: dict[str, Any]) -> list[str]:
    """The kinds of choice in a subnet's parameters (`stage3_kernel` -> `kernel`)."""
    from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION

    return sorted({k.split("_", 1)[1] for k in params if k != RESOLUTION and "_" in k})


def probe(elastic, measure, draws: int, seed: int = 0) -> dict[str, Any]:
    """Scores by kind of subnet; `measure(params)` scores one subnet."""
    largest, smallest = elastic.largest(), elastic.smallest()
    rng = random.Random(seed)
    out: dict[str, Any] = {"largest": measure(largest), "smallest": measure(smallest),
                           "random": [measure(elastic.sample(rng)) for _ in range(draws)],
                           "one_kind_random": {}}  # fmt: skip
    for kind in kinds(largest):
        row = {}
        for name, base in (("largest", largest), ("smallest", smallest)):
            scores = []
            for _ in range(draws):
                drawn = elastic.sample(rng)
                scores.append(measure({k: drawn[k] if k.endswith("_" + kind) else v
                                       for k, v in base.items()}))  # fmt: skip
            row[name] = scores
        out["one_kind_random"][kind] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="a one-shot run with a trained supernet")
    parser.add_argument("--draws", type=int, default=4, help="random subnets a row (>= 1)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.draws < 1:
        print(f"--draws {args.draws}: give 1 or more")
        sys.exit(2)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
    from benchmarks.oneshot_vs_table import require_trained_run, trained_run

    run = Path(args.run_dir)
    require_trained_run(run)
    with trained_run(run) as (_, prepared):
        result = probe(prepared.elastic, lambda p: prepared.scorer.measure(p)["score"],
                       args.draws)  # fmt: skip
    print(f"{run}: scores (BN-recalibrated validation accuracy) by kind of subnet")
    print(f"  largest {result['largest']:.3f}   smallest {result['smallest']:.3f}   random "
          + " ".join(f"{s:.3f}" for s in result["random"]))
    for kind, row in result["one_kind_random"].items():
        print(f"  only {kind:>8} drawn:  from the largest "
              + " ".join(f"{s:.3f}" for s in row["largest"]) + "   from the smallest "
              + " ".join(f"{s:.3f}" for s in row["smallest"]))
    if args.out:
        Path(args.out).write_text(json.dumps({"run_dir": str(run), **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
