"""One short training of a candidate network: its config (`config`), the trainer (`trainer`),
the model and data caches, validation passes and latency timing. Knows no grid or NAS."""
