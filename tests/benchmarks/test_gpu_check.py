"""benchmarks/gpu_check.py: the dry run keeps the GPU check runnable while no GPU is lent.

The dry run runs every section's code at tiny sizes on CPU. The default suite runs sections
1, 2 and 5 (~1 minute on 2 cores) and the one-shot section 6; the grid and `train` sections
(3, 4) add ~2 more minutes and are marked slow. The targets' verdicts are checked on made-up
reports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from benchmarks import gpu_check_report as report_lib
from tests.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
TARGETS = {"ours_over_keras_amp", "b0_amp_images_per_s", "pipeline_over_model",
           "workers_over_one", "latency_range", "grid_matches_cpu"}


def _dry_run(tmp_path, *flags: str) -> tuple[dict, str]:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out),
         "--work_dir", str(tmp_path / "work"), *flags],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(out.read_text()), done.stdout


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _assert_sections_ok(report: dict, names: set[str]) -> None:
    assert set(report["sections"]) == names
    for name, section in report["sections"].items():
        assert section["status"] == "ok", (name, section["reason"])
        assert section["device"].startswith("CPU"), name  # the device beside every figure


def _assert_targets_not_claimed(report: dict, stdout: str) -> None:
    assert set(report["targets"]) == TARGETS
    assert {t["verdict"] for t in report["targets"].values()} == {"n.a. (dry run)"}
    assert "PASS" not in stdout and "FAIL" not in stdout


def test_dry_run_model_pipeline_latency(tmp_path):
    report, stdout = _dry_run(tmp_path, "--sections", "1,2,5")
    _assert_sections_ok(report, {"model", "pipeline", "latency"})
    model = report["sections"]["model"]["data"]
    for precision in ("mixed_float16", "float32"):
        rates = model[precision]
        assert len(rates["ours"]["rates"]) == 2  # --rounds of alternation, dry run: 2
        for name in ("ours", "keras"):
            assert _positive(rates[name]["images_per_s"]) and rates[name]["loss_finite"]
        assert _positive(rates["ratio"])
    assert model["policy_restored"]
    pipeline = report["sections"]["pipeline"]["data"]
    assert _positive(pipeline["inception"]["images_per_s"])
    assert _positive(pipeline["randaugment"]["images_per_s"])
    latency = report["sections"]["latency"]["data"]
    assert len(latency["repeatability"]["runs"]) == 3
    assert latency["repeatability"]["range_over_median"] >= 0
    for cost in ("macs", "latency"):
        candidates = latency[f"plan_{cost}"]["candidates"]
        assert candidates and all(_positive(c["cost_ratio"]) for c in candidates.values())
    assert latency["plan_comparison"]["both"]
    # The figures print beside their targets; a dry run judges none of them.
    assert "[targets]" in stdout and "n.a. (dry run)" in stdout
    assert _positive(report["targets"]["ours_over_keras_amp"]["value"])
    _assert_targets_not_claimed(report, stdout)


@pytest.mark.slow
def test_dry_run_every_section(tmp_path):
    report, stdout = _dry_run(tmp_path)
    default = gpu_check.parse_sections(gpu_check.DEFAULT_SECTIONS)
    _assert_sections_ok(report, {gpu_check.SECTIONS[n] for n in default})
    runs = report["sections"]["grid"]["data"]["runs"]
    assert set(runs) == {"1", "2"}
    for run in runs.values():  # smoke grid: 1 candidate x 2 seeds
        assert run["rc"] == 0 and run["completed_trials"] == 2
        assert _positive(run["trials_per_min"]) and run["best_set"]
        assert all(0 <= c["mean"] <= 1 for c in run["candidates"].values())
    distribute = report["sections"]["distribute"]["data"]
    assert distribute["mirrored"]["strategy"] == "MirroredStrategy"
    assert _positive(distribute["mirrored"]["images_per_s"])
    assert distribute["train"]["rc"] == 0 and distribute["train"]["strategy"] == "mirrored"
    assert _positive(distribute["train"]["images_per_second"])
    _assert_targets_not_claimed(report, stdout)


def test_dry_run_oneshot_section(tmp_path):
    # the supernet under the section 4 strategy (mirrored on CPU), scored and reported
    report, stdout = _dry_run(tmp_path, "--sections", "6")
    _assert_sections_ok(report, {"oneshot"})
    oneshot = report["sections"]["oneshot"]["data"]["oneshot"]
    assert oneshot["rc"] == 0 and oneshot["strategy"] == "mirrored"
    assert "oneshot.train.strategy=mirrored" in oneshot["command"]
    assert oneshot["scored"] >= 8 and _positive(oneshot["scored_per_s"])
    assert _positive(oneshot["seconds"]["supernet"])
    assert "scored/s" in stdout and "[6] oneshot: ok" in stdout


def _settings(tmp_path, **changes) -> gpu_check.Settings:
    args = gpu_check.parse_args(["--dry-run"])
    settings = gpu_check.make_settings(args, tmp_path / "work")
    return gpu_check.dataclasses.replace(settings, **changes)


def test_a_failing_section_records_why(tmp_path):
    result = gpu_check.run_section(5, _settings(tmp_path, grid_config="missing.yaml"), 120)
    assert result["status"] == "error"
    assert "missing.yaml" in result["reason"]


def test_a_section_past_its_limit_is_stopped_and_named(tmp_path):
    settings = _settings(tmp_path, latency_runs=10_000)
    result = gpu_check.run_section(5, settings, 20)
    assert result["status"] == "timeout"
    assert result["reason"].startswith("stopped at its limit of 20 s while measuring")
    assert result["seconds"] < 35  # stopped, not waited for
    # The step it was in, unless TensorFlow took the 20 s to import on a loaded machine.
    assert "latency run" in result["reason"] or "its first step" in result["reason"]


def test_time_left_unused_goes_to_later_sections():
    chosen = [1, 2, 3, 4, 5]
    first = gpu_check.section_limit(480, 1, chosen)
    assert 0 < first < 480 * 0.5
    # Section 1 took 10 s of its share: section 2 gets a share of the 470 s left.
    assert gpu_check.section_limit(470, 2, chosen[1:]) > gpu_check.section_limit(480 - first,
                                                                                 2, chosen[1:])
    assert gpu_check.section_limit(100, 5, [5]) == pytest.approx(100)  # the last: all left


def test_bad_sections_are_refused_by_name():
    with pytest.raises(ValueError, match="'1,9'"):
        gpu_check.parse_sections("1,9")
    assert gpu_check.parse_sections("5,1,1") == [1, 5]


def _real_report(device: str, ratio: float, ours: float, keras: float, pipeline: float) -> dict:
    amp = {"ours": {"images_per_s": ours}, "keras": {"images_per_s": keras}, "ratio": ratio}
    runs = {"1": {"trials_per_min": 4.0},
            "2": {"trials_per_min": 6.0, "against_cpu": {"z": {"a1.20_b1.10_g1.15": 1.2},
                                                         "max_abs_z": 1.2,
                                                         "within_noise": True}}}
    return {"dry_run": False, "settings": {"cpu_reference": "cpu/results.json"}, "sections": {
        "model": {"status": "ok", "device": device, "data": {"mixed_float16": amp}},
        "pipeline": {"status": "ok", "device": "CPU", "data": {
            "inception": {"images_per_s": pipeline}}},
        "grid": {"status": "ok", "device": device, "data": {"runs": runs}},
        "latency": {"status": "timeout", "device": device, "data": {}},
    }}  # fmt: skip


def test_targets_judged_on_a_real_run():
    report = _real_report("GPU: NVIDIA H100 80GB HBM3", 1.04, 5200.0, 5000.0, 9000.0)
    judged = report_lib.judge(report)
    assert judged["ours_over_keras_amp"]["verdict"] == "PASS"
    assert judged["b0_amp_images_per_s"]["verdict"] == "PASS"
    assert judged["pipeline_over_model"]["verdict"] == "PASS"
    assert judged["workers_over_one"]["verdict"] == "PASS"
    assert judged["grid_matches_cpu"]["verdict"] == "PASS"
    assert judged["latency_range"]["verdict"] == "n.a. (section latency: timeout)"
    assert judged["ours_over_keras_amp"]["device"] == "GPU: NVIDIA H100 80GB HBM3"


def test_targets_missed_and_other_devices():
    slow = report_lib.judge(_real_report("GPU: NVIDIA H100 PCIe", 0.9, 3000.0, 3333.0, 2000.0))
    assert slow["ours_over_keras_amp"]["verdict"] == "FAIL"
    assert slow["b0_amp_images_per_s"]["verdict"] == "FAIL"
    assert slow["pipeline_over_model"]["verdict"] == "FAIL"  # 2,000 < 3,333 (keras)
    h200 = report_lib.judge(_real_report("GPU: NVIDIA H200", 1.1, 7000.0, 6000.0, 9000.0))
    assert h200["b0_amp_images_per_s"]["verdict"].startswith("n.a. (not an H100")
    assert h200["b0_amp_images_per_s"]["value"] == 7000.0
    assert h200["workers_over_one"]["value"] == 1.5  # 6 trials/min against 4
    apart = _real_report("GPU: NVIDIA H100", 1.1, 7000.0, 6000.0, 9000.0)
    apart["sections"]["grid"]["data"]["runs"]["2"]["against_cpu"].update(
        max_abs_z=4.1, within_noise=False)
    assert report_lib.judge(apart)["grid_matches_cpu"]["verdict"] == "FAIL"


def test_a_full_run_without_gpu_stops_at_once_and_says_why(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--work_dir", str(tmp_path / "work"),
         "--sections", "2"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if json.loads(out.read_text())["devices"]["data"].get("gpus"):
        pytest.skip("this machine has a GPU: a full run would start")
    assert done.returncode == 2
    assert "sees no GPU" in done.stderr and "--dry-run" in done.stderr
    assert json.loads(out.read_text())["sections"] == {}
