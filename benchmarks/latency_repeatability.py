"""How repeatable is the `latency` cost? One grid candidate timed in several runs (not a test).

The grid admits candidates by the ratio of their latency to the baseline's, so a latency that
moves by more than the grid's tolerance between two measurements would change the admitted
set. This builds the quick grid's proxy at a candidate (default the paper's point), measures
it `--runs` times the way the grid does (`training.latency.measure_latency`: warm-up calls,
then the median of timed calls), and prints each run's median, the run-to-run range relative
to the median of the medians, and the load average, which says whether the machine was idle.

    python benchmarks/latency_repeatability.py                       # quick grid, batch 128
    python benchmarks/latency_repeatability.py --runs 10 --candidate 1.0 1.0 1.0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from efficientnet_search import config as config_lib  # noqa: E402
from efficientnet_search.search.grid.config import GridConfig
from efficientnet_search.search.proxy.latency import time_spec
from efficientnet_search.search.proxy.trainer import configure_threads
from efficientnet_search.tables import format_table  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIGS / "grid" / "fashion_mnist_quick.yaml"))
    parser.add_argument("--candidate", type=float, nargs=3, default=(1.2, 1.1, 1.15),
                        metavar=("ALPHA", "BETA", "GAMMA"))
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, help="timed calls a run (default: the config's)")
    parser.add_argument("--min_seconds", type=float,
                        help="least timed duration a run (default: the config's)")
    parser.add_argument("--threads", type=int,
                        help="TensorFlow threads (default: the config's search.threads, as the "
                             "grid measures)")
    args = parser.parse_args()
    config = config_lib.load_config(GridConfig, args.config)
    configure_threads(args.threads or config.search.threads)
    latency = config.candidates.latency
    if args.repeats:
        latency = dataclasses.replace(latency, repeats=args.repeats)
    if args.min_seconds is not None:
        latency = dataclasses.replace(latency, min_seconds=args.min_seconds)
    batch = latency.batch_size or config.data.batch_size
    spec = config.proxy.spec(*args.candidate, num_classes=args.num_classes)
    rows, medians, fastest = [], [], []
    for run in range(1, args.runs + 1):
        measured = time_spec(latency, spec, batch)
        medians.append(measured.median_ms)
        fastest.append(measured.p10_ms)
        rows.append([run, measured.repeats, f"{measured.median_ms:.2f}", f"{measured.p10_ms:.2f}",
                     f"{measured.spread:.3f}", f"{os.getloadavg()[0]:.2f}"])
    print(f"candidate {tuple(args.candidate)} at {spec.scaling.resolution} px, batch {batch}, "
          f"{latency.precision}, {latency.warmup} warm-up + at least {latency.repeats} timed "
          f"calls and {latency.min_seconds:g} s a run, on {measured.device}")
    print(format_table(["run", "timed calls", "median ms", "p10 ms",
                        "call spread (p90-p10)/median", "load 1 min"], rows))
    for name, values in (("median", medians), ("p10", fastest)):
        middle = statistics.median(values)
        print(f"{name}: median over runs {middle:.2f} ms; run-to-run range "
              f"{(max(values) - min(values)) / middle:.1%} of it (max deviation from it "
              f"{max(abs(v - middle) for v in values) / middle:.1%})")


if __name__ == "__main__":
    main()
