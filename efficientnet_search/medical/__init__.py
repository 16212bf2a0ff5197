"""Medical fine-tuning: transfer from a backbone, clinical metrics, Grad-CAM and the report."""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter
