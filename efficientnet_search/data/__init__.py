"""Data: sources named by URI -> train/val/test splits -> batched tf.data pipelines.

Knows no model: the resolution comes from the caller. Modules: `config` (`DataConfig`, the
`data` section of every command, and `load(config, seed)`, the loader every command uses),
`records` (the table every reader returns), `sources` (URI dispatch, arrays, Fashion-MNIST,
MedMNIST), `files` (folders and CSV of image files), `tfds_reader`, `splits` (validation
carving, subsampling), `pipeline` (resize, augment, batch), `synthetic` (generated data for
tests and smoke runs).
"""

from __future__ import annotations

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before anything below loads it: no start-up chatter

from efficientnet_search.data.config import DataConfig, load  # noqa: E402
from efficientnet_search.data.splits import (  # noqa: E402
    ACCEPTED_URIS,
    AUGMENTS,
    EVAL_CROP_FRACTION,
    DataSplits,
    dataset_to_numpy,
    load_splits,
    make_pipeline,
    measure_throughput,
    synthetic_splits,
    write_csv,
    write_image_folder,
    write_npz,
)

__all__ = [
    "ACCEPTED_URIS", "AUGMENTS", "EVAL_CROP_FRACTION", "DataConfig", "DataSplits",
    "dataset_to_numpy", "load", "load_splits", "make_pipeline", "measure_throughput",
    "synthetic_splits", "write_csv", "write_image_folder", "write_npz",
]  # fmt: skip
