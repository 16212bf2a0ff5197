"""The GPU path measured in one prepared run: a table and one JSON file (issue 29; not a test).

On a machine with one H100/H200-class GPU and TensorFlow with GPU support, from the
repository root (8 minutes at most by default, `--budget_s`):

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json \\
        --cpu_reference runs/fashion_mnist_quick/results.json

`--cpu_reference` is the results.json of `make search` on a CPU machine (optional: without it
the grid's results are printed but not compared). The quick grid reads Fashion-MNIST; where
/usr/share/datasets/fashion-mnist is missing, copy its four .gz files into a folder and add
`--grid_set data.data_dir=/ABSOLUTE/FOLDER`. The machine needs the project installed with
TensorFlow for GPUs (`pip install -e . 'tensorflow[and-cuda]'`); without a GPU a full run
stops at once and says so. If the budget stops the grid before one of its runs finishes (the
JSON says `timed_out`), its trials/minute still count; give the grid a run of its own for the
CPU comparison: `--sections 3 --cpu_reference ...`; likewise `--sections 5` when the latency
plan (~110 distinct proxies built and timed) did not finish. Section 1 traces without XLA, as
the project's training loop does (Keras' own `fit` turns XLA on by itself on a GPU);
`--sections 1 --jit` measures both models with it.

The same code paths at tiny sizes on CPU, 3.5 minutes on 2 cores (up to 9 when they are
busy; `make test` runs sections 1, 2 and 5 of it, `--runslow` all of it:
tests/benchmarks/test_gpu_check.py):

    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json

Sections (`--sections 1,2,5` runs a subset):
  1 model: B0 at 224 px, training images/second, ours (`build_model("b0")`) against
    keras.applications.EfficientNetB0 in one process, timed in alternation (median of
    rounds), one random batch resident on the GPU, mixed_float16 then float32.
  2 pipeline: `make_pipeline` as `train` calls it (Inception crop; RandAugment beside it) on an
    in-memory uint8 source, images/second on the host's CPUs, beside what section 1 consumed.
  3 grid: the quick grid through the CLI with 1 worker and with `--workers` local workers
    sharing the GPU: wall time, trials/minute, best set and per-candidate means (against the
    CPU reference, in units of seed noise).
  4 distribute: a MirroredStrategy training step (`training.distribute.setup("gpu")`) and
    `efficientnet-search train --config configs/train/smoke.yaml --strategy gpu`.
  5 latency: the quick grid's proxy timed `--latency_runs` times as the grid times it
    (run-to-run range against the < 5% target), and the grid's candidates admitted with
    `candidates.cost: latency` beside `macs` (the plan only; nothing trains).
  6 oneshot (not in the default set; issue 30's supernet on a GPU): `efficientnet-search
    oneshot` on oneshot_quick.yaml with `oneshot.train.strategy` the section 4 strategy, 2
    supernet epochs, 200 random proposals scored, the least calibration set (5), outcome
    off: supernet and search seconds, networks scored per second (the CPU figure beside it:
    1,003 in 334 s on 2 Xeon cores, BUILD_NOTES.md). After the default run, on the same machine:
    `python benchmarks/gpu_check.py --sections 6 --budget_s 240 --out $OUT/gpu_oneshot.json`
    (`--oneshot_set KEY=VALUE` overrides its config; Fashion-MNIST as for section 3).

Each section runs in its own Python process (`python -m benchmarks.gpu_check_sections N`),
so a section that fails or runs out of time costs only itself, and the GPU memory TensorFlow
holds is free again for the next one (the grid's workers need it). A section may use its
share of the budget still left (SHARES) and is stopped at that limit; what it measured before
is kept. Its log is in `--work_dir`. Targets print PASS/FAIL beside the figures (n.a. in a dry
run), with the device's name beside every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {1: "model", 2: "pipeline", 3: "grid", 4: "distribute", 5: "latency", 6: "oneshot"}
DEFAULT_SECTIONS = "1,2,3,4,5"  # issue 29's check; 6 runs on its own budget after it
# Shares of the time left, by what each needs at full size: the grid trains 3 x 16 short
# trials, section 1 traces four B0 training steps, section 5 times ~110 distinct proxies.
SHARES = {1: 0.25, 2: 0.06, 3: 0.40, 4: 0.12, 5: 0.17, 6: 0.20}
BUDGET_S = 480.0  # the 8 minutes on one GPU
DRY_BUDGET_S = 900.0  # the dry run needs ~3.5 minutes on 2 idle cores, 5+ on busy ones
MIN_SECTION_S = 15.0  # a section given less than this is skipped, not started
PREFLIGHT_S = 120.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every section reads: the sizes of one run (full on GPU, tiny in a dry run).

    Attributes:
      dry_run: tiny sizes on CPU; targets are not judged.
      work_dir: run directories and logs of this check.
      batch, resolution, width, depth: section 1's model and batch (width/depth None: B0's).
      stages: section 1's models keep B0's first `stages` stages (None: all seven; a dry
        run keeps two, where tracing four seven-stage training steps took ~30 s).
      jit: compile section 1's training steps with XLA (`--jit`).
      warmup_steps, steps, rounds: untimed steps after tracing; steps per timed block;
        rounds of alternation (ours, keras, ours, keras, ...).
      source_size, source_images, pipeline_batches, augments: section 2's in-memory source
        (side, count), timed batches and the augmentations measured.
      grid_config, grid_overrides, workers, cpu_reference: section 3 (`workers`: the local
        worker counts run, 1 first).
      strategy, train_overrides: section 4's `--strategy` and `--set` for `train`.
      latency_runs, candidate, plan_overrides: section 5.
      oneshot_config, oneshot_overrides: section 6's one-shot config and `--set` items (its
        strategy is `strategy`).
      deadline: time.time() by which the running section must end (set per section).
    """

    dry_run: bool
    work_dir: str
    batch: int
    resolution: int
    width: float | None
    depth: float | None
    stages: int | None
    jit: bool
    warmup_steps: int
    steps: int
    rounds: int
    source_size: int
    source_images: int
    pipeline_batches: int
    augments: tuple[str, ...]
    grid_config: str
    grid_overrides: tuple[str, ...]
    workers: tuple[int, ...]
    cpu_reference: str | None
    strategy: str
    train_overrides: tuple[str, ...]
    latency_runs: int
    candidate: tuple[float, float, float]
    plan_overrides: tuple[str, ...]
    oneshot_config: str
    oneshot_overrides: tuple[str, ...]
    deadline: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


_TINY_DATA = ("data.source=synthetic:10", "data.max_train=64", "data.max_val=32")
# Section 6: the supernet trained and 200 subnets scored, no search guided by the scores.
_ONESHOT = ("oneshot.train.epochs=2", "oneshot.random_trials=200", "oneshot.evolution_trials=0",
            "oneshot.tpe_trials=0", "oneshot.nsga2_trials=0", "oneshot.calibration_size=5",
            "oneshot.outcome_seeds=0")
# Full sizes on the GPU, tiny ones on CPU; a flag given on the command line wins.
PROFILES: dict[bool, dict[str, Any]] = {
    False: dict(batch=256, resolution=224, width=None, depth=None, stages=None, warmup_steps=5,
                steps=12, rounds=5, source_size=320, source_images=1024, pipeline_batches=30,
                augments=("inception", "randaugment"),
                grid_config=str(REPO / "configs/grid/fashion_mnist_quick.yaml"),
                grid_overrides=(), workers=(2, 4), strategy="gpu", train_overrides=(),
                latency_runs=6, plan_overrides=(),
                oneshot_config=str(REPO / "configs/nas/oneshot_quick.yaml"),
                oneshot_overrides=_ONESHOT),
    True: dict(batch=8, resolution=32, width=0.1, depth=0.1, stages=2, warmup_steps=1,
               steps=2, rounds=2, source_size=40, source_images=32, pipeline_batches=3,
               augments=("inception", "randaugment"),
               grid_config=str(REPO / "configs/grid/smoke.yaml"),
               grid_overrides=(*_TINY_DATA, "proxy.steps_per_epoch=2", "search.repeats=2",
                               "candidates.single_dimension=false"),
               workers=(2,), strategy="mirrored",
               # 4 steps: the first (tracing) is not timed, the rest give a rate
               train_overrides=("data.source=synthetic:10", "data.max_train=256",
                                "data.max_val=32", "train.epochs=1",
                                "input_benchmark_batches=2"),
               latency_runs=3,
               # one admitted point whatever this CPU's latencies: the plumbing, not the answer
               plan_overrides=("candidates.single_dimension=false", "candidates.tolerance=100"),
               # B0's first two stages at fixed depth on generated images (the notebook's
               # tiny one-shot setting): a supernet of 4 steps, 8 subnets scored
               oneshot_config=str(REPO / "configs/nas/oneshot_smoke.yaml"),
               oneshot_overrides=(*_ONESHOT, *_TINY_DATA,
                                  "proxy.blocks=[r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24]",
                                  "space.se_ratios=[0.0]", "space.repeat_offsets=[0]",
                                  "data.batch_size=16", "proxy.steps_per_epoch=2",
                                  "oneshot.resolutions=[32]", "oneshot.train.epochs=1",
                                  "oneshot.train.steps_per_epoch=4",
                                  "oneshot.train.checkpoint_every=4",
                                  "oneshot.recalibration_images=32", "oneshot.random_trials=8",
                                  "oneshot.population=4", "oneshot.sample_size=2",
                                  "oneshot.bootstrap=50")),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="tiny sizes on CPU: the code paths, no targets judged")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file written")
    parser.add_argument("--work_dir", help="run directories and logs (default: a new "
                        "runs/gpu_check/<time>; must be empty or absent)")
    parser.add_argument("--budget_s", type=float,
                        help="wall-clock seconds for all sections together (default 480; dry "
                             "run 900, for a busy CPU)")
    parser.add_argument("--sections", default=DEFAULT_SECTIONS,
                        help="comma-separated, e.g. 1,2,5 (6, the supernet, runs when named)")
    parser.add_argument("--batch", type=int, help="section 1's batch (default 256; dry 8)")
    parser.add_argument("--jit", action="store_true",
                        help="section 1 with XLA (jit_compile) training steps")
    parser.add_argument("--workers", type=int, nargs="+",
                        help="section 3's local worker counts beside 1 (default 2 4; dry 2)")
    parser.add_argument("--cpu_reference", help="results.json of the quick grid run on CPU")
    parser.add_argument("--grid_set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of section 3's grid config (repeatable)")
    parser.add_argument("--plan_set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of section 5's plan config (repeatable)")
    parser.add_argument("--latency_runs", type=int, help="section 5's timed runs (default 6)")
    parser.add_argument("--oneshot_set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of section 6's one-shot config (repeatable)")
    parser.add_argument("--candidate", type=float, nargs=3, default=(1.2, 1.1, 1.15),
                        metavar=("ALPHA", "BETA", "GAMMA"), help="section 5's timed proxy")
    return parser.parse_args(argv)


def make_settings(args: argparse.Namespace, work_dir: Path) -> Settings:
    """The profile's sizes with the command line's choices on top."""
    values = dict(PROFILES[args.dry_run])
    if args.batch:
        values["batch"] = args.batch
    if args.workers:
        values["workers"] = tuple(args.workers)
    if args.latency_runs:
        values["latency_runs"] = args.latency_runs
    values["workers"] = (1, *(w for w in values["workers"] if w != 1))
    values["grid_overrides"] = (*values["grid_overrides"], *args.grid_set)
    values["plan_overrides"] = (*values["plan_overrides"], *args.plan_set)
    values["oneshot_overrides"] = (*values["oneshot_overrides"], *args.oneshot_set)
    reference = str(Path(args.cpu_reference).resolve()) if args.cpu_reference else None
    return Settings(dry_run=args.dry_run, work_dir=str(work_dir), cpu_reference=reference,
                    candidate=tuple(args.candidate), jit=args.jit, **values)  # fmt: skip


def parse_sections(text: str) -> list[int]:
    """`1,2,5` -> [1, 2, 5]; names the bad value and the accepted ones."""
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        chosen = []
    if not chosen or any(n not in SECTIONS for n in chosen):
        raise ValueError(f"--sections takes numbers from {sorted(SECTIONS)} separated by "
                         f"commas, got {text!r}")
    return chosen


def section_limit(left_s: float, number: int, remaining: list[int]) -> float:
    """Seconds for section `number` out of `left_s`: its share among the sections still to
    run (`remaining`, itself first), so time a section leaves unused goes to the later ones
    and the last one may use all that is left."""
    return max(left_s, 0.0) * SHARES[number] / sum(SHARES[n] for n in remaining)


def run_section(number: int, settings: Settings, limit_s: float) -> dict[str, Any]:
    """Runs section `number` (0: the device preflight) in a child process, stopped at
    `limit_s`; returns its status, seconds, reason and what it recorded before it ended."""
    logs = Path(settings.work_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = SECTIONS.get(number, "devices")
    settings_path, out_path = logs / f"{name}.settings.json", logs / f"{name}.json"
    settings_path.write_text(json.dumps(dataclasses.asdict(
        dataclasses.replace(settings, deadline=time.time() + limit_s))))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if number == 2:  # the input pipeline runs on the host's CPUs, as in training
        env["CUDA_VISIBLE_DEVICES"] = ""
    if number == 4:  # `train` runs beside the MirroredStrategy step's process, on one GPU:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # TensorFlow would otherwise take it all
    tic = time.monotonic()
    with open(logs / f"{name}.log", "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.gpu_check_sections", str(number),
             str(settings_path), str(out_path)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc, timed_out = child.wait(timeout=limit_s), False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    recorded = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if timed_out:  # the child's group and the process groups it started (grid, train)
        for group in [child.pid, *recorded.get("process_groups", [])]:
            _kill_group(group)
        child.wait()
    seconds = round(time.monotonic() - tic, 1)
    if timed_out:
        status = "timeout"
        reason = (f"stopped at its limit of {limit_s:.0f} s while measuring "
                  f"{recorded.get('running') or 'its first step'}")
    elif rc == 0 and not recorded.get("error"):
        status, reason = "ok", None
    else:
        status = "error"
        reason = recorded.get("error") or f"exit status {rc}; see {logs / (name + '.log')}"
    return {"status": status, "seconds": seconds, "reason": reason,
            "device": recorded.get("device"), "data": recorded.get("data", {}),
            "log": str(logs / f"{name}.log")}


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def nvidia_smi() -> str | None:
    """The GPUs as nvidia-smi names them (name, memory, driver), or None without it."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError) as err:
        return f"nvidia-smi failed: {err}"
    return "; ".join(line.strip() for line in out.stdout.splitlines() if line.strip())


def _work_dir(args: argparse.Namespace) -> Path:
    if args.work_dir:
        path = Path(args.work_dir).resolve()
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"--work_dir {str(path)!r} is not empty: the grid and train runs "
                             "would resume instead of measuring; give a new or empty folder")
        return path
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return REPO / "runs" / "gpu_check" / stamp


def main(argv: list[str] | None = None) -> int:
    from benchmarks import gpu_check_report as report_lib

    args = parse_args(argv)
    try:
        chosen = parse_sections(args.sections)
        work_dir = _work_dir(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = make_settings(args, work_dir)
    if args.budget_s is None:
        args.budget_s = DRY_BUDGET_S if args.dry_run else BUDGET_S
    start = time.monotonic()
    deadline = start + args.budget_s
    report: dict[str, Any] = {
        "command": " ".join(["benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None
                                                          else argv)]),
        "dry_run": args.dry_run, "budget_s": args.budget_s, "sections_run": chosen,
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nvidia_smi": nvidia_smi(), "settings": dataclasses.asdict(settings), "sections": {},
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report["devices"] = preflight = run_section(0, settings, min(PREFLIGHT_S, args.budget_s))
    problem = report_lib.preflight_problem(preflight, args.dry_run)
    if problem:
        report["error"] = problem
        report_lib.write(out, report)
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(report_lib.header(report))
    for index, number in enumerate(chosen):
        left = deadline - time.monotonic()
        limit = section_limit(left, number, chosen[index:])
        name = SECTIONS[number]
        if limit < MIN_SECTION_S:
            result = {"status": "skipped", "seconds": 0.0, "data": {}, "device": None,
                      "reason": f"budget: {max(left, 0):.0f} s left of --budget_s "
                                f"{args.budget_s:g}, {limit:.0f} s for this section"}
        else:
            result = run_section(number, settings, limit)
            result["device"] = result["device"] or preflight["device"]  # the grid's: its host's
        report["sections"][name] = result
        print(report_lib.section_text(number, name, result, report), flush=True)
        report_lib.write(out, report)
    report["wall_s"] = round(time.monotonic() - start, 1)
    report["targets"] = report_lib.judge(report)
    print(report_lib.targets_text(report))
    report_lib.write(out, report)
    print(f"written: {out} (logs and run directories: {work_dir})")
    failed = [n for n, r in report["sections"].items() if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # `python benchmarks/gpu_check.py` from anywhere
    sys.exit(main())
