"""Read ``headwater.yaml``: YAML, then ``${ENV_VAR}`` interpolation, then validation."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from headwater.config.models import PluginConfig, ProjectConfig, plugin_model
from headwater.errors import ConfigError, HeadwaterError

CONFIG_FILE = "headwater.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(root: str | Path = ".") -> ProjectConfig:
    """Load and validate ``<root>/headwater.yaml``.

    Raises:
        ConfigError: the file is missing, is not valid YAML, names a missing environment
            variable, or does not match the schema. The message names the YAML key.
    """
    root = Path(root).resolve()
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {root}",
            fix="run `headwater init DIR` to create a project, or pass --repo DIR",
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{CONFIG_FILE} is not valid YAML{where}: {problem}",
            fix="check indentation and quoting",
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{CONFIG_FILE} must be a mapping of keys, got {type(raw).__name__}",
            fix="start with `project: NAME`",
        )
    data = _interpolate(raw, ())
    return parse_config(data, root)


def parse_config(data: dict[str, Any], root: Path) -> ProjectConfig:
    """Validate an already-read mapping."""
    if "root" in data:  # a model field set by the loader, not a key users may write
        raise ConfigError(
            f"{CONFIG_FILE}: root: unknown key; valid keys of the top level: "
            f"{', '.join(_keys(ProjectConfig))}",
            fix="remove it: the project folder is the one holding headwater.yaml (or --repo DIR)",
        )
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data), fix=_fix(exc)) from None
    return config.model_copy(update={"root": root})


def _interpolate(value: Any, path: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i))) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{CONFIG_FILE}: {'.'.join(path)} uses ${{{name}}}, but the environment "
                f"variable {name} is not set",
                fix=f"export {name}=... or write ${{{name}:-default}}",
            )

        return _VAR.sub(substitute, value)
    return value


def _tag(model: type[BaseModel]) -> str | None:
    """The ``type:`` value of a connection/store model (its ``Literal``), if it has one."""
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return str(args[0]) if len(args) == 1 else None


def _model(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """The model that validated ``raw`` as ``annotation``: the annotation itself, or for a
    pluggable section the model of the plugin its ``type:`` names."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    if issubclass(annotation, PluginConfig) and annotation.group:
        name = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            return None
        try:
            return plugin_model(annotation.group, name)
        except HeadwaterError:
            return None
    return annotation


def _walk(loc: tuple[int | str, ...], data: dict[str, Any]) -> tuple[str, type[BaseModel] | None]:
    """Resolve a pydantic error location against :class:`ProjectConfig` and the YAML ``data``.

    Returns the dotted YAML path and the model that holds the last key of the path (``None``
    when it is not a model's key).
    """
    parts: list[str] = []
    current: Any = ProjectConfig
    raw: Any = data
    holder: type[BaseModel] | None = None
    for item in loc:
        key = str(item)
        parts.append(key)
        holder = _model(current, raw)
        if holder is not None:
            fields = {f.alias or name: f for name, f in holder.model_fields.items()}
            field = fields.get(key)
            current = field.annotation if field is not None else None
        else:
            args = get_args(current)
            current = args[-1] if get_origin(current) in (dict, list) and args else None
        if isinstance(raw, dict):
            raw = raw.get(key)
        elif isinstance(raw, list) and isinstance(item, int) and 0 <= item < len(raw):
            raw = raw[item]
        else:
            raw = None
    return ".".join(parts) or "(top level)", holder


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys ``model`` accepts in YAML (aliases where set; the loader-only ``root`` left out)."""
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]


def _unknown_key(where: str, holder: type[BaseModel] | None) -> str:
    key = where.rpartition(".")[2]
    if holder is None:
        return f"{where}: unknown key"
    valid = _keys(holder)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    tag = _tag(holder)
    section = where.rpartition(".")[0] or "the top level"
    kind = f" of a {tag} {section}" if tag and section != "the top level" else f" of {section}"
    return f"{where}: unknown key{hint}; valid keys{kind}: {', '.join(valid)}"


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    messages = []
    for error in exc.errors():
        where, holder = _walk(error["loc"], data)
        kind = error["type"]
        if kind == "extra_forbidden":
            messages.append(_unknown_key(where, holder))
        elif kind == "missing":
            messages.append(f"{where}: required key is missing")
        elif kind == "type_unknown":
            messages.append(f"{where}.type: {error['msg']}")
        else:
            messages.append(f"{where}: {error['msg']}")
    return f"{CONFIG_FILE}: " + "; ".join(messages)


def _fix(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "extra_forbidden":
        return "remove or rename the key"
    if first["type"] == "missing":
        return "add the key"
    if first["type"] == "type_missing":
        return "add a `type:` key"
    if first["type"] == "type_unknown":
        return (
            "set `type:` to one of the valid types, or install the package that provides it "
            "(see docs/configuration.md)"
        )
    return "see docs/configuration.md"
