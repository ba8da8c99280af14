"""Read ``headwater.yaml``: YAML, then ``${ENV_VAR}`` interpolation, then validation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from headwater.config.models import ProjectConfig
from headwater.errors import ConfigError

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
    try:
        config = ProjectConfig.model_validate({k: v for k, v in data.items() if k != "root"})
    except ValidationError as exc:
        raise ConfigError(_describe(exc), fix=_fix(exc)) from None
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


_TAGS = {"postgres", "kafka", "sqlite", "delta", "parquet", "redis", "duckdb"}


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic puts the discriminator value in the location of union members; drop it.
    cleaned = [p for i, p in enumerate(parts) if not (i > 0 and p in _TAGS)]
    return ".".join(cleaned) or "(top level)"


def _describe(exc: ValidationError) -> str:
    messages = []
    for error in exc.errors():
        where = _location(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            messages.append(f"{where}: unknown key")
        elif kind == "missing":
            messages.append(f"{where}: required key is missing")
        elif kind == "union_tag_invalid":
            expected = error.get("ctx", {}).get("expected_tags", "")
            messages.append(
                f"{where}.type: unknown type {error['input'].get('type')!r} (valid: {expected})"
            )
        elif kind == "union_tag_not_found":
            messages.append(f"{where}: needs a `type:` key")
        else:
            messages.append(f"{where}: {error['msg']}")
    return f"{CONFIG_FILE}: " + "; ".join(messages)


def _fix(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "extra_forbidden":
        section = _location(first["loc"][:-1])
        return f"remove or rename the key; docs/configuration.md lists the keys of {section}"
    if first["type"] == "missing":
        return "add the key"
    return "see docs/configuration.md"
