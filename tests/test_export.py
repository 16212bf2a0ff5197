"""Tests for efficientnet_search.export: exported models agree with the Keras model."""

from __future__ import annotations

import argparse
import json

import keras
import numpy as np
import pytest

from efficientnet_search import export
from efficientnet_search.data.synthetic import synthetic_arrays, write_npz
from efficientnet_search.medical.transfer import FinetuneModelConfig, build_finetune_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny fine-tuning model trained a little on learnable data, saved as .keras, and an
    npz of the same data for calibration and the check."""
    tmp = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    model = build_finetune_model(
        FinetuneModelConfig(width=0.1, depth=0.1, resolution=32, bn_momentum=0.5), 2, False)
    images, labels = synthetic_arrays(256, seed=1)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.repeat(images, 3, -1).astype("float32"), labels, epochs=3, batch_size=32,
              verbose=0)
    model.save(tmp / "model.keras")
    data = write_npz(tmp / "data.npz", {"train": (images, labels),
                                        "val": synthetic_arrays(64, seed=2),
                                        "test": synthetic_arrays(64, seed=3)})
    return tmp, data


def test_every_format_agrees_with_keras_within_its_tolerance(trained):
    tmp, data = trained
    checks = {}
    for fmt, name in [("savedmodel", "saved"), ("tflite", "float.tflite"),
                      ("tflite_int8", "int8.tflite")]:
        args = argparse.Namespace(model=str(tmp / "model.keras"), format=fmt,
                                  output=str(tmp / name), data=f"npz:{data}")
        export.main(args)  # raises when outside the tolerance
        checks[fmt] = json.loads((tmp / f"{name}.check.json").read_text())
        assert checks[fmt]["passed"] and checks[fmt]["samples"] == 64
    for fmt in ("savedmodel", "tflite"):
        assert checks[fmt]["max_abs_diff"] <= export.FLOAT_TOLERANCE
    int8 = checks["tflite_int8"]
    assert int8["mean_abs_diff"] <= export.INT8_TOLERANCE
    assert int8["top1_agreement"] >= export.INT8_MIN_AGREEMENT
    assert int8["max_abs_diff"] > 0  # really quantized
    assert (tmp / "int8.tflite").stat().st_size < (tmp / "float.tflite").stat().st_size
    pixels = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    assert export.run_tflite(tmp / "float.tflite", pixels).shape == (5, 2)


def test_export_errors_name_the_problem(tmp_path, trained):
    tmp, _ = trained
    missing = argparse.Namespace(model=str(tmp_path / "none.keras"), format="tflite",
                                 output=str(tmp_path / "x.tflite"), data=None)
    with pytest.raises(FileNotFoundError, match="none.keras"):
        export.main(missing)
    model = keras.saving.load_model(tmp / "model.keras")
    with pytest.raises(ValueError, match="format must be one of"):
        export.export_model(model, "onnx", tmp_path / "x", sample=np.zeros((1, 32, 32, 3)))
