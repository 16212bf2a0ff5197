"""A search's data, decoded and resized once per resolution, shared by its trials and workers.

Every grid trial reads the same seeded train/val split and resizes it to its candidate's
resolution; only a handful of resolutions occur. `ResizedSplits` resizes each split once per
resolution (`data.pipeline.resize_once`, the very resize `make_pipeline` applies) and hands
out splits already at that size, which `make_pipeline` passes through unchanged, so batches
and results are the same as resizing inside every trial (tested).

With a cache directory (the run directory's `cache/`), the resized arrays are written there as
`.npy` files and memory-mapped by every worker process, so a fresh process neither decodes the
source nor resizes: the first worker to need a resolution writes it (atomically: a temporary
file, then a rename), the others read it. The file names carry a digest of the data settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from efficientnet_search.data.records import array_table


@dataclasses.dataclass(frozen=True)
class _Meta:
    num_classes: int
    multi_label: bool
    channels: int
    class_names: tuple[str, ...]


class ResizedSplits:
    """Train/val splits at any resolution, each resized once (see the module docstring).

    Args:
      load: reads the original splits (a data.DataSplits); called at most once, and not at all
        when the cache directory already holds what is asked for.
      directory: where resized arrays are shared between processes (None: this process only).
      key: names this data set in `directory` (a digest of everything that chooses it).
      keep: keep resized arrays for later trials; False resizes for every trial (the
        behaviour without the speed-up, for measuring it).
    """

    def __init__(self, load: Callable[[], object], *, directory: Path | None = None,
                 key: str = "data", keep: bool = True) -> None:
        self._load = load
        self._source = None
        self._directory = Path(directory) if directory is not None else None
        self._key = key
        self._keep = keep
        self._meta: _Meta | None = None
        self._arrays: dict[int, dict[str, np.ndarray]] = {}

    def _original(self):
        if self._source is None:
            self._source = self._load()
            source = self._source
            self._meta = _Meta(source.num_classes, source.multi_label, source.channels,
                               tuple(source.class_names))  # fmt: skip
        return self._source

    @property
    def num_classes(self) -> int:
        return self._meta_now().num_classes

    def _meta_now(self) -> _Meta:
        if self._meta is None:
            path = self._path("meta", "json")
            if path is not None and path.exists():
                raw = json.loads(path.read_text())
                self._meta = _Meta(raw["num_classes"], raw["multi_label"], raw["channels"],
                                   tuple(raw["class_names"]))  # fmt: skip
            else:
                self._original()
        assert self._meta is not None
        return self._meta

    def get(self, resolution: int):
        """A data.DataSplits whose train and val images are `resolution` pixels square."""
        from efficientnet_search.data import DataSplits

        arrays = self._arrays.get(resolution) or self._read(resolution)
        if arrays is None:
            arrays = self._resize(resolution)
            self._write(resolution, arrays)
        if self._keep:
            self._arrays[resolution] = arrays
        meta = self._meta_now()
        return DataSplits(
            train=array_table(arrays["train_x"], arrays["train_y"]).to_dataset(None),
            val=array_table(arrays["val_x"], arrays["val_y"]).to_dataset(None),
            test=None, num_classes=meta.num_classes, multi_label=meta.multi_label,
            channels=meta.channels,
            sizes={"train": len(arrays["train_y"]), "val": len(arrays["val_y"]), "test": 0},
            class_names=meta.class_names,
        )  # fmt: skip

    def _resize(self, resolution: int) -> dict[str, np.ndarray]:
        from efficientnet_search.data.pipeline import dataset_to_numpy, resize_once

        source = self._original()
        arrays = {}
        for split in ("train", "val"):
            ds = resize_once(getattr(source, split), resolution).batch(4096)
            arrays[f"{split}_x"], arrays[f"{split}_y"] = dataset_to_numpy(ds)
        return arrays

    def _path(self, name: str, suffix: str) -> Path | None:
        if self._directory is None or not self._keep:
            return None
        return self._directory / f"{self._key}_{name}.{suffix}"

    def _read(self, resolution: int) -> dict[str, np.ndarray] | None:
        paths = {name: self._path(f"r{resolution}_{name}", "npy")
                 for name in ("train_x", "train_y", "val_x", "val_y")}  # fmt: skip
        if any(path is None or not path.exists() for path in paths.values()):
            return None
        return {name: np.load(path, mmap_mode="r") for name, path in paths.items()}

    def _write(self, resolution: int, arrays: dict[str, np.ndarray]) -> None:
        if self._path("meta", "json") is None:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        meta = self._meta_now()
        _atomic_write(self._path("meta", "json"),
                      lambda handle: handle.write(json.dumps(dataclasses.asdict(meta)).encode()))
        for name, array in arrays.items():
            _atomic_write(self._path(f"r{resolution}_{name}", "npy"),
                          lambda handle, array=array: np.save(handle, array))  # fmt: skip


def _atomic_write(path: Path, write: Callable) -> None:
    """Writes through a temporary file and a rename, so readers never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)
