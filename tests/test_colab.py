"""Every notebook in colab/ runs end to end on a tiny CPU setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

NOTEBOOKS = sorted((ROOT / "colab").glob("*.ipynb"))


def notebook_script(path: Path) -> str:
    """The notebook's code cells as one script (IPython display stubbed when absent)."""
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return "\n\n".join(code)


def test_there_is_a_notebook():
    assert NOTEBOOKS, "colab/ should hold at least one notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(path, tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(notebook_script(path))
    env = {**os.environ, "ENS_NOTEBOOK_TINY": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "phi=7" in result.stdout and "B7" in result.stdout
    assert (tmp_path / "runs" / "notebook_smoke" / "results.json").is_file()
