"""The scaling grid scored from a weight-sharing supernet (issue 30 item 5)."""
