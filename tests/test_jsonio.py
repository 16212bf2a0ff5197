"""Run records are strict JSON: NaN becomes null, numpy and paths become plain values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from efficientnet_search.jsonio import read_json, write_json


@dataclasses.dataclass(frozen=True)
class Record:
    auc: float
    path: Path


def test_non_finite_numpy_and_paths_become_plain_json(tmp_path):
    data = {"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3), float("inf")],
            "d": Record(float("nan"), Path("x/y")), "e": np.array([1.0, np.nan])}
    path = write_json(tmp_path / "r.json", data)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: 1 / 0) == {
        "a": None, "b": 0.5, "c": [3, None], "d": {"auc": None, "path": "x/y"},
        "e": [1.0, None]}


def test_unreadable_json_files_are_errors_that_name_the_file(tmp_path):
    for name, content, problem in [("empty.json", b"  \n", "is empty"),
                                   ("cut.json", b'{"best": ', "is not valid JSON"),
                                   ("model.json", b"\x89HDF\r\n\x1a\n\xff\xfe", "not UTF-8")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=problem) as err:
            read_json(path)
        assert name in str(err.value)
