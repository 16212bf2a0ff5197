"""Strict JSON for run records: results.json files that any JSON reader accepts.

Python's json writes NaN and Infinity, which are not JSON; a metric that cannot be computed
(the AUC of a class absent from a split, a failed trial's accuracy) is written as null.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def to_plain(value: Any) -> Any:
    """Turns numpy values, paths, dataclasses and non-finite floats into plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def read_json(path: str | Path) -> Any:
    """Reads a JSON file; an empty or malformed file is a ValueError that names the path."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not JSON: not UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"{str(path)!r} is empty; expected JSON (a finished run writes it)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err.msg} at line {err.lineno}, "
                         f"column {err.colno}") from None


def write_json(path: str | Path, data: Any) -> Path:
    """Writes `data` as indented, strict JSON and returns the path."""
    path = Path(path)
    path.write_text(json.dumps(to_plain(data), indent=2, allow_nan=False) + "\n")
    return path
