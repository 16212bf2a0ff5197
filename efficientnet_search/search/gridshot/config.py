"""The config of the scaling grid scored from a supernet: a grid config plus `supernet`.

    efficientnet-search gridshot --config configs/grid/gridshot_smoke.yaml --run_dir RUN

`candidates`, `proxy`, `data` and `search` mean what they mean for `grid` (grid/config.py):
the grid's cost constraint, its proxy and data, and how the stand-alone trainings are queued
(seeds, workers, storage). `supernet` says how the grid's points are scored without training
each one: the supernet's elastic range and training, the scoring, and how many of the scored
points are then trained stand-alone through the grid's queue.
"""

from __future__ import annotations

import dataclasses

from efficientnet_search import config as config_lib
from efficientnet_search.data.config import DataConfig
from efficientnet_search.search.grid.config import CandidatesConfig, GridConfig, SearchConfig
from efficientnet_search.search.gridshot.space import SAMPLE_BY
from efficientnet_search.search.nas.oneshot.train import TrainConfig
from efficientnet_search.search.proxy.config import PROXY_DATA, ProxyConfig


@dataclasses.dataclass(frozen=True)
class SupernetSection:
    """How the grid is scored from a supernet, and which points then train stand-alone.

    Attributes:
      step: the grid step the supernet scores at (default: the paper's 0.05, the grid's own
        default in grid/config.py: Tan & Le 2019's alpha 1.2, beta 1.1, gamma 1.15 lie on it);
        every point of the candidates' box at this step within the cost constraint is scored,
        with the single-dimension points and the paper's point.
      largest: (alpha, beta, gamma) of the supernet's largest subnet (null: the largest of
        each among the scored points). A scored point it does not hold is refused.
      train: the supernet's sandwich training (oneshot/train.py).
      sample_by: how each step draws its random subnets: `point` (a grid point uniformly)
        or `resolution` (a side uniformly, then one of its points; gridshot/space.py).
      recalibration_images: training images batch-norm statistics are recomputed on before
        each score (OFA: 2,000).
      score_images: validation images a score is measured on (the first; null: all).
      top: the best-scored networks trained stand-alone through the grid's queue.
      spread: more scored networks trained stand-alone, evenly spaced over the rest of the
        score ranking (so the ranking is checked over the whole range, not only its top).
      bootstrap: resamples of the rank-correlation intervals.
      seed: seeds the supernet, its training and the recalibration subset.
      threads: TensorFlow CPU threads while training and scoring (null: TensorFlow's).
    """

    step: float = CandidatesConfig.step
    largest: tuple[float, float, float] | None = None
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    sample_by: str = "point"
    recalibration_images: int = 2000
    score_images: int | None = None
    top: int = 5
    spread: int = 0
    bootstrap: int = 1000
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise config_lib.ConfigError(f"supernet.step must be > 0, got {self.step}")
        if self.largest is not None and (len(self.largest) != 3
                                         or min(self.largest) < 1):  # fmt: skip
            raise config_lib.ConfigError(
                f"supernet.largest must be [alpha, beta, gamma], each >= 1, or null (the "
                f"grid's largest), got {self.largest}")
        if self.sample_by not in SAMPLE_BY:
            raise config_lib.ConfigError(
                f"supernet.sample_by must be one of {list(SAMPLE_BY)}, got {self.sample_by!r}")
        if self.top < 1 or self.spread < 0:
            raise config_lib.ConfigError(
                f"supernet.top must be >= 1 and supernet.spread >= 0, got {self.top} and "
                f"{self.spread}")
        for name in ("recalibration_images", "bootstrap"):
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(
                    f"supernet.{name} must be >= 1, got {getattr(self, name)}")
        if self.score_images is not None and self.score_images < 1:
            raise config_lib.ConfigError(
                f"supernet.score_images must be >= 1 or null (all), got {self.score_images}")


@dataclasses.dataclass(frozen=True)
class GridshotConfig:
    """A grid (its candidates, proxy, data and queue) scored from a supernet."""

    name: str = "gridshot"
    candidates: CandidatesConfig = dataclasses.field(default_factory=CandidatesConfig)
    proxy: ProxyConfig = dataclasses.field(default_factory=ProxyConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: PROXY_DATA)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    supernet: SupernetSection = dataclasses.field(default_factory=SupernetSection)

    def grid(self, **search) -> GridConfig:
        """The grid config of the stand-alone trainings (`search` fields replaced)."""
        return GridConfig(name=self.name, candidates=self.candidates, proxy=self.proxy,
                          data=self.data,
                          search=dataclasses.replace(self.search, **search))  # fmt: skip

    def scored_grid(self) -> GridConfig:
        """The grid at the supernet's step: the points to score."""
        return dataclasses.replace(self.grid(), candidates=dataclasses.replace(
            self.candidates, step=self.supernet.step))  # fmt: skip


def load_gridshot_config(path: str, overrides: list[str],
                          seed: int | None = None) -> GridshotConfig:
    """Reads a gridshot YAML with `--set` overrides; `--seed` overrides search.seed."""
    if seed is not None:
        overrides = [*overrides, f"search.seed={seed}"]
    return config_lib.load_config(GridshotConfig, path, overrides)
