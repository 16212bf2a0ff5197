"""A trained supernet's ranking against the reference table, without retraining (issue 30,
items 6 and 7): Spearman and Kendall between supernet score and the table's seed means,
with intervals, beside MACs and params alone and beside the table's own seed-to-seed
ceiling.

    python benchmarks/oneshot_vs_table.py --run_dir RUN \
        --table benchmarks/reference_table_quick.csv [--out FILE.json]

RUN is a one-shot run whose supernet is trained (`oneshot --config configs/nas/
oneshot_quick.yaml`: the table's space, proxy and data). Its checkpoint is copied to a
scratch directory, so RUN is only read. Every complete architecture of the table is scored
as the run scores (BN recalibrated on the run's fixed subset, then its validation images;
`prepare.py`) at the table's resolution; `ranking.compare` gives the correlations and the
paired gain of the supernet over the better of MACs and params (a finding only if its
interval lies above 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def require_trained_run(run: Path) -> None:
    """Exits 2 with one line unless `run` holds a one-shot run with a trained supernet."""
    if not (run / "config.yaml").exists() or not (run / "supernet").is_dir():
        print(f"--run_dir {run} holds no trained one-shot run (config.yaml and supernet/); "
              "give the run directory of a finished `efficientnet-search oneshot`")
        sys.exit(2)


@contextlib.contextmanager
def trained_run(run: Path) -> Iterator[tuple[Any, Any]]:
    """A finished run's config and its prepared supernet and scorer (`prepare.py`), built on
    a scratch copy of its checkpoint, so RUN is only read; the copy goes on exit."""
    from efficientnet_search.search.nas.oneshot.prepare import prepare
    from efficientnet_search.search.nas.oneshot.run import load_oneshot_config
    from efficientnet_search.search.proxy.trainer import configure_threads

    config = load_oneshot_config(str(run / "config.yaml"), [], None)
    configure_threads(config.oneshot.threads)
    with tempfile.TemporaryDirectory(prefix="oneshot_run_copy_") as scratch:
        shutil.copytree(run / "supernet", Path(scratch) / "supernet")
        yield config, prepare(config, scratch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--table", default="benchmarks/reference_table_quick.csv")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    require_trained_run(run)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
    from benchmarks.lookup_search import read_table
    from efficientnet_search.search.nas.oneshot import ranking
    from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION

    table = read_table(args.table)
    with trained_run(run) as (config, prepared):
        resolution = config.proxy.base_resolution
        records = [prepared.scorer.score({**t["choices"], RESOLUTION: resolution})
                   for t in table]  # fmt: skip
    truth = [sum(t["accuracy"]) / len(t["accuracy"]) for t in table]
    comparison = ranking.compare(truth, {
        "supernet": [r["score"] for r in records], "macs": [r["macs"] for r in records],
        "params": [r["params"] for r in records]}, samples=args.bootstrap)  # fmt: skip
    side = Path(args.table).with_suffix(".json")
    ceiling = json.loads(side.read_text())["summary"] if side.exists() else {}
    out = {"run_dir": str(run), "table": args.table, "architectures": len(table),
           "comparison": comparison,
           "seed_to_seed_spearman": ceiling.get("seed_to_seed_spearman"),
           "seed_to_seed_spearman_ci": ceiling.get("seed_to_seed_spearman_ci")}  # fmt: skip
    for name, p in comparison["predictors"].items():
        print(f"{name:>9}: Spearman {p['spearman']:+.2f} [{p['spearman_ci'][0]:+.2f}, "
              f"{p['spearman_ci'][1]:+.2f}], Kendall {p['kendall']:+.2f} "
              f"[{p['kendall_ci'][0]:+.2f}, {p['kendall_ci'][1]:+.2f}]")
    gain = comparison["supernet_minus_cost"]
    print(f"supernet - best of MACs/params: {gain['gain']:+.2f} [{gain['ci'][0]:+.2f}, "
          f"{gain['ci'][1]:+.2f}]: {'a finding' if gain['finding'] else 'not a finding'}")
    if out["seed_to_seed_spearman"] is not None:
        low, high = out["seed_to_seed_spearman_ci"]
        print(f"ceiling (the table's seed 0 vs seed 1): Spearman "
              f"{out['seed_to_seed_spearman']:+.2f} [{low:+.2f}, {high:+.2f}]")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
