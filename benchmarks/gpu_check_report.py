"""Tables and targets of benchmarks/gpu_check.py: plain functions of the report dict.

Targets (issue 29), each judged PASS or FAIL only on a real run with the figure present:
  * ours / keras.applications >= 1.0 training images/second at mixed_float16;
  * B0 at mixed_float16 >= 5,000 images/second on one H100 (for scale: NVIDIA's TF2
    EfficientNet-B0 reports 3,454 images/second with AMP and 1,209 with TF32 on one
    A100-80GB, DeepLearningExamples TensorFlow2/Classification/ConvNets/efficientnet_v1,
    "Training performance: NVIDIA DGX A100 (8x A100 80GB)", 1 GPU row);
  * the input pipeline (Inception crop, as `train` uses on ImageNet) faster than the model;
  * local workers sharing one GPU complete more trials per minute than one worker;
  * the latency of one proxy repeats within 5% run to run (range over median);
  * the grid's per-candidate means on the GPU match the CPU reference within seed noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from efficientnet_search.jsonio import write_json
from efficientnet_search.tables import format_table

B0_AMP_TARGET = 5000.0
LATENCY_RANGE_TARGET = 0.05
H100 = "H100"


def write(path: Path, report: dict[str, Any]) -> None:
    write_json(path, report)


def preflight_problem(preflight: dict[str, Any], dry_run: bool) -> str | None:
    """Why no section can run (no TensorFlow, or no GPU on a real run), or None."""
    if preflight["status"] != "ok":
        return (f"TensorFlow could not start ({preflight['reason']}); this check needs the "
                "project installed with TensorFlow (`pip install -e .`, and "
                "`pip install 'tensorflow[and-cuda]'` for the GPU)")
    if not dry_run and not preflight["data"].get("gpus"):
        return (f"TensorFlow sees no GPU on this machine ({preflight['device']}): install "
                "`tensorflow[and-cuda]` where a GPU is, or run `--dry-run` on CPU")
    return None


def header(report: dict[str, Any]) -> str:
    devices = report["devices"]["data"]
    mode = "dry run (tiny sizes, CPU)" if report["dry_run"] else "full run"
    return (f"gpu_check: {mode}; budget {report['budget_s']:g} s; TensorFlow "
            f"{devices.get('tensorflow')}, Keras {devices.get('keras')}; device "
            f"{report['devices']['device']}; nvidia-smi: {report['nvidia_smi'] or 'absent'}")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _model_rows(data: dict[str, Any], device: str) -> tuple[list[str], list[list[str]]]:
    head = ["precision", "ours img/s", "keras img/s", "ours/keras", "first step s (ours, "
            "keras)", "device"]
    rows = [[p, _fmt(d["ours"]["images_per_s"]), _fmt(d["keras"]["images_per_s"]),
             _fmt(d["ratio"], 3), f"{d['ours']['first_step_s']}, {d['keras']['first_step_s']}",
             device] for p, d in data.items() if isinstance(d, dict) and "ratio" in d]
    return head, rows


def _pipeline_rows(data: dict[str, Any], device: str, report: dict[str, Any]
                   ) -> tuple[list[str], list[list[str]]]:
    consumed = model_amp_rate(report)
    head = ["augment", "pipeline img/s", "model consumes img/s (AMP)", "pipeline/model",
            "host CPUs"]
    rows = [[a, _fmt(d["images_per_s"]), _fmt(consumed),
             _fmt(d["images_per_s"] / consumed, 2) if consumed else "-", data.get("host_cpus")]
            for a, d in data.items() if isinstance(d, dict) and "images_per_s" in d]
    return head, rows


def _grid_rows(data: dict[str, Any], device: str) -> tuple[list[str], list[list[str]]]:
    head = ["workers", "rc", "wall s", "trials done", "trials/min", "best", "max |z| vs CPU",
            "device"]
    rows = [[r["workers"], r["rc"], _fmt(r["wall_s"]), r["completed_trials"],
             _fmt(r["trials_per_min"], 2), r.get("best") or "-",
             _fmt((r.get("against_cpu") or {}).get("max_abs_z"), 2), device]
            for r in data.get("runs", {}).values()]
    return head, rows


def _distribute_rows(data: dict[str, Any], device: str) -> tuple[list[str], list[list[str]]]:
    head = ["what", "strategy", "replicas", "precision", "img/s", "rc", "s (first fit; run)",
            "device"]
    rows = []
    if "mirrored" in data:
        m = data["mirrored"]
        rows.append(["MirroredStrategy fit", m["name"], m["replicas"], m["precision"],
                     _fmt(m["images_per_s"]), "-", _fmt(m["first_fit_s"]), device])
    if "train" in data:
        t = data["train"]
        rows.append(["train smoke.yaml", t.get("strategy") or "-", t.get("num_replicas") or "-",
                     t.get("precision") or "-", _fmt(t.get("images_per_second")), t["rc"],
                     _fmt(t["wall_s"]), device])
    return head, rows


def _latency_rows(data: dict[str, Any], device: str) -> tuple[list[str], list[list[str]]]:
    head = ["what", "figure", "device"]
    rows = []
    if "repeatability" in data:
        r = data["repeatability"]
        rows.append([f"proxy {tuple(r['candidate'])} at {r['resolution']} px, batch "
                     f"{r['batch']}: medians ms",
                     " ".join(f"{x['median_ms']:.2f}" for x in r["runs"]), device])
        rows.append(["run-to-run range / median", f"{r['range_over_median']:.1%}", device])
    for cost in ("macs", "latency"):
        plan = data.get(f"plan_{cost}")
        if plan:
            figure = (plan["error"] if "error" in plan else
                      f"{len(plan['candidates'])}: {' '.join(sorted(plan['candidates']))}")
            rows.append([f"admitted by {cost} ({plan['seconds']:.0f} s)", figure, device])
    return head, rows


# The CPU figure the GPU's scoring rate is read against (BUILD_NOTES.md, issue 30, session 20:
# oneshot_quick.yaml on 2 quiet Intel Xeon cores with AVX-512, 1,003 networks scored in 334 s of
# search).
CPU_SCORED_PER_S = 1003 / 334.1


def _oneshot_rows(data: dict[str, Any], device: str) -> tuple[list[str], list[list[str]]]:
    head = ["strategy", "rc", "supernet s", "search s", "scored", "scored/s", "CPU scored/s",
            "wall s", "device"]
    o = data.get("oneshot")
    if not o:
        return head, []
    seconds = o.get("seconds") or {}
    return head, [[o["strategy"], o["rc"], _fmt(seconds.get("supernet")),
                   _fmt(seconds.get("search")), _fmt(o.get("scored")),
                   _fmt(o.get("scored_per_s"), 2), _fmt(CPU_SCORED_PER_S, 2), _fmt(o["wall_s"]),
                   device]]  # fmt: skip


def section_text(number: int, name: str, result: dict[str, Any], report: dict[str, Any]) -> str:
    """The section's rows, or its status and reason when it did not finish."""
    title = f"\n[{number}] {name}: {result['status']} in {result['seconds']:g} s"
    if result.get("reason"):
        title += f" ({result['reason']})"
    device = result.get("device") or "-"
    data = result.get("data") or {}
    makers: dict[str, Callable[..., tuple[list[str], list[list[str]]]]] = {
        "model": _model_rows, "grid": _grid_rows, "distribute": _distribute_rows,
        "latency": _latency_rows, "oneshot": _oneshot_rows,
    }
    if name == "pipeline":
        head, rows = _pipeline_rows(data, device, report)
    else:
        head, rows = makers[name](data, device)
    return title + ("\n" + format_table(head, rows) if rows else "")


# ----------------------------------------------------------------------------- targets
def _data(report: dict[str, Any], name: str) -> dict[str, Any]:
    return (report["sections"].get(name) or {}).get("data") or {}


def _device(report: dict[str, Any], name: str) -> str | None:
    return (report["sections"].get(name) or {}).get("device")


def model_amp_rate(report: dict[str, Any]) -> float | None:
    """The faster of the two models at mixed_float16 (what the pipeline must keep up with)."""
    amp = _data(report, "model").get("mixed_float16")
    return max(amp["ours"]["images_per_s"], amp["keras"]["images_per_s"]) if amp else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _figures(report: dict[str, Any]) -> list[tuple[str, str, str, float | None, bool, str]]:
    """(name, target, section, value, met, note) for each target; value None: not measured."""
    amp = _data(report, "model").get("mixed_float16")
    pipeline = _data(report, "pipeline").get("inception")
    runs = _data(report, "grid").get("runs", {})
    many = max((r["trials_per_min"] for k, r in runs.items() if k != "1"), default=None)
    repeat = _data(report, "latency").get("repeatability")
    matched = [r["against_cpu"] for r in runs.values() if r.get("against_cpu", {}).get("z")]
    ratio = amp["ratio"] if amp else None
    b0 = amp["ours"]["images_per_s"] if amp else None
    feed = _ratio(pipeline["images_per_s"] if pipeline else None, model_amp_rate(report))
    workers = _ratio(many, runs.get("1", {}).get("trials_per_min"))
    spread = repeat["range_over_median"] if repeat else None
    worst_z = max((m["max_abs_z"] for m in matched), default=None)
    device = _device(report, "model") or ""
    return [
        ("ours_over_keras_amp", "ours/keras >= 1.0 at mixed_float16", "model", ratio,
         ratio is not None and ratio >= 1.0, ""),
        ("b0_amp_images_per_s", f"B0 AMP >= {B0_AMP_TARGET:,.0f} img/s on one H100", "model",
         b0, b0 is not None and b0 >= B0_AMP_TARGET,
         "" if H100 in device else f"not an H100: {device or 'unknown'}"),
        ("pipeline_over_model", "input pipeline (inception) faster than the model", "pipeline",
         feed, feed is not None and feed > 1.0, ""),
        ("workers_over_one", "N workers sharing the GPU: more trials/min than 1", "grid",
         workers, workers is not None and workers > 1.0, ""),
        ("latency_range", f"latency run-to-run range < {LATENCY_RANGE_TARGET:.0%}", "latency",
         spread, spread is not None and spread < LATENCY_RANGE_TARGET, ""),
        ("grid_matches_cpu", "per-candidate means within seed noise of the CPU run", "grid",
         worst_z, bool(matched) and all(m["within_noise"] for m in matched),
         "" if report["settings"].get("cpu_reference") else "no --cpu_reference given"),
    ]


def judge(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target's value, verdict (PASS / FAIL / n.a. (why)) and the device it was on."""
    judged = {}
    for name, target, section, value, met, note in _figures(report):
        status = (report["sections"].get(section) or {}).get("status", "not run")
        if report["dry_run"]:
            verdict = "n.a. (dry run)"
        elif note:
            verdict = f"n.a. ({note})"
        elif value is None:
            verdict = f"n.a. (section {section}: {status})"
        else:
            verdict = "PASS" if met else "FAIL"
        judged[name] = {"target": target, "value": value, "verdict": verdict,
                        "device": _device(report, section)}
    return judged


def targets_text(report: dict[str, Any]) -> str:
    rows = [[t["target"], _fmt(t["value"], 3), t["verdict"], t["device"] or "-"]
            for t in report["targets"].values()]
    return "\n[targets]\n" + format_table(["target", "value", "verdict", "device"], rows)
