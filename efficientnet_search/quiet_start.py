"""Imports TensorFlow without its start-up chatter on the terminal.

TensorFlow's native libraries log through Abseil before Abseil's logging is initialised, and
such lines go straight to the process's stderr whatever TF_CPP_MIN_LOG_LEVEL says
(abseil/abseil-cpp#1718): every command printed eight lines about oneDNN, CUDA drivers and
CPU instructions before its own output. `import_tensorflow` captures file descriptor 2 while
TensorFlow loads and initialises its devices, then writes back every captured line except
the known harmless ones, so an import failure or a real CUDA error still shows.
`TF_CPP_MIN_LOG_LEVEL=0` shows everything. Every subpackage that needs TensorFlow (arch, data,
training, search, medical) and `export` call it before importing it, and the CLI before running
a command, so every command, spawned worker and import starts quietly; the package itself and
the CLI's flag parsing load no TensorFlow. The Python side:
commands print each TensorFlow warning once, and grid workers and fine-tuning drop the
retracing warning that their fresh models (per trial, per fold or candidate) set off.

Once TensorFlow is loaded, `import_tensorflow` also moves every object alive into the garbage
collector's permanent generation (`gc.freeze`): importing TensorFlow and Keras leaves ~370k
tracked objects that live as long as the process, and every full collection walked them all,
~0.25 s on 2 CPU cores. Keras' `clear_session` collects after every trial and every stand-alone
training, and Python collects on its own while graphs are traced: measured on the one-shot
notebook's tiny setting (session 19), 54 -> 44 s. Only the collector's cycle search skips
frozen objects; reference counting still frees them. The cost: an object alive at that moment
that later dies only as part of a reference cycle is never freed, which for objects made
before TensorFlow was imported (modules, mostly) is none or a few.
"""

from __future__ import annotations

import contextlib
import gc
import logging as std_logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

_HARMLESS = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
)
_NO_GPU_HARMLESS = ("failed call to cuInit",)  # harmless only where no NVIDIA device exists


def import_tensorflow() -> ModuleType:
    """Imports TensorFlow (and lists its devices) with the harmless native log lines dropped."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow as tf

        _freeze_once()
        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device start-up logs its lines here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = useful_lines(captured.read().decode(errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    _freeze_once()
    return tf


_frozen = False


def _freeze_once() -> None:
    """Takes what the TensorFlow import left alive out of every later full collection (the
    module docstring says why), once per process."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def useful_lines(text: str, *, gpu_present: bool | None = None) -> str:
    """`text` without the known harmless start-up lines (kept: everything else)."""
    if gpu_present is None:
        gpu_present = any(Path("/dev").glob("nvidia[0-9]*"))
    harmless = _HARMLESS if gpu_present else _HARMLESS + _NO_GPU_HARMLESS
    pattern = re.compile("|".join(re.escape(h) for h in harmless))
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not pattern.search(line))


def send_tensorflow_logs_through_absl() -> None:
    """Leaves TensorFlow's Python logger to Abseil's root handler, so each warning prints once.

    TensorFlow gives its logger a stderr handler of its own when the root logger has none at
    import time, which is always the case before `absl.app` installs its handler: every TF
    warning then printed twice, in two formats. Call once Abseil's handler is in place.
    """
    tf_logger = std_logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True


class _DropRetracingWarnings(std_logging.Filter):
    def filter(self, record: std_logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def expected_retracing() -> Iterator[None]:
    """Hides TensorFlow's retracing warning where each iteration builds a fresh model.

    A grid worker trains a new model per trial, so every trial traces new train and eval
    functions; TensorFlow counts them together (same Python code) and, after a few trials,
    warns about retracing that is by design and costs nothing extra. Fine-tuning does the same
    per cross-validation candidate and fold, per phase and on resume. Usable as a decorator.
    """
    tf_logger = std_logging.getLogger("tensorflow")
    drop = _DropRetracingWarnings()
    tf_logger.addFilter(drop)
    try:
        yield
    finally:
        tf_logger.removeFilter(drop)
