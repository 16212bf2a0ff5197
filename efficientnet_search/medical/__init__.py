"""Medical fine-tuning: transfer from a backbone, clinical metrics, Grad-CAM and the report."""
