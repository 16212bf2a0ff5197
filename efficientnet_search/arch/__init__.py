"""Architectures as data: block strings, scaling rules, Keras layers and models, cost, weights.

Knows nothing of data, training or search (checked by tests/test_layers.py).
"""
