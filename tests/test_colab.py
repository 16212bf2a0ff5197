"""The notebooks in colab/: each runs top to bottom in a real kernel on its tiny CI setting.

A notebook is executed by nbclient in an ipykernel (as Jupyter and Colab run it), in a fresh
directory that links the repository's configs, with `ENS_NOTEBOOK_TINY=1` in the kernel's
environment: its first code cell reads that variable and picks the tiny setting. A cell that
raises fails the test. Notebooks are committed without outputs, so the repository holds code,
not stale results.
"""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.paths import ROOT

NOTEBOOKS = sorted((ROOT / "colab").glob("*.ipynb"))
CELL_TIMEOUT_S = 300

# What each notebook's executed outputs must show (text), and how many images it displays.
EXPECTED = {
    "build_and_scale.ipynb": (["stem", "B7", "Lite0", "phi", "top-1: class 28"], 2),
    "grid_search.ipynb": (["best by mean", "verify:", "Budget check (best set",
                           "racing round 1:", "racing added", "phi=7"], 4),
    "medical_finetuning.ipynb": (["interrupted after phase", "resuming runs/notebook_",
                                  "chosen by 2-fold cross-validation",
                                  "(oof_youden, chosen on training split, out-of-fold",
                                  "argmax/p=0.5 accuracy", "Chosen by cross-validation",
                                  "decision: ", "the configured recipe",
                                  "ROC-AUC", "Grad-CAM", "tflite: ", "passed",
                                  "Not for clinical use"], 3),
    "architecture_search.ipynb": (["chosen baseline", "## Decision",
                                   "family of the searched baseline", "phi=3"], 3),
    "oneshot_search.ipynb": (["supernet", "Spearman", "stand-alone", "trainable parameters",
                              "best of each search", "| tpe_best |", "| nsga2_best |",
                              "distinct networks) scored by the supernet", "grid_scores.csv, the",
                              "family of the searched baseline"], 2),
}


def test_there_is_a_notebook_for_every_use():
    assert {p.name for p in NOTEBOOKS} >= set(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or execution counts; "
                       "strip them (Edit > Clear all outputs) before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_its_setup_cell(path):
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "ENS_NOTEBOOK_TINY" in first.source, "the first code cell reads the CI setting"
    assert "pip" in first.source and "install" in first.source, "it installs the package"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("ENS_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, when a cell fails
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    text, images = _outputs(notebook)
    strings, min_images = EXPECTED.get(path.name, ([], 0))
    missing = [s for s in strings if s not in text]
    assert not missing, f"{path.name} never printed {missing}"
    assert images >= min_images, f"{path.name} showed {images} images, expected {min_images}+"
    # Every model a search or fine-tuning builds is fresh by design; TensorFlow's advice to
    # stop retracing would send a reader after a problem that is not there.
    assert "triggered tf.function retracing" not in text, f"{path.name} printed a retrace warning"


def _outputs(notebook) -> tuple[str, int]:
    """All text the code cells printed or returned, and the number of images they showed."""
    text, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                text.append(output.data.get("text/plain", ""))
                text.append(output.data.get("text/markdown", ""))
                images += "image/png" in output.data
    return "\n".join(text), images
