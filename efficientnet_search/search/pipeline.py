"""The whole story in one run directory: search the baseline, find its coefficients, scale it.

    efficientnet-search pipeline --config configs/pipeline/fashion_mnist_quick.yaml \\
        --run_dir runs/pipeline_quick [--workers 2] [--storage URL]

Stages, each its own sub-directory and resumable on its own (re-running the command skips
finished trials of every stage):

1. `nas/`: the architecture search, multi-trial (`nas/run.py`) or, with `nas.method:
   oneshot`, the one-shot search on a weight-sharing supernet (`nas/oneshot/run.py`,
   configs/pipeline/oneshot_smoke.yaml); either way its chosen baseline is block strings.
2. `grid/`: the compound-scaling grid at phi=1 on that baseline
   (`proxy.blocks_from=<run>/nas/results.json`).
3. `family.json`: the phi family of the searched baseline with the grid's coefficients
   (multiply-adds and parameters per member; `scale --blocks_from` prints the same).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from efficientnet_search import config as config_lib
from efficientnet_search.arch.blocks import decode_blocks
from efficientnet_search.arch.family import (
    coefficients_caveat,
    read_baseline,
    read_coefficients,
    scale_family,
)
from efficientnet_search.jsonio import write_json
from efficientnet_search.search.grid import run as grid
from efficientnet_search.search.nas import run as nas


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """A stage's own config file (relative to the pipeline config's folder) and overrides."""

    config: str = ""
    set: tuple[str, ...] = ()


NAS_METHODS = ("nas", "oneshot")


@dataclasses.dataclass(frozen=True)
class NasStageConfig(StageConfig):
    """The NAS stage: its config file, overrides, and which search runs it (`nas`: the
    multi-trial search, `oneshot`: the supernet search; each reads its own config kind)."""

    method: str = "nas"

    def __post_init__(self) -> None:
        if self.method not in NAS_METHODS:
            raise config_lib.ConfigError(
                f"pipeline nas.method={self.method!r} is not a NAS method; accepted: "
                f"{', '.join(NAS_METHODS)}")


@dataclasses.dataclass(frozen=True)
class FamilyConfig:
    """The family built at the end (as `efficientnet-search scale`)."""

    phi: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    base_resolution: int = 224
    num_classes: int = 1000


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """NAS, then grid, then family."""

    name: str = "pipeline"
    nas: NasStageConfig = dataclasses.field(default_factory=NasStageConfig)
    grid: StageConfig = dataclasses.field(default_factory=StageConfig)
    family: FamilyConfig = dataclasses.field(default_factory=FamilyConfig)


def run_pipeline(config: PipelineConfig, *, config_dir: str | Path = ".",
                 run_dir: str | Path | None = None, storage: str | None = None,
                 workers: int | None = None) -> dict[str, Any]:
    """Runs (or resumes) every stage in `run_dir`; returns the family record it wrote."""
    run_dir = Path(run_dir or Path("runs") / config.name)
    search_nas = _nas_stage(config.nas, _stage_path(config.nas, config_dir, "nas"))
    nas_results = run_dir / "nas" / "results.json"
    grid_overrides = [*config.grid.set, f"proxy.blocks_from={nas_results.resolve()}"]
    grid_path = _stage_path(config.grid, config_dir, "grid")
    config_lib.load_config(grid.GridConfig, grid_path, config.grid.set)  # bad grid: fail now
    config_lib.save_config(config, run_dir)
    search_nas(run_dir / "nas", storage, workers)
    grid_config = grid.load_grid_config(grid_path, grid_overrides, None)
    grid_result = grid.run_grid_search(grid_config, run_dir=run_dir / "grid", storage=storage,
                                       workers=workers)  # fmt: skip
    return write_family(config.family, nas_results, grid_result.results_path,
                        run_dir / "family.json")  # fmt: skip


def write_family(config: FamilyConfig, nas_results: Path, grid_results: Path,
                 path: Path) -> dict[str, Any]:
    """The family of the searched baseline, written to `path` and printed as a table."""
    from efficientnet_search.tables import format_table

    blocks = read_baseline(nas_results)
    coefficients = read_coefficients(grid_results)
    members = scale_family(coefficients, config.phi, base_resolution=config.base_resolution,
                           blocks=decode_blocks(blocks), num_classes=config.num_classes)
    caveat = coefficients_caveat(grid_results)
    record = {
        "blocks": list(blocks), "coefficients": dataclasses.asdict(coefficients),
        "caveat": caveat,
        "members": [{"phi": m.phi, "width": m.spec.scaling.width, "depth": m.spec.scaling.depth,
                     "resolution": m.spec.scaling.resolution, "params": m.cost.trainable_params,
                     "macs": m.cost.macs, "macs_ratio": m.macs_ratio,
                     "nominal_ratio": m.nominal_ratio} for m in members],
    }  # fmt: skip
    write_json(path, record)
    rows = [(m["phi"], f"{m['depth']:.3f}", f"{m['width']:.3f}", m["resolution"],
             f"{m['params'] / 1e6:.2f}M", f"{m['macs'] / 1e9:.3f}B", f"{m['macs_ratio']:.2f}")
            for m in record["members"]]  # fmt: skip
    print(f"family of the searched baseline, alpha {coefficients.alpha:g} beta "
          f"{coefficients.beta:g} gamma {coefficients.gamma:g}:")
    print(format_table(("phi", "depth", "width", "res", "params", "mult-adds", "ratio"), rows))
    if caveat:
        print(f"note: {caveat}")
    print(f"family:  {path}")
    return record


def _nas_stage(stage: NasStageConfig, path: Path):
    """The NAS stage as a function of (run_dir, storage, workers), its config loaded and
    checked now (bad input fails before anything is written)."""
    if stage.method == "oneshot":
        from efficientnet_search.search.nas.oneshot.run import load_oneshot_config, run_oneshot

        oneshot_config = load_oneshot_config(str(path), list(stage.set), None)
        return lambda run_dir, storage, workers: run_oneshot(
            oneshot_config, run_dir, workers=workers or 1, storage=storage)
    nas_config = nas.load_nas_config(path, list(stage.set), None)
    return lambda run_dir, storage, workers: nas.run_nas(nas_config, run_dir=run_dir,
                                                         storage=storage, workers=workers)


def _stage_path(stage: StageConfig, config_dir: str | Path, name: str) -> Path:
    if not stage.config:
        raise config_lib.ConfigError(f"pipeline.{name}.config is empty; name the {name} "
                                     f"config file, e.g. ../{name}/smoke.yaml")
    path = Path(stage.config)
    return path if path.is_absolute() else Path(config_dir) / path


def main(args) -> None:
    """CLI entry: `efficientnet-search pipeline` (see the module docstring)."""
    config = config_lib.load_config(PipelineConfig, args.config, list(args.set or []))
    run_pipeline(config, config_dir=Path(args.config).parent,
                 run_dir=args.run_dir or str(Path("runs") / config.name),
                 storage=getattr(args, "storage", None), workers=getattr(args, "workers", None))
