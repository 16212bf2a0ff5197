"""TensorFlow's native start-up lines are dropped; anything else it prints still shows."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

from efficientnet_search import quiet_start

ONEDNN = "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
CUINIT = "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"


def test_harmless_lines_go_and_the_rest_stays():
    text = ONEDNN + "W0000 real warning from a kernel\n" + CUINIT
    kept = quiet_start.useful_lines(text, gpu_present=False)
    assert kept == "W0000 real warning from a kernel\n"
    # With an NVIDIA device present a failed cuInit is a real problem: it stays.
    assert quiet_start.useful_lines(text, gpu_present=True).endswith(CUINIT)


def test_a_failing_import_still_shows_its_own_output_and_error(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent(f"""
        import os
        os.write(2, {(ONEDNN + "E0000 libcudnn.so.9: cannot open shared object file").encode()!r})
        raise ImportError("broken install")
    """))
    code = "from efficientnet_search import quiet_start; quiet_start.import_tensorflow()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert run.returncode == 1
    assert "libcudnn.so.9: cannot open" in run.stderr and "broken install" in run.stderr
    assert "oneDNN" not in run.stderr


def test_commands_start_without_tensorflow_chatter():
    run = subprocess.run(
        [sys.executable, "-m", "efficientnet_search.cli.main", "scale", "--coefficients", "paper",
         "--phi", "1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "258" in run.stdout  # phi 1 resolution with the paper's coefficients
    assert "absl::InitializeLog" not in run.stderr and "oneDNN" not in run.stderr


def test_a_tensorflow_warning_prints_once_under_absl():
    code = textwrap.dedent("""
        from absl import logging
        from efficientnet_search import quiet_start
        import tensorflow as tf
        logging.use_absl_handler()
        quiet_start.send_tensorflow_logs_through_absl()
        tf.get_logger().warning("pineapple warning")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("pineapple warning") == 1, run.stderr


def test_grid_workers_drop_only_the_retracing_warning(caplog):
    tf_logger = logging.getLogger("tensorflow")
    retracing = ("5 out of the last 11 calls to <function f> triggered tf.function retracing. "
                 "Tracing is expensive")  # fmt: skip
    with caplog.at_level(logging.WARNING), quiet_start.expected_retracing():
        tf_logger.warning(retracing)
        tf_logger.warning("a real problem")
    tf_logger.warning(retracing)  # outside a grid worker it shows again
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["a real problem", retracing]


def test_full_collections_skip_what_the_tensorflow_import_left_but_free_later_garbage():
    # Every Keras clear_session (after each trial) runs a full collection; without the freeze
    # each walked the ~370k objects TensorFlow's import leaves alive (~0.25 s on 2 cores).
    code = textwrap.dedent("""
        import gc, weakref
        import efficientnet_search.arch  # imports TensorFlow through quiet_start
        import keras
        frozen = gc.get_freeze_count()
        class Node: pass
        node = Node(); node.self = node; alive = weakref.ref(node)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        built = weakref.ref(model)
        del node, model
        keras.backend.clear_session()
        print(frozen, alive() is None, built() is None)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    frozen, cycle_freed, model_freed = run.stdout.split()
    assert int(frozen) > 100_000
    assert cycle_freed == "True" and model_freed == "True"
