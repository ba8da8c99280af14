"""Find the definitions of a project by importing its Python modules (as Feast does).

Every ``.py`` file under the project folder is imported, skipping hidden folders, ``data/``,
virtual environments and ``__pycache__``. Entities, sources and feature views found at module
level are collected; two different objects with one name are an error.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from headwater.definitions.entity import Entity
from headwater.definitions.feature_view import FeatureView
from headwater.definitions.sources import Source
from headwater.errors import DefinitionError, HeadwaterError

SKIPPED_DIRS = {"data", "__pycache__", "venv", ".venv", "env", "node_modules", "build", "dist"}
IGNORE_FILE = ".headwaterignore"
_IMPORTING: set[Path] = set()


@dataclass
class Definitions:
    """Everything a project declares, by name."""

    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    """The module each definition was first found in, by ``(kind, name)``."""

    def add(self, obj: object, where: str) -> None:
        if isinstance(obj, FeatureView):
            self._put(self.views, obj.name, obj, "feature view", where)
            self.add(obj.entity, where)
            self.add(obj.source, where)
        elif isinstance(obj, Entity):
            self._put(self.entities, obj.name, obj, "entity", where)
        elif isinstance(obj, Source):
            self._put(self.sources, obj.name, obj, "source", where)

    def _put(self, bucket: dict, name: str, obj: object, what: str, where: str) -> None:  # type: ignore[type-arg]  # one bucket per kind
        existing = bucket.get(name)
        if existing is None:
            bucket[name] = obj
            self.origins[(what, name)] = where
        elif existing is not obj and _spec(existing) != _spec(obj):
            first = self.origins.get((what, name), "?")
            places = f"in {where}" if first == where else f"in {first} and in {where}"
            raise DefinitionError(
                f"two different {'entities' if what == 'entity' else what + 's'} are named "
                f"{name!r} ({places})",
                fix=f"rename one of them; {what} names are unique in a project",
            )

    def view(self, name: str) -> FeatureView:
        try:
            return self.views[name]
        except KeyError:
            known = ", ".join(sorted(self.views)) or "none"
            raise DefinitionError(
                f"no feature view named {name!r}", fix=f"use one of: {known}"
            ) from None


def _spec(obj: object) -> object:
    to_spec = getattr(obj, "to_spec", None)
    return to_spec() if to_spec else obj


def discover(project: Path) -> Definitions:
    """Import every definition module of ``project`` and collect what they declare."""
    project = project.resolve()
    if project in _IMPORTING:
        raise DefinitionError(
            f"a definition module of {project} opened the project again while it was being "
            "imported (a script that calls FeatureStore/apply at import time?)",
            fix='guard the script with `if __name__ == "__main__":`, move it out of the '
            f"project folder, or list it in {IGNORE_FILE}",
        )
    found = Definitions()
    _IMPORTING.add(project)
    try:
        modules = sorted(_modules(project))
        for path in modules:
            module = _import(path, project)
            where = str(path.relative_to(project))
            for value in vars(module).values():
                found.add(value, where)
    finally:
        _IMPORTING.discard(project)
    return found


def _modules(root: Path) -> list[Path]:
    ignore_file = root / IGNORE_FILE
    patterns = []
    if ignore_file.is_file():
        patterns = [
            line.strip()
            for line in ignore_file.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    result = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        parts = relative.parts
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in parts[:-1]):
            continue
        if parts[-1].startswith("."):
            continue
        if any(
            fnmatch(relative.as_posix(), p) or fnmatch(parts[0], p.rstrip("/")) for p in patterns
        ):
            continue
        result.append(path)
    return result


def _import(path: Path, project: Path) -> object:
    relative = path.relative_to(project).with_suffix("")
    module_name = "_headwater_project." + ".".join(relative.parts)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd files
        raise DefinitionError(f"cannot import definitions from {path}")
    module = importlib.util.module_from_spec(spec)
    added = str(project) not in sys.path
    if added:
        sys.path.insert(0, str(project))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except HeadwaterError as exc:
        where = f"{relative.as_posix()}.py"
        message = exc.message if exc.message.startswith(where) else f"{where}: {exc.message}"
        raise type(exc)(message, fix=exc.fix) from None
    except Exception as exc:
        raise DefinitionError(
            f"importing {relative.as_posix()}.py failed at {_failed_at(exc, path, project)}: "
            f"{type(exc).__name__}: {exc}",
            fix="fix the Python error in the definition module",
        ) from exc
    finally:
        if added:
            sys.path.remove(str(project))
    return module


def _failed_at(exc: BaseException, module: Path, project: Path) -> str:
    """Where in the project's own code ``exc`` was raised: ``line N`` or ``other.py line N``.

    The innermost frame may be library code (``json.loads``) or importlib itself (for a
    ``SyntaxError``), whose line numbers mean nothing to the user; report the innermost frame
    that lies in a project file instead.
    """
    candidates: list[tuple[str, int | None]]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        candidates = [(exc.filename, exc.lineno)]
    else:
        candidates = [
            (frame.filename, frame.lineno)
            for frame in reversed(traceback.extract_tb(exc.__traceback__))
        ]
    for filename, lineno in candidates:
        file = Path(filename).resolve()
        if file == module.resolve():
            return f"line {lineno}"
        if file.is_relative_to(project):
            return f"{file.relative_to(project).as_posix()} line {lineno}"
    return "import"
