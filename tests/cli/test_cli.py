"""The build and scale commands as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import pytest

from efficientnet_search.cli.main import main, parse_args
from tests.cli_errors import fails_with_one_line
from tests.paths import CONFIGS


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "efficientnet_search.cli.main", *argv],
                          capture_output=True, text=True, timeout=300)


def _run(argv, capsys):
    main(parse_args(["efficientnet-search", *argv]))
    return capsys.readouterr().out


def test_build_variant_prints_stage_table_and_totals(capsys):
    out = _run(["build", "--variant", "b3"], capsys)
    assert "stage7" in out and "head" in out
    assert "input 300x300x3" in out and "1,827,141,392" in out and "(table)" in out


def test_build_custom_coefficients(capsys):
    out = _run(["build", "--width", "1.2", "--depth", "1.4", "--resolution", "300"], capsys)
    assert "1,827,141,392" in out and "(custom)" in out


def test_build_all_prints_paper_beside_ours(capsys):
    out = _run(["build", "--all"], capsys)
    assert out.count("\n   B") == 8 and "0.386B" in out and "37.746B" in out and "37B" in out


def test_build_lite_variant_and_all_show_lite_beside_the_reference(capsys):
    out = _run(["build", "--variant", "lite0"], capsys)
    assert "(trainable 4,652,008)" in out and "multiply-adds 385,187,552" in out
    out = _run(["build", "--all"], capsys)
    assert "Lite0" in out and "Lite4" in out and "13.01M" in out and "README" in out


def test_build_output_saves_model(tmp_path, capsys):
    path = tmp_path / "m.keras"
    _run(["build", "--width", "0.25", "--depth", "0.25", "--resolution", "32",
          "--num_classes", "4", "--output", str(path)], capsys)
    assert keras.models.load_model(path).output_shape == (None, 4)


def test_scale_paper_preset_and_results_json(tmp_path, capsys):
    out = _run(["scale", "--coefficients", "paper", "--phi", "0", "1", "2"], capsys)
    assert "alpha 1.2, beta 1.1, gamma 1.15" in out and "1.92" in out and "3.69" in out
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"best": {"alpha": 1.4, "beta": 1.1, "gamma": 1.05}}))
    out = _run(["scale", "--coefficients", str(results), "--phi", "1"], capsys)
    assert "alpha 1.4" in out


def _grid_results(path, best_set, verify=None):
    best = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "key": "a1.20_b1.10_g1.15"}
    payload = {"best": best, "best_set": best_set}
    if verify:
        payload["verify"] = {"verdict": verify}
    path.write_text(json.dumps(payload))
    return path


def test_scale_from_a_tied_grid_says_the_best_is_not_a_winner(tmp_path, capsys):
    results = _grid_results(tmp_path / "results.json",
                            ["a1.20_b1.10_g1.15", "a1.00_b1.00_g1.19"])  # fmt: skip
    out = _run(["scale", "--coefficients", str(results), "--phi", "1"], capsys)
    assert "alpha 1.2" in out  # the family is still built from the best by mean
    note = next(line for line in out.splitlines() if line.startswith("note:"))
    assert "best by mean only" in note and "a1.00_b1.00_g1.19" in note
    assert f"verify --run_dir {tmp_path}" in note


def test_scale_caveat_for_one_seed_and_none_for_a_clear_winner(tmp_path, capsys):
    one_seed = _grid_results(tmp_path / "one.json", None)
    out = _run(["scale", "--coefficients", str(one_seed), "--phi", "1"], capsys)
    assert "not a finding" in out and "search.repeats >= 2" in out
    clear = _grid_results(tmp_path / "clear.json", ["a1.20_b1.10_g1.15"])
    assert "note:" not in _run(["scale", "--coefficients", str(clear), "--phi", "1"], capsys)
    assert "note:" not in _run(["scale", "--coefficients", "paper", "--phi", "1"], capsys)


def test_scale_caveat_carries_the_verify_verdict(tmp_path, capsys):
    _grid_results(tmp_path / "results.json", ["a1.20_b1.10_g1.15", "a1.00_b1.77_g1.00"],
                  verify="phi=2: paper > width: the phi=1 ranking survives.")
    out = _run(["scale", "--coefficients", str(tmp_path), "--phi", "1"], capsys)  # a run dir
    assert "Verify: phi=2: paper > width" in out


def test_scale_output_dir_saves_each_member(tmp_path, capsys):
    _run(["scale", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15", "--phi", "1",
          "--base_resolution", "32", "--num_classes", "3", "--output_dir", str(tmp_path)], capsys)
    assert keras.models.load_model(tmp_path / "phi1.keras").input_shape == (None, 37, 37, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["build", "--variant", "b9"], "unknown variant 'b9'"),
     (["build", "--widt", "2"], "unrecognized arguments: --widt"),
     (["build", "--width", "-1"], "width must be > 0"),
     (["scale", "--alpha", "1.2"], "all of --alpha --beta --gamma"),
     (["scale", "--coefficients", "missing.json"], "coefficients not found")],
)
def test_bad_flags_exit_2_with_one_line(argv, message):
    result = run_cli(*argv)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "efficientnet-search" in line]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_strategy_flag_accepts_every_strategy_name():
    from efficientnet_search import export
    from efficientnet_search.cli import main as cli
    from efficientnet_search.training import distribute

    assert cli.STRATEGY_CHOICES == distribute.STRATEGY_NAMES
    assert cli.EXPORT_FORMATS == export.FORMATS
    args = parse_args(["efficientnet-search", "train", "--config", "x.yaml",
                       "--strategy", "mirrored"])
    assert args.strategy == "mirrored"


@pytest.mark.parametrize("command", ["grid", "train", "finetune"])
def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys, command):
    config = tmp_path / "broken.yaml"
    config.write_text("name: broken\nmodel:\n  width: [0.25, 0.5\nepochs: 3\n")
    run_dir = tmp_path / "run"
    err = fails_with_one_line([command, "--config", str(config), "--run_dir", str(run_dir)],
                               capsys)
    assert f"{str(config)!r} is not valid YAML" in err and "line 4" in err, err
    assert not run_dir.exists()


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"), ("{'best': 1}", "is not valid JSON"), ("[1, 2", "is not valid JSON")])
def test_an_unreadable_results_json_is_named(tmp_path, capsys, text, message):
    results = tmp_path / "results.json"
    results.write_text(text)
    err = fails_with_one_line(["scale", "--coefficients", str(results), "--phi", "1",
                                "--output_dir", str(tmp_path / "family")], capsys)
    assert f"{str(results)!r} {message}" in err, err
    assert not (tmp_path / "family").exists()


def test_strategy_tpu_without_a_tpu_says_how_to_name_one(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        pytest.skip("this machine has a TPU: the no-TPU message cannot show here")
    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    run_dir = tmp_path / "run"
    err = fails_with_one_line(["train", "--config", str(CONFIGS / "train" / "smoke.yaml"),
                                "--strategy", "tpu", "--run_dir", str(run_dir)], capsys)
    assert "no TPU found" in err and "--tpu NAME" in err and "TPU_NAME" in err, err
    assert "Please provide a TPU Name" not in err
    assert not run_dir.exists()


def test_help_says_what_each_command_does(capsys):
    from efficientnet_search.cli.main import COMMANDS

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["efficientnet-search", "--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name, command in COMMANDS.items():
        assert command.help, name
        assert any(line.split() == [name, *command.help.split()] for line in lines), name


def test_parsing_flags_and_importing_the_package_load_no_tensorflow():
    code = ("import sys\n"
            "import efficientnet_search\n"
            "from efficientnet_search.cli.main import parse_args\n"
            "parse_args(['efficientnet-search', 'train', '--config', 'x.yaml'])\n"
            "print('tensorflow' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"
