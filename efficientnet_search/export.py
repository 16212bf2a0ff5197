"""Export a trained `.keras` model for serving, and check the export against Keras.

    efficientnet-search export --model runs/X/model.keras --format tflite_int8 \\
        --output runs/X/model_int8.tflite --data npz:../shared/data/pneumoniamnist_balanced.npz

Formats: `savedmodel` (TF SavedModel, `serve` signature), `tflite` (float32) and `tflite_int8`
(full-integer weights and activations, calibrated on training images; inputs and outputs stay
float32 so callers feed the same pixels in [0, 255]). After writing, the exported model and the
Keras model both score a sample (test images from `--data`, else seeded random pixels) and the
largest probability difference and the top-1 agreement are reported and written beside the
output as `<output>.check.json`. Float exports must agree within FLOAT_TOLERANCE; int8 exports
within INT8_TOLERANCE (mean absolute probability difference) and INT8_MIN_AGREEMENT (top-1).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

from efficientnet_search import quiet_start

quiet_start.import_tensorflow()  # before keras loads it: no start-up chatter

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from efficientnet_search.jsonio import write_json  # noqa: E402
from efficientnet_search.training.saved import load_model  # noqa: E402

FORMATS = ("savedmodel", "tflite", "tflite_int8")
FLOAT_TOLERANCE = 1e-4  # max |p_export - p_keras| over the sample, float32 exports
INT8_TOLERANCE = 0.1  # mean |p_export - p_keras| for int8 (tiny models quantize worst)
INT8_MIN_AGREEMENT = 0.9  # share of the sample with the same top-1 class (argmax)


@dataclasses.dataclass(frozen=True)
class ExportCheck:
    """How closely an exported model reproduces the Keras model on a sample."""

    format: str
    output: str
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    passed: bool
    tolerance: str


@quiet_start.expected_retracing()  # one more model's predict: not the loop TF warns about
def export_model(
    model: keras.Model,
    fmt: str,
    output: str | Path,
    *,
    sample: np.ndarray,
    calibration: np.ndarray | None = None,
) -> ExportCheck:
    """Writes `model` as `fmt` to `output` and returns its agreement with Keras on `sample`.

    Args:
      model: the Keras model (pixels in [0, 255] in, probabilities out).
      fmt: "savedmodel", "tflite" or "tflite_int8".
      output: a directory (savedmodel) or a `.tflite` file.
      sample: float32 images [n, H, W, 3] for the agreement check.
      calibration: images for int8 calibration (default: `sample`).

    Raises:
      ValueError: for an unknown format, or when the export disagrees beyond the tolerance.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sample = np.asarray(sample, dtype=np.float32)
    if fmt == "savedmodel":
        model.export(str(output), format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(str(output))  # keep it alive while serving
        exported = np.asarray(loaded.serve(tf.constant(sample)))
    else:
        images = sample if calibration is None else np.asarray(calibration, np.float32)
        output.write_bytes(to_tflite(model, int8=fmt == "tflite_int8", calibration=images))
        exported = run_tflite(output, sample)
    expected = np.asarray(model.predict_on_batch(sample))
    return _compare(fmt, output, expected, exported)


def to_tflite(model: keras.Model, *, int8: bool = False,
              calibration: np.ndarray | None = None) -> bytes:
    """Converts the model's inference function with its weights frozen in as constants.

    Going through a SavedModel (Keras' `model.export`, then `from_saved_model`) gives the
    same flatbuffer but traces every saved function first: for Lite0 at 48 px, 11.7 s
    against 3.0 s this way, outputs equal to 2.4e-6 (session 17, BUILD_NOTES). Without the
    freezing, `from_concrete_functions` leaves the weights out and the model scores NaN.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if int8 and (calibration is None or len(calibration) == 0):
        raise ValueError("tflite_int8 needs calibration images (pass --data)")
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    infer = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    frozen = convert_variables_to_constants_v2(infer.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [image[None].astype(np.float32)] for image in calibration
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def run_tflite(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Scores `images` with a `.tflite` model, one image per invocation."""
    with warnings.catch_warnings():  # deprecated in favour of ai_edge_litert (not required)
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    results = []
    for image in np.asarray(images, np.float32):
        interpreter.set_tensor(inp, image[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(results)


def _compare(fmt: str, output: Path, expected: np.ndarray, exported: np.ndarray) -> ExportCheck:
    diff = np.abs(expected.astype(np.float64) - exported.reshape(expected.shape))
    agreement = float(np.mean(expected.argmax(-1) == exported.reshape(expected.shape).argmax(-1)))
    if fmt == "tflite_int8":
        passed = diff.mean() <= INT8_TOLERANCE and agreement >= INT8_MIN_AGREEMENT
        tolerance = (f"mean |dp| <= {INT8_TOLERANCE} and top-1 agreement >= "
                     f"{INT8_MIN_AGREEMENT}")
    else:
        passed = diff.max() <= FLOAT_TOLERANCE
        tolerance = f"max |dp| <= {FLOAT_TOLERANCE}"
    return ExportCheck(format=fmt, output=str(output), samples=len(expected),
                       max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                       top1_agreement=agreement, passed=bool(passed), tolerance=tolerance)


def sample_images(model: keras.Model, data: str | None, n: int = 64, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(check sample, calibration images) at the model's resolution.

    From `data`: the test split (else validation) for the check, training images for int8
    calibration. Without data: seeded uniform pixels for both (says little for int8).
    """
    size = model.inputs[0].shape[1] or 224
    if data is None:
        rng = np.random.default_rng(seed)
        pixels = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
        return pixels, pixels
    from efficientnet_search import data as data_lib

    splits = data_lib.load(data_lib.DataConfig(source=data, max_train=max(n, 128)), seed)

    def take(ds, count):
        pipe = data_lib.make_pipeline(ds, resolution=size, batch_size=count, training=False,
                                      cache=False)
        return next(iter(pipe))[0].numpy()

    check = take(splits.test if splits.test is not None else splits.val, n)
    return check, take(splits.train, max(n, 128))


def main(args: argparse.Namespace) -> None:
    """`efficientnet-search export --model X.keras --format F --output PATH [--data URI]`."""
    model = load_model(args.model, name="--model")
    if args.format == "tflite_int8" and not args.data:
        logging.warning("no --data: int8 calibration uses random pixels; pass the training "
                        "data for a faithful int8 model")
    sample, calibration = sample_images(model, args.data)
    check = export_model(model, args.format, args.output, sample=sample,
                         calibration=calibration)
    report = Path(str(args.output).rstrip("/") + ".check.json")
    write_json(report, check)
    print(f"exported {args.format} to {args.output}: on {check.samples} images max |dp| "
          f"{check.max_abs_diff:.2e}, mean |dp| {check.mean_abs_diff:.2e}, top-1 agreement "
          f"{check.top1_agreement:.1%} ({'within' if check.passed else 'OUTSIDE'} "
          f"{check.tolerance}); check in {report}")
    if not check.passed:
        raise ValueError(f"the {args.format} export disagrees with the Keras model beyond "
                         f"{check.tolerance}: max |dp| {check.max_abs_diff:.3g}, top-1 "
                         f"agreement {check.top1_agreement:.1%}")
