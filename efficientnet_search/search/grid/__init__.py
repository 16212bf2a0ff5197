"""The compound-scaling grid search (`run.run_grid_search`): config, plan, measured costs,
halving rungs, worker, results, equal-cost reading, report, and `verify` at larger phi."""
