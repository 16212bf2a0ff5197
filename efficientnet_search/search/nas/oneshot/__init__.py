"""One-shot architecture search: a weight-sharing supernet trained once, subnets scored many."""
