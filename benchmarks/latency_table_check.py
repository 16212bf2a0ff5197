"""Does the one-shot search's latency table add up to whole-network time? (not a test)

The latency cost of the one-shot search (`search/nas/oneshot/latency_table.py`, Once-for-All's
lookup table) is a sum of per-piece times measured once, with the per-call overhead of an
empty network counted once. This times `--networks` subnets of a config's elastic space (its
smallest, its largest and random ones) both ways on this machine, and prints for each its
multiply-adds, the table's latency, the raw sum of its pieces (no overhead correction), its
whole-network time and the two relative errors, then the median errors, the Spearman of table
and whole, and the load average (an idle machine reads about its core count or less).

    python benchmarks/latency_table_check.py                       # oneshot_quick's space
    python benchmarks/latency_table_check.py --networks 10 --table_dir /tmp/quick_table
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from efficientnet_search.arch.cost import spec_cost  # noqa: E402
from efficientnet_search.search.nas.oneshot import latency_table as latency_lib  # noqa: E402
from efficientnet_search.search.nas.oneshot.run import check, load_oneshot_config  # noqa: E402
from efficientnet_search.search.proxy.trainer import configure_threads  # noqa: E402
from efficientnet_search.tables import format_table  # noqa: E402
from efficientnet_search.training.latency import device_name  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIGS / "nas" / "oneshot_quick.yaml"))
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                        help="config overrides, as on the command line")
    parser.add_argument("--networks", type=int, default=6,
                        help="networks timed both ways: the smallest, the largest, the rest "
                             "drawn at random (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="draws the random networks")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--table_dir", help="the folder of the table's latency_table.csv "
                                            "(default: a fresh temporary folder; an existing "
                                            "table is read, its pieces not timed again)")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.networks < 2:
        parser.error(f"--networks {args.networks}: give 2 or more (the smallest and largest)")

    config = load_oneshot_config(args.config, [*args.set, "oneshot.latency_table=true"], None)
    configure_threads(config.oneshot.threads)
    elastic = check(config, args.num_classes)  # the run's own elastic space
    table = latency_lib.for_run(config, args.table_dir or tempfile.mkdtemp(), elastic)
    rng = random.Random(args.seed)
    chosen = [elastic.smallest(), elastic.largest(),
              *(elastic.sample(rng) for _ in range(args.networks - 2))]
    specs = [elastic.spec(elastic.blocks(p), p["resolution"]) for p in chosen]
    load_before = os.getloadavg()[0]
    checked = table.check(specs)
    load_after = os.getloadavg()[0]

    rows, figures = [], []
    for params, spec, row in zip(chosen, specs, checked["networks"], strict=True):
        raw = sum(table.entries[key] for key, _ in latency_lib.pieces(spec))
        figure = {"blocks": list(elastic.blocks(params)), "resolution": params["resolution"],
                  "macs": spec_cost(spec).macs, "table_ms": row["table_ms"],
                  "raw_sum_ms": raw, "whole_ms": row["whole_ms"], "error": row["error"],
                  "raw_error": raw / row["whole_ms"] - 1}  # fmt: skip
        figures.append(figure)
        rows.append([f"{figure['macs']:,}", params["resolution"], f"{row['table_ms']:.2f}",
                     f"{raw:.2f}", f"{row['whole_ms']:.2f}", f"{row['error']:+.0%}",
                     f"{figure['raw_error']:+.0%}"])  # fmt: skip
    settings = table.settings
    print(f"{len(specs)} networks of {args.config}'s space, batch {settings.batch_size}, "
          f"{settings.precision}, {len(table.entries)} pieces in the table "
          f"(the empty network's {table.entries[latency_lib.EMPTY]:.2f} ms counted once), on "
          f"{device_name()}")
    print(format_table(["MACs", "px", "table ms", "raw sum ms", "whole ms", "table error",
                        "raw-sum error"], rows))
    summary = {
        "median_abs_error": checked["median_abs_error"],
        "median_abs_raw_error": statistics.median(abs(f["raw_error"]) for f in figures),
        "spearman": checked["spearman"],  # nan below 3 networks
        "load_before": load_before, "load_after": load_after}  # fmt: skip
    print(f"median |error|: table {summary['median_abs_error']:.0%}, raw sum "
          f"{summary['median_abs_raw_error']:.0%}; Spearman of table and whole "
          f"{summary['spearman']:.2f}; load average {load_before:.2f} -> {load_after:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"networks": figures, **summary}, indent=1))


if __name__ == "__main__":
    main()
