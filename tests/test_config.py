"""Config loading: YAML, overrides in order, strict keys and types, run-directory guard."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from efficientnet_search.config import ConfigError, load_config, save_config, to_dict


@dataclasses.dataclass(frozen=True)
class Model:
    width: float = 1.0
    blocks: tuple[str, ...] = ("r1_k3_s11_e1_i32_o16",)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str = "demo"
    epochs: int = 3
    augment: bool = False
    storage: str | None = None
    model: Model = dataclasses.field(default_factory=Model)


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nmodel:\n  width: 0.5\n")
    config = load_config(Experiment, path, ["model.width=0.25", "augment=true", "name=x"])
    assert config == Experiment(name="x", epochs=5, augment=True, model=Model(width=0.25))
    assert load_config(Experiment).epochs == 3


def test_unknown_key_names_key_and_accepted_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  widht: 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown config key model\.'widht'.*width"):
        load_config(Experiment, path)
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        load_config(Experiment, None, ["epoch=1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [("epochs=lots", "epochs must be an integer"), ("augment=3", "augment must be true or false"),
     ("model.width=wide", "model.width must be a number"), ("epochs", "key=value")],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Experiment, None, [override])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Experiment, tmp_path / "absent.yaml")


def test_lists_become_tuples_and_round_trip(tmp_path):
    config = load_config(Experiment, None, ["model.blocks=[a, b]", "storage=sqlite:///x.db"])
    assert config.model.blocks == ("a", "b")
    save_config(config, tmp_path)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved == to_dict(config)
    assert load_config(Experiment, tmp_path / "config.yaml") == config


def test_run_directory_refuses_a_different_config(tmp_path):
    save_config(Experiment(epochs=3), tmp_path)
    save_config(Experiment(epochs=3), tmp_path)  # same config: resume is fine
    with pytest.raises(ConfigError, match="different config.*epochs"):
        save_config(Experiment(epochs=4), tmp_path)


def test_a_run_saved_before_a_field_existed_resumes_when_the_field_is_at_its_default(tmp_path):
    older = to_dict(Experiment(epochs=3))
    del older["augment"], older["model"]["width"]  # fields a later release added
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(older))
    save_config(Experiment(epochs=3), tmp_path)  # resumes, and the file gains the fields
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == to_dict(
        Experiment(epochs=3))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(older))
    with pytest.raises(ConfigError, match=r"different config \(changed: augment\)"):
        save_config(Experiment(epochs=3, augment=True), tmp_path)  # not the old behaviour


@dataclasses.dataclass(frozen=True)
class Narrow:
    name: str = "narrow"
    model: Model = dataclasses.field(default_factory=lambda: Model(width=0.5))
    MOVED_KEYS: typing.ClassVar[dict[str, str]] = {"width": "model.width"}


def test_a_section_starts_from_the_commands_own_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  blocks: [a]\n")
    assert load_config(Narrow, path).model == Model(width=0.5, blocks=("a",))
    assert load_config(Narrow, None, ["model.width=2"]).model.width == 2.0
    assert load_config(Narrow).model.width == 0.5


def test_a_moved_key_names_its_new_place():
    with pytest.raises(ConfigError, match="config key width moved to model.width"):
        load_config(Narrow, None, ["width=1"])


def test_yaml_syntax_errors_name_the_file_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nmodel:\n  width: [0.5\n")
    with pytest.raises(ConfigError, match=r"c\.yaml' is not valid YAML: .* at line 4, column 1"):
        load_config(Experiment, path)
    with pytest.raises(ConfigError,
                       match=r"override 'epochs=\[1': the value is not valid YAML.*quote it"):
        load_config(Experiment, None, ["epochs=[1"])
