"""YAML experiment configs as frozen dataclasses.

Every command (grid, train, finetune) describes its settings as a frozen dataclass. A config is
resolved in one fixed order: dataclass defaults, then the YAML file, then `--set key=value`
overrides (dotted keys reach nested sections). Unknown keys and values of the wrong type are
rejected with a message that names the key and what is accepted. The resolved config is saved
as `config.yaml` in the run directory, so a run can always be repeated.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file, override or run directory that cannot be used as given."""


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()
) -> T:
    """Resolves `cls` from its defaults, an optional YAML file and `key=value` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {str(path)!r}")
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {str(path)!r} must be a YAML mapping, got {loaded!r}")
        data = loaded
    data = apply_overrides(data, overrides)
    return from_dict(cls, data)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Returns a copy of `data` with each `a.b.c=value` applied; values are parsed as YAML."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override must look like key=value, got {item!r}")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw, item) if raw.strip() else None
    return result


def read_yaml(path: str | Path) -> Any:
    """Parses a YAML file; a syntax error names the file, line and column (1-based)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{str(path)!r} is not valid YAML: {_yaml_problem(err)}") from None


def _parse_value(raw: str, item: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML "
                          f"({_yaml_problem(err)}); quote it") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error as one line: what is wrong, and where (line and column from 1)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "", *,
              base: T | None = None) -> T:
    """Builds dataclass `cls` from a mapping, strictly: unknown keys and bad types raise.

    Keys missing from `data` keep their value in `base` (default: the class defaults). A
    section (a dataclass field) starts from the field's own default, so a command can give a
    shared section other defaults (the grid's `data` keeps 10k training images) and a YAML
    section overrides them key by key. A class may list `MOVED_KEYS` ({old key: new place})
    so that a config written for an older layout is told where each key went.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        moved = getattr(cls, "MOVED_KEYS", {}).get(unknown[0])
        if moved:
            raise ConfigError(
                f"config key {prefix}{unknown[0]} moved to {moved}; write it there instead"
            )
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!r}; accepted keys"
            f"{' under ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        section = _section_default(fields[name], hints[name], base)
        if section is not None and (value is None or isinstance(value, Mapping)):
            kwargs[name] = from_dict(type(section), value or {}, key, base=section)
        else:
            kwargs[name] = _coerce(hints[name], value, key)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


def _section_default(field: dataclasses.Field, hint: Any, base: Any) -> Any:
    """The current value of a dataclass-typed field (from `base`, else its default)."""
    if not (dataclasses.is_dataclass(hint) and isinstance(hint, type)):
        return None
    if base is not None:
        return getattr(base, field.name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def to_dict(config: Any) -> Any:
    """Turns a (nested) config dataclass into plain YAML-friendly data."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def save_config(config: Any, run_dir: str | Path) -> Path:
    """Writes the resolved config to `run_dir/config.yaml`, guarding earlier work.

    Re-running with the same config resumes, so an identical file is fine. A different config
    in a directory that already holds one would mix two experiments, so it is refused. A
    field the saved file lacks (the run was saved before the field existed) at its default
    is not a difference: a new release resumes the runs of an older one, and the file is
    rewritten with the field added. So a new field's default must be the behaviour from
    before it existed (a better setting goes into the shipped configs instead).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    new = to_dict(config)
    if path.exists():
        old = read_yaml(path) or {}
        changed = _changed_keys(old, new, _defaults(config))
        if changed:
            raise ConfigError(
                f"{str(run_dir)!r} already holds a run with a different config "
                f"(changed: {', '.join(changed[:5])}); use another --run_dir or restore "
                "the original settings to resume it"
            )
        if old == new:
            return path
    path.write_text(yaml.safe_dump(new, sort_keys=False))
    return path


def _defaults(config: Any) -> Any:
    """The default values of `config`'s class as plain data (None when it has no default)."""
    try:
        return to_dict(type(config)())
    except TypeError:  # a field without a default
        return None


def _changed_keys(old: Any, new: Any, defaults: Any = None, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        defaults = defaults if isinstance(defaults, dict) else {}
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            if key not in old and key in defaults and new.get(key) == defaults[key]:
                continue  # saved before this field existed, and left at its default
            found += _changed_keys(old.get(key), new.get(key), defaults.get(key),
                                   f"{prefix}{key}.")  # fmt: skip
        return found
    return [] if old == new else [prefix.rstrip(".")]


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value or {}, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_hint = args[0]
            return tuple(_coerce(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where} needs {len(args)} values, got {value!r}")
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
        item_hint = args[0] if args else Any
        return origin(_coerce(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(hint, value, where)


def _coerce_scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
