"""Progress output: bars on a terminal, one plain line per epoch in a log file."""

from __future__ import annotations

import contextlib
import io

import keras
import numpy as np
import pytest

from efficientnet_search.training.progress import keras_verbose


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal():
    assert keras_verbose(1, _Terminal()) == 1
    assert keras_verbose(1, io.StringIO()) == 2
    assert keras_verbose(0, io.StringIO()) == 0 and keras_verbose(2, _Terminal()) == 2
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2, got 3"):
        keras_verbose(3)


def _fit_log(verbose: int, epochs: int = 3) -> str:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.random.rand(64, 4).astype("float32"), np.arange(64) % 2
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        model.fit(x, y, batch_size=4, epochs=epochs, verbose=keras_verbose(verbose))
    return log.getvalue()


def test_a_fit_logged_to_a_file_writes_one_plain_line_per_epoch():
    text = _fit_log(1)
    assert "\r" not in text and "\x1b" not in text and "\b" not in text
    assert sum("loss" in line for line in text.splitlines()) == 3
    assert [line for line in text.splitlines() if line.startswith("Epoch")] == [
        "Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    # What Keras' bar writes to a file without the helper: redraws (the test's control).
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        keras.utils.Progbar(16, verbose=1).update(16)
    assert "\r" in log.getvalue() or "\b" in log.getvalue()


def test_the_training_loops_progress_bar_is_one_line_in_a_file():
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        bar = keras.utils.Progbar(50, verbose=keras_verbose(1))
        for step in range(1, 51):
            bar.update(step, [("loss", 1.0 / step)])
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and "loss" in lines[0] and "\r" not in log.getvalue()
