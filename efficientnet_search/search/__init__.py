"""Searches over Optuna studies: the compound-scaling grid (`grid`), shared study plumbing
(`study`), the proxy trainer (`proxy`) and the noise-aware summary (`results`)."""
