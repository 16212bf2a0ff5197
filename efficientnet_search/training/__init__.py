"""Training one model: distribution strategy and precision, the recipe, the loop, evaluation."""
