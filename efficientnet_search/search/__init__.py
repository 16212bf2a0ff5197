"""Searches over Optuna studies, one subpackage each, and what they share.

    trials/    the exactly-once Optuna queue, storages, heartbeats, local worker processes
    proxy/     one short training of a candidate: config, trainer, model and data caches
    stats.py   seed statistics: per-candidate means, pooled seed noise, the best set
    grid/      the compound-scaling grid search and `verify`
    nas/       the MnasNet-style architecture search of the baseline
    pipeline.py  the NAS, then the grid on its baseline, then the family

`grid` and `nas` never import each other, `trials` knows no search, `proxy` knows no grid
or NAS, and only `pipeline` composes searches (the contracts in .importlinter).
"""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter
