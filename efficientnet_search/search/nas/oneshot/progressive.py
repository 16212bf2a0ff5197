"""Progressive shrinking (Once-for-All, Cai et al. 2020, Section 3.2): the supernet's steps
in phases, from the largest network alone to the whole space, one kind of choice at a time.

OFA trains the full network first, then makes the kernel elastic, then the depth, then the
width (expansion), so that small subnets are fine-tuned from weights the large ones already
learned instead of all competing from the start. Here the steps are split evenly over
`PHASES` (OFA's own schedule gives the phases unequal epochs; an even split keeps one
config key): in phase `largest` each step trains only the largest network; in every later
phase the sandwich (largest, smallest, random; train.py) draws each subnet uniformly, but
the choices not yet elastic stay at their largest value, and "smallest" means smallest in
the elastic choices only. Width covers everything channel-wise in this space: expansion,
squeeze-excitation and output channels. The input resolution is elastic from phase
`kernel` on (OFA samples it throughout; the largest-only phase keeps the largest side).

The phase of step n depends only on n and the total steps, so a resumed run continues in
the phase it was killed in.
"""

from __future__ import annotations

import random
from typing import Any

from efficientnet_search.search.nas.oneshot.elastic import RESOLUTION, ElasticSpace

PHASES = ("largest", "kernel", "depth", "width")
# The choices of the NAS space (search/nas/space.py CHOICES) elastic in each phase.
ELASTIC = {
    "largest": (),
    "kernel": ("kernel",),
    "depth": ("kernel", "repeats"),
    "width": ("kernel", "repeats", "expand", "se", "filters"),
}


def phase_at(step: int, total_steps: int) -> str:
    """The phase of step `step` (0-based) of `total_steps`, the steps split evenly."""
    return PHASES[min(len(PHASES) - 1, step * len(PHASES) // max(1, total_steps))]


def restrict(elastic: ElasticSpace, params: dict[str, Any], phase: str) -> dict[str, Any]:
    """`params` with every choice not elastic in `phase` set to the largest network's."""
    largest = elastic.largest()
    keep = ELASTIC[phase]
    out = {name: (value if name.split("_", 1)[1] in keep else largest[name])
           for name, value in params.items() if name != RESOLUTION}  # fmt: skip
    out[RESOLUTION] = params[RESOLUTION] if phase != "largest" else largest[RESOLUTION]
    return out


def sandwich(elastic: ElasticSpace, rng: random.Random, random_subnets: int,
             phase: str) -> list[dict[str, Any]]:
    """The subnets of one step in `phase`: the largest alone in phase `largest`, else the
    largest, the smallest in the elastic choices and `random_subnets` drawn ones."""
    if phase == "largest":
        return [elastic.largest()]
    return [elastic.largest(), restrict(elastic, elastic.smallest(), phase),
            *(restrict(elastic, elastic.sample(rng), phase)
              for _ in range(random_subnets))]  # fmt: skip
