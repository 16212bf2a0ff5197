"""MnasNet-style architecture search of the baseline (`run.run_nas`): config, space, plan,
algorithms, objective, worker, results and report."""
