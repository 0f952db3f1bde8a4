"""Configuration: every room's settings class, loaded from flags, env, a YAML file and defaults.

`Config` composes one attrs settings class per room; adding a room is one
field in `Config`. The loader knows nothing about any particular setting: it
reads each field's metadata (`flag`, `help`, `duration`, `choices`) and type,
so `--help`, the `EXTERNALSOURCE_<FLAG>` environment variables, the YAML keys
(flag names without dashes) and docs/configuration.md all come from one place.

Precedence is flag > environment > file (`--config`) > default. Values are
parsed by the field's type: booleans accept `--flag` and `--flag=false`,
durations are Go durations (`1m30s`), lists are comma-separated. Any bad value
raises `ConfigError` whose message is one line naming the setting; `main`
prints it and exits with code 2, before anything starts.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import yaml

from controller.api.durations import format_duration
from controller.api.durations import parse_duration as parse_go_duration
from controller.runtime.settings import ControllerSettings
from generators.base import GeneratorSettings
from hooks.settings import HooksSettings
from storage.s3_settings import S3Settings
from storage.settings import StorageSettings

ENV_PREFIX = "EXTERNALSOURCE_"
PROG = "externalsource-controller"


@attrs.frozen
class Config:
    """All settings of the process, one attrs settings class per room (one line each)."""

    controller: ControllerSettings
    generators: GeneratorSettings
    storage: StorageSettings
    hooks: HooksSettings
    s3: S3Settings


class ConfigError(Exception):
    """Invalid configuration; the message is one line naming the setting."""


@attrs.frozen
class FlagSpec:
    """One setting as the loader sees it."""

    flag: str
    help: str
    owner: type
    field: str
    kind: type
    optional: bool
    default: Any
    duration: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return self.flag.removeprefix("--")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper().replace("-", "_")


def flag_specs() -> list[FlagSpec]:
    """Every setting of every room, in declaration order; flags are unique."""
    specs: list[FlagSpec] = []
    for section in attrs.fields(Config):
        owner = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(owner)
        for field in attrs.fields(owner):
            meta = field.metadata
            kind, optional = _unwrap(hints[field.name])
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            specs.append(
                FlagSpec(
                    flag=meta["flag"],
                    help=meta["help"],
                    owner=owner,
                    field=field.name,
                    kind=kind,
                    optional=optional,
                    default=default,
                    duration=bool(meta.get("duration")),
                    choices=tuple(meta["choices"]) if "choices" in meta else None,
                )
            )
    flags = [s.flag for s in specs]
    duplicates = {f for f in flags if flags.count(f) > 1}
    if duplicates:
        raise RuntimeError(f"flags declared twice: {sorted(duplicates)}")
    return specs


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Parse `argv` (without the program name) and `environ` into a validated `Config`."""
    specs = flag_specs()
    given = vars(build_parser(specs).parse_args(list(argv)))
    config_spec = next(s for s in specs if s.key == "config")
    config_path = given.get("config") or environ.get(config_spec.env)
    from_file = _read_file(config_path, specs) if config_path else {}
    values: dict[type, dict[str, Any]] = {}
    for spec in specs:
        raw: Any
        if spec.field in given:
            raw = given[spec.field]
        elif spec.env in environ:
            raw = environ[spec.env]
        elif spec.key in from_file:
            raw = from_file[spec.key]
        else:
            continue
        values.setdefault(spec.owner, {})[spec.field] = parse_value(spec, raw)
    sections = {}
    for section in attrs.fields(Config):
        owner = typing.get_type_hints(Config)[section.name]
        try:
            sections[section.name] = owner(**values.get(owner, {}))
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc).splitlines()[0]) from exc
    return Config(**sections)


def build_parser(specs: Sequence[FlagSpec] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Turns external HTTP APIs into Flux ExternalArtifacts. Every flag can also "
        "be set with its EXTERNALSOURCE_* environment variable or a key in the --config file; "
        "precedence is flag > environment > file > default.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    for spec in specs or flag_specs():
        kwargs: dict[str, Any] = {"dest": spec.field, "help": _help_line(spec)}
        if spec.kind is bool:
            kwargs.update(nargs="?", const="true", metavar="true|false")
        else:
            kwargs["metavar"] = _metavar(spec)
        parser.add_argument(spec.flag, **kwargs)
    return parser


def parse_value(spec: FlagSpec, raw: Any) -> Any:
    """One setting's value from a flag/env string or a YAML scalar/list."""
    if raw is None:
        if spec.optional:
            return None
        raise ConfigError(f"{spec.flag}: a value is required")
    if isinstance(raw, list):
        if spec.kind not in (list, tuple):
            raise ConfigError(f"{spec.flag}: expected a single value, not a list")
        return spec.kind(str(item) for item in raw)
    text = str(raw).strip() if not isinstance(raw, bool) else str(raw).lower()
    if spec.optional and text == "":
        return None
    try:
        value = _convert(spec, text)
    except ValueError as exc:
        raise ConfigError(f"{spec.flag}: {exc}") from None
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{spec.flag}: {text!r} is not one of {', '.join(spec.choices)}")
    return value


def _convert(spec: FlagSpec, text: str) -> Any:
    if spec.duration:
        return parse_go_duration(text)
    if spec.kind is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"{text!r} is not true or false")
    if spec.kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    if spec.kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if spec.kind in (list, tuple):
        return spec.kind(item.strip() for item in text.split(",") if item.strip())
    return text


def _unwrap(hint: Any) -> tuple[type, bool]:
    """(base type, accepts None) of a field annotation like `float | None` or `tuple[str, ...]`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        base, _ = _unwrap(inner[0])
        return base, type(None) in args
    origin = typing.get_origin(hint)
    if origin is not None:
        return origin, False
    return hint, False


def _read_file(path: str, specs: Sequence[FlagSpec]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"--config: {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must be a mapping of flag names to values")
    known = {s.key for s in specs} - {"config"}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"--config: unknown setting {unknown[0]!r} in {path}")
    return data


def _default_text(spec: FlagSpec) -> str:
    default = spec.default
    if spec.kind is bool:
        return str(default).lower()
    if default is None or default == "":
        return "unset"
    if spec.duration:
        return format_duration(default)
    return str(default)


def _help_line(spec: FlagSpec) -> str:
    return f"{spec.help} [env {spec.env}; default {_default_text(spec)}]".replace("%", "%%")


def _metavar(spec: FlagSpec) -> str:
    if spec.choices:
        return "|".join(spec.choices)
    if spec.duration:
        return "DURATION"
    return {int: "INT", float: "NUMBER"}.get(spec.kind, "VALUE")


class _Parser(argparse.ArgumentParser):
    """Turns argparse's usage-and-exit into a one-line ConfigError."""

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(message)


def flags_table() -> str:
    """The Markdown table of every setting that docs/configuration.md embeds."""
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for spec in flag_specs():
        default = _default_text(spec)
        meaning = spec.help + (f" One of: {', '.join(spec.choices)}." if spec.choices else "")
        meaning = meaning.replace("|", r"\|")
        rows.append(f"| `{spec.flag}` | `{spec.env}` | `{default}` | {meaning} |")
    return "\n".join(rows)
