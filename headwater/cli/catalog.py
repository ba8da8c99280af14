"""What a project holds: ``views``, ``describe``, ``runs`` and ``quarantine``.

Each prints through :mod:`.output` (no value ever cut; TSV when piped) and takes ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from headwater.cli.app import Json, Repo, app, errors, make_console, open_store
from headwater.cli.output import Cell, print_fields, print_json, print_table, text

ViewName = Annotated[str, typer.Argument(metavar="VIEW", help="A feature view.")]
Limit = Annotated[int, typer.Option("--limit", "-n", metavar="N", min=1, help="Most rows shown.")]
_STATES = {"success": "green", "failed": "red", "aborted": "red", "interrupted": "red"}


@app.command()
def views(repo: Repo = Path("."), as_json: Json = False) -> None:
    """Feature views of the project: shape, entity, keys, source, window, features, applied
    version and table version (serving, and the one being built when one waits)."""
    from headwater.cli.versions import table_cell, table_versions

    with errors():
        store = open_store(repo)
        found = [store.definitions.views[name] for name in sorted(store.definitions.views)]
        applied = {n: store.registry.definition("feature_view", n) for n in store.definitions.views}
        tables = {n: table_versions(store.registry, n) for n in store.definitions.views}
        store.close()
    if as_json:
        print_json(
            [v.to_spec() | {"version": _version(applied[v.name])} | tables[v.name] for v in found],
        )
        return
    print_table(
        (
            "view",
            "shape",
            "entity",
            "keys",
            "source",
            "window",
            "ttl",
            "features",
            "version",
            "table version",
        ),
        [
            [
                v.name,
                v.kind,
                v.entity.name,
                ", ".join(v.join_keys),
                v.source.name,
                "-" if v.window is None else repr(v.window),
                _duration(v.ttl_ms),
                ", ".join(v.feature_names),
                _version_cell(applied[v.name]),
                table_cell(tables[v.name]),
            ]
            for v in found
        ],
    )


@app.command()
def describe(view: ViewName, repo: Repo = Path("."), as_json: Json = False) -> None:
    """One feature view: its definition, applied version, table version and output columns."""
    from headwater.cli.versions import table_cell, table_versions

    with errors():
        store = open_store(repo)
        definition = store.view(view)
        applied = store.registry.definition("feature_view", definition.name)
        schema = store.registry.schema(definition.name)
        tables = table_versions(store.registry, definition.name)
        store.close()
    columns = [] if schema is None else [(f.name, str(f.type)) for f in schema]
    if as_json:
        print_json(
            {
                "view": definition.name,
                "version": _version(applied),
                "applied_at": None if applied is None else applied.applied_at,
                **tables,
                "spec": definition.to_spec(),
                "source": definition.source.to_spec(),
                "columns": [{"name": n, "type": t} for n, t in columns],
            }
        )
        return
    source = definition.source
    fields: list[tuple[str, Cell]] = [
        ("view", definition.name),
        ("shape", definition.kind),
        ("entity", f"{definition.entity.name} ({', '.join(definition.join_keys)})"),
        ("source", f"{source.kind} {source.name} (time: {source.timestamp_field})"),
        ("window", "-" if definition.window is None else repr(definition.window)),
        ("ttl", _duration(definition.ttl_ms)),
        ("stores", ", ".join(s for s, on in _stores(definition) if on) or "-"),
        ("version", _version_cell(applied)),
        ("table version", table_cell(tables)),
    ]
    if definition.description:
        fields.append(("description", definition.description))
    if source.schema_mode != "evolve":
        fields.append(("schema_mode", source.schema_mode))
    for check in source.checks:
        fields.append(("source check", f"{check.name} ({check.severity})"))
    for check in definition.checks:
        fields.append(("check", f"{check.name} ({check.severity})"))
    for step in definition.transforms:
        fields.append(("transform", repr(step)))
    console = make_console()
    print_fields(fields, console=console)
    features = definition.projections or {a.name: repr(a) for a in definition.aggregations}
    types = dict(columns)
    print_table(
        ("feature", "definition", "type"),
        [[name, expr, types.get(name, "?")] for name, expr in features.items()],
        title="features",
        console=console,
    )


@app.command()
def runs(
    repo: Repo = Path("."),
    view: Annotated[
        str | None, typer.Option("--view", metavar="VIEW", help="Runs of this view only.")
    ] = None,
    limit: Limit = 20,
    as_json: Json = False,
) -> None:
    """Recent runs from the registry, newest first: id, view, kind, state, rows, timings."""
    from headwater.cli.reading import _run_json

    with errors():
        store = open_store(repo)
        name = None if view is None else store.view(view).name
        records = store.registry.runs(name, limit=limit)
        store.close()
    if as_json:
        print_json([_run_json(r) for r in records])
        return
    if not records:
        typer.echo("no runs recorded yet (headwater run)")
        return
    rows: list[list[Cell]] = []
    for r in records:
        rows.append(
            [
                r.run_id,
                r.view,
                r.kind,
                (r.status, _STATES.get(r.status, "yellow")),
                str(r.rows_in),
                str(r.rows_out),
                f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                "-" if r.seconds is None else f"{r.seconds:.2f}s",
            ]
        )
    print_table(("run", "view", "kind", "state", "in", "out", "started", "duration"), rows)


@app.command()
def quarantine(
    view: ViewName,
    repo: Repo = Path("."),
    limit: Limit = 50,
    as_json: Json = False,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Run the view again over the period of its set-aside rows (a backfill): "
            "rows that pass its checks now are written, the others are set aside again.",
        ),
    ] = False,
) -> None:
    """Rows a view's checks set aside, newest first, with the check and reason."""
    from headwater.quality.quarantine import quarantine_location, read_quarantine

    with errors():
        store = open_store(repo)
        definition = store.view(view)
        table = read_quarantine(store.offline, definition.name)
        location = quarantine_location(store.offline, definition.name)
        results = _replay(store, definition, table) if replay and table is not None else None
        store.close()
    if replay:
        _show_replay(definition.name, results)
        return
    rows = [] if table is None else _newest(table, limit)
    if as_json:
        print_json({"view": definition.name, "location": location, "rows": rows})
        return
    if not rows:
        typer.echo(f"{definition.name}: no rows set aside")
        return
    first = ["_quarantined_at", "_run_id", "_stage", "_check", "_reason"]
    columns = [*first, *(c for c in rows[0] if c not in first and c != "_row_key")]
    print_table(
        columns,
        [[text(row.get(c)) for c in columns] for row in rows],
        title=f"{definition.name}: {len(rows)} of {table.num_rows if table else 0} rows "
        f"set aside ({location})",
    )


def _newest(table: Any, limit: int) -> list[dict[str, Any]]:
    if "_quarantined_at" in table.column_names:
        table = table.sort_by([("_quarantined_at", "descending")])
    return list(table.slice(0, limit).to_pylist())


def _replay(store: Any, definition: Any, table: Any) -> list[Any] | None:
    """Backfill ``definition`` over the event times of its set-aside rows."""
    import pyarrow.compute as pc

    from headwater.errors import DefinitionError

    times = []
    for stage, column in (
        ("source", definition.source.timestamp_field),
        ("view", "event_timestamp"),
    ):
        if column not in table.column_names or "_stage" not in table.column_names:
            continue
        picked = table.filter(pc.equal(table["_stage"], stage))[column]
        times += [t for t in picked.to_pylist() if t is not None]
    if not times:
        raise DefinitionError(
            f"view {definition.name!r}: its set-aside rows have no event time to replay",
            fix="fix the source rows, then `headwater run --full-refresh`",
        )
    from datetime import timedelta

    start, end = min(times), max(times) + timedelta(milliseconds=1)
    return list(store.backfill([definition.name], start=start, end=end))


def _show_replay(view: str, results: list[Any] | None) -> None:
    console = make_console()
    if not results:
        console.print(f"{view}: no rows set aside, nothing to replay")
        return
    for r in results:
        console.print(
            f"[green]✓[/] {view}: replayed {r.rows_in} rows in, {r.inserted} inserted, "
            f"{r.updated} updated, {r.rows_quarantined} set aside again",
            soft_wrap=True,
        )


def _version(record: Any) -> int | None:
    return None if record is None else int(record.version)


def _version_cell(record: Any) -> Cell:
    return ("not applied", "yellow") if record is None else str(record.version)


def _duration(ms: int | None) -> str:
    """``2d``, ``90m``, ``1500ms``: the largest unit that divides ``ms`` exactly."""
    if ms is None:
        return "-"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _stores(view: Any) -> list[tuple[str, bool]]:
    return [("offline", bool(view.offline)), ("online", bool(view.online))]
