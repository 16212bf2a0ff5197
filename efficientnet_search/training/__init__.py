"""Training one model: distribution strategy and precision, the recipe, the loop, evaluation."""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter
