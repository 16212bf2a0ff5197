"""How much waiting evolution's lag costs: a simulation of W workers on a slot queue.

    python benchmarks/evolution_lag.py [--trials 400] [--shortest 10] [--longest 30]

Regularized evolution proposes slot n from slots <= n - lag and waits until those have
finished (nas_algorithms). Workers take slots in order, as the NAS queue hands them out, and
trials last a uniform random time between --shortest and --longest seconds (the quick NAS
config's trials take 10-30 s on 2 CPU cores). Prints, per worker count and lag, the extra wall
time over workers that never wait (the behaviour before the lag, which gave a different search
every run), averaged over 20 draws. The default lag (nas_config: 2 x workers - 1) is chosen from
this table.
"""

from __future__ import annotations

import argparse
import random
import statistics


def makespan(durations: list[float], workers: int, lag: int | None) -> float:
    """Wall time of the queue; lag None: nobody waits for earlier slots."""
    ends = [0.0] * len(durations)
    free = [0.0] * workers
    for slot, duration in enumerate(durations):
        worker = min(range(workers), key=free.__getitem__)
        start = free[worker]
        if lag is not None and slot - lag >= 0:
            start = max(start, max(ends[: slot - lag + 1]))
        ends[slot] = free[worker] = start + duration
    return max(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--shortest", type=float, default=10.0)
    parser.add_argument("--longest", type=float, default=30.0)
    args = parser.parse_args()
    print(f"{'workers':>7} {'lag':>4} {'extra wall time':>16}")
    for workers in (2, 4, 8):
        for lag in sorted({workers, workers + 1, 2 * workers - 1, 2 * workers}):
            extra = []
            for draw in range(20):
                rng = random.Random(draw)
                durations = [rng.uniform(args.shortest, args.longest)
                             for _ in range(args.trials)]  # fmt: skip
                free = makespan(durations, workers, None)
                extra.append(makespan(durations, workers, lag) / free - 1)
            print(f"{workers:>7} {lag:>4} {100 * statistics.mean(extra):>15.1f}%")


if __name__ == "__main__":
    main()
