"""Matplotlib for every plot the project writes: a file backend and one way to save.

Runs write PNGs on servers and in CI, where no display exists, so plotting uses the Agg backend
(set once here, before pyplot loads). Every figure is laid out with `constrained` layout,
which, unlike `tight_layout`, makes room for a figure title and multi-line axes titles.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

DPI = 100


def pyplot() -> ModuleType:
    """`matplotlib.pyplot` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """`(fig, axes)` of `plt.subplots` with constrained layout (titles never overlap)."""
    return pyplot().subplots(nrows, ncols, figsize=figsize, layout="constrained", **kwargs)


def save(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Writes `fig` to `path` (parents created), closes it and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
