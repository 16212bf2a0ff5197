"""Architectures as data: block strings, scaling rules, Keras layers and models, cost, weights.

Knows nothing of data, training or search (checked by tests/test_layers.py).
"""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter
