"""Tests for training.saved.load_model: our `.keras` files load in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from efficientnet_search.arch.model import build_model
from efficientnet_search.training.saved import load_model
from tests.paths import ROOT

# A fresh interpreter: only `import efficientnet_search`, which registers nothing by itself.
FRESH_LOAD = """
import sys, numpy as np, efficientnet_search
model = efficientnet_search.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
"""


def test_a_saved_model_with_stochastic_depth_loads_in_a_fresh_interpreter(tmp_path):
    model = build_model(width=0.25, depth=0.5, resolution=32, num_classes=3,
                        drop_connect_rate=0.2, weights=None)
    assert any(type(layer).__name__ == "StochasticDepth" for layer in model.layers)
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, str(tmp_path / "model.keras"),
         str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_a_missing_file_is_one_line_naming_it_and_its_origin(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model '.*none\.keras' does not exist") as e:
        load_model(tmp_path / "none.keras", name="--model")
    assert "\n" not in str(e.value)
