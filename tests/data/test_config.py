"""Tests for data.config: one `data` section and one loader for every command, and the bad
data files each command refuses with one line, exit status 2 and nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from absl import flags

from efficientnet_search import config as config_lib
from efficientnet_search.cli.main import main, parse_args
from efficientnet_search.data import synthetic as data_synthetic
from efficientnet_search.data.config import DataConfig, load
from efficientnet_search.medical.finetune import FinetuneConfig
from efficientnet_search.search.grid.run import GridConfig
from efficientnet_search.training.train import TrainConfig
from tests.paths import CONFIGS

COMMANDS = {"grid": GridConfig, "train": TrainConfig, "finetune": FinetuneConfig}


# ----------------------------------------------------------------------------- the config


def test_every_command_uses_the_one_data_config():
    for cls in COMMANDS.values():
        assert type(config_lib.load_config(cls).data) is DataConfig


@pytest.mark.parametrize(
    ("command", "defaults"),
    [("grid", {"max_train": 10_000, "max_val": 5_000, "batch_size": 128, "augment": "none"}),
     ("train", {"max_train": None, "batch_size": 32, "augment": "flip"}),
     ("finetune", {"batch_size": 64, "augment": "medical"})],
)
def test_a_data_section_overrides_the_command_defaults_key_by_key(command, defaults, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  source: synthetic:4\n")
    data = config_lib.load_config(COMMANDS[command], path).data
    assert data.source == "synthetic:4"
    assert {key: getattr(data, key) for key in defaults} == defaults


# (command, old key, where it went); one test, not parametrized: each case takes milliseconds.
MOVED = [("train", "batch_size=8", "data.batch_size"), ("train", "epochs=2", "train.epochs"),
         ("train", "recipe.base_lr=0.1", "train"),
         ("grid", "proxy.batch_size=8", "data.batch_size"),
         ("grid", "proxy.augment=flip", "data.augment")]  # fmt: skip
BAD_VALUES = [
    ("data.source=s3:bucket", "unknown data source 's3:bucket'; accepted: fashion_mnist"),
    ("data.source=synthetic:1", r"synthetic:CLASSES takes a class count in \[2, 16\]"),
    ("data.batch_size=0", "batch_size must be >= 1, got batch_size=0"),
    ("data.augment=mixup", "augment must be one of none, flip"),
    ("data.validation_fraction=1", r"validation_fraction must be in \(0, 1\)"),
    ("data.max_train=0", "max_train must be >= 1 or null"),
]


def test_keys_of_the_old_layout_say_where_they_moved():
    for command, override, new_place in MOVED:
        with pytest.raises(config_lib.ConfigError, match=f"moved to {new_place};") as err:
            config_lib.load_config(COMMANDS[command], None, [override])
        assert "\n" not in str(err.value)


def test_bad_data_values_are_refused_by_every_command_when_the_config_loads():
    for override, message in BAD_VALUES:
        for cls in COMMANDS.values():
            with pytest.raises(config_lib.ConfigError, match=message):
                config_lib.load_config(cls, None, [override])


def test_shipped_configs_keep_their_batch_size_in_data():
    expected = {"grid/smoke": 32, "grid/fashion_mnist_quick": 128, "grid/full_b0_224": 128,
                "train/smoke": 64, "train/fashion_mnist_quick": 128, "train/b0_imagenet_8gpu": 64,
                "train/b0_imagenet_tpu": 128, "finetune/smoke": 32,
                "finetune/pneumoniamnist_quick": 64}  # fmt: skip
    for name, batch in expected.items():
        kind = name.split("/")[0]
        config = config_lib.load_config(COMMANDS[kind], CONFIGS / f"{name}.yaml")
        assert config.data.batch_size == batch, name


# ----------------------------------------------------------------------------- the loader


def test_synthetic_sizes_classes_and_seed():
    config = DataConfig(source="synthetic:5", max_train=60, max_val=20)
    splits = load(config, seed=1)
    assert splits.num_classes == 5 and splits.sizes == {"train": 60, "val": 20, "test": 8}
    default = load(DataConfig(source="synthetic"), seed=1)
    assert default.num_classes == 3 and default.sizes["train"] == 512

    def first_image(seed):
        return next(iter(load(config, seed=seed).train))[0].numpy()

    assert np.array_equal(first_image(1), first_image(1))
    assert not np.array_equal(first_image(1), first_image(2))


def test_class_names_rename_the_classes_or_say_how_many_are_needed():
    splits = load(DataConfig(source="synthetic:2", class_names=("normal", "pneumonia")), 0)
    assert splits.class_names == ("normal", "pneumonia")
    with pytest.raises(ValueError, match="3 names but 'synthetic:2' has 2 classes"):
        load(DataConfig(source="synthetic:2", class_names=("a", "b", "c")), 0)


def test_export_calibration_and_evaluate_read_data_through_the_loader(tmp_path, capsys):
    from efficientnet_search import export
    from efficientnet_search.arch.model import build_model

    model = build_model(width=0.1, depth=0.1, resolution=32, num_classes=3,
                        blocks=["r1_k3_s11_e1_i32_o16_se0.25"])  # fmt: skip
    check, calibration = export.sample_images(model, "synthetic", n=8)
    assert check.shape == (8, 32, 32, 3) and calibration.shape == (128, 32, 32, 3)
    model.save(tmp_path / "m.keras")
    _cli(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", "synthetic",
          "--split", "val"])
    assert "on synthetic [val] at 32 px" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad files


def _npz_with_nan(path):
    images, labels = data_synthetic.synthetic_arrays(20, num_classes=2, image_size=16)
    images = images.astype(np.float32)
    images[:2] = np.nan
    images[5, 0, 0] = np.inf
    np.savez(path, train_images=images, train_labels=labels)
    return "'train_images' has 513 non-finite pixels (NaN or inf)"


def _npz_with_negative_labels(path):
    images, _ = data_synthetic.synthetic_arrays(20, num_classes=2, image_size=16)
    np.savez(path, train_images=images, train_labels=np.full(20, -1))
    return "'train_labels' has label -1: class ids must be 0, 1, ..., K-1"


def _text_named_npz(path):
    path.write_text("label,path\n0,a.png\n")
    return "is not an npz archive"


BAD_FILES = {"nan": _npz_with_nan, "negative_labels": _npz_with_negative_labels,
             "text": _text_named_npz}  # fmt: skip


def _cli(argv: list[str]) -> None:
    flags.FLAGS.mark_as_parsed()  # absl.app parses flags in the real command
    main(parse_args(["efficientnet-search", *argv]))


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_npz_stops_every_command_with_one_line_and_writes_nothing(
    command, kind, tmp_path, capsys
):
    bad = tmp_path / "bad.npz"
    expected = BAD_FILES[kind](bad)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        _cli([command, "--config", str(CONFIGS / command / "smoke.yaml"), "--run_dir",
              str(run_dir), "--set", f"data.source=npz:{bad}"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"efficientnet-search {command}: error: ") and "\n" not in err
    assert expected in err and str(bad) in err
    assert "pickled" not in err and "[0, 0)" not in err
    assert not run_dir.exists()
