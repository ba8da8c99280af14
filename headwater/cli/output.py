"""How reading commands print: tables that never cut a value, TSV when piped, JSON on request.

- On a terminal, a table that fits the width is drawn with rich; one that does not is printed
  vertically, one ``column  value`` line per field and a rule between records (as ``psql``'s
  expanded mode), so no value is ever cut or ellipsised.
- When standard output is not a terminal (a pipe, a file), the same rows are printed as TSV:
  a header line, then one line per row, tabs and newlines inside values escaped as ``\\t`` and
  ``\\n``. ``TTY_COMPATIBLE=1`` / ``0`` forces either (rich's switch).
- ``--json`` prints one JSON document (see :func:`print_json`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import typer

Cell = str | tuple[str, str]
"""A cell: its text, or its text and a rich style (``"green"``) used on a terminal only."""

_UNSET = "∅"


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: times as ISO 8601, decimals as text, bytes as hex."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(document: Any) -> None:
    """Print ``document`` as one line of JSON."""
    typer.echo(json.dumps(jsonable(document), default=str))


def text(value: Any) -> str:
    """A value as a table shows it, whole: ``∅`` for null, times in ISO 8601 with a space,
    lists and dicts as JSON."""
    if value is None:
        return _UNSET
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    shown = jsonable(value)
    return shown if isinstance(shown, str) else json.dumps(shown, default=str)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    console: Any = None,
) -> None:
    """Print ``rows`` under ``columns``: a table, vertical records, or TSV (see the module)."""
    from rich.console import Console

    console = console or Console(highlight=False)
    plain = [[_plain(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        lines = ["\t".join(_tsv(c) for c in columns)]
        lines += ["\t".join(_tsv(cell) for cell in row) for row in plain]
        typer.echo("\n".join(lines))
        return
    widths = [
        max([_width(name), *(_width(row[i]) for row in plain)]) for i, name in enumerate(columns)
    ]
    if sum(widths) + 3 * len(widths) + 1 <= console.width:
        _draw_table(console, columns, rows, widths, title)
    else:
        _draw_vertical(console, columns, rows, title)


def print_fields(fields: Sequence[tuple[str, Cell]], *, console: Any = None) -> None:
    """Print ``label  value`` lines (one record): aligned on a terminal, long values wrapped
    onto the next lines, never cut; ``label<TAB>value`` lines when piped."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False)
    if not console.is_terminal:
        typer.echo("\n".join(f"{_tsv(name)}\t{_tsv(_plain(cell))}" for name, cell in fields))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, cell in fields:
        grid.add_row(name, _rich(cell, Text))
    console.print(grid)


def _draw_table(
    console: Any,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    widths: list[int],
    title: str | None,
) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for name, width in zip(columns, widths, strict=True):
        table.add_column(name, min_width=width, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*(_rich(cell, Text) for cell in row))
    console.print(table)


def _draw_vertical(
    console: Any, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str | None
) -> None:
    from rich.text import Text

    if title:
        console.print(Text(title, style="bold"))
    label = max(_width(name) for name in columns)
    for index, row in enumerate(rows, start=1):
        console.print(Text(f"-[ record {index} ]" + "-" * max(0, label - 10), style="dim"))
        for name, cell in zip(columns, row, strict=True):
            line = Text(name.ljust(label) + " | ")
            line.append_text(_rich(cell, Text))
            console.print(line, overflow="fold", crop=False)


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _rich(cell: Cell, text_class: Any) -> Any:
    if isinstance(cell, str):
        return text_class(cell)
    return text_class(cell[0], style=cell[1])


def _tsv(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _width(value: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in value.splitlines()), default=0)
