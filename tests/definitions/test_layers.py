"""Definitions are the bottom layer: they import the standard library, ``headwater.errors``,
``headwater.sql`` and each other — nothing above them, not even inside a function."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import headwater.definitions

PACKAGE = Path(headwater.definitions.__file__).parent
ALLOWED = ("headwater.definitions", "headwater.errors", "headwater.sql")
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_every_module_is_read() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"feature_view.py", "sources.py", "types.py", "checks/rows.py", "steps/base.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_definitions_import_nothing_above_them(path: Path) -> None:
    upward = [
        f"line {line}: {module}"
        for line, module in imported(path)
        if module.split(".")[0] not in sys.stdlib_module_names
        and not any(module == a or module.startswith(a + ".") for a in ALLOWED)
    ]
    assert upward == []
