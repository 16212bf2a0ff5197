"""Searches over Optuna studies: the compound-scaling grid (`grid`), shared study plumbing
(`study`), the proxy trainer (`proxy`) and the noise-aware summary (`results`)."""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter
