"""Reading features and results: ``get``, ``history``, ``status``, ``check``, ``quality``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from headwater.cli.app import Repo, Views, app, errors, make_console, open_store
from headwater.cli.pipeline import run_with_progress


# ---------------------------------------------------------------------- retrieval
def _parse_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _parse_entity(spec: str) -> dict[str, Any]:
    from headwater.errors import DefinitionError

    row: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise DefinitionError(
                f"--entity {spec!r} is not of the form key=value[,key=value]",
                fix="e.g. --entity user_id=1",
            )
        row[key.strip()] = _parse_value(value.strip())
    return row


def _jsonable(value: Any) -> Any:
    from datetime import date
    from decimal import Decimal

    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


@app.command()
def get(
    features: Annotated[list[str], typer.Argument(help="Features as VIEW:FEATURE.")],
    entity: Annotated[
        list[str], typer.Option("--entity", "-e", help="An entity row: key=value[,key=value].")
    ],
    repo: Repo = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    full_names: Annotated[
        bool, typer.Option("--full-names", help="Name columns view__feature.")
    ] = False,
) -> None:
    """Read online feature values for one or more entities."""
    with errors():
        store = open_store(repo)
        rows = [_parse_entity(spec) for spec in entity]
        result = store.get_online_features(features, rows, full_feature_names=full_names).to_dict()
        store.close()
    if as_json:
        typer.echo(json.dumps({k: [_jsonable(v) for v in vs] for k, vs in result.items()}))
        return
    from rich.table import Table

    table = Table()
    for column in result:
        table.add_column(column)
    for index in range(len(rows)):
        table.add_row(*(_show(result[c][index]) for c in result))
    make_console().print(table)


def _show(value: Any) -> str:
    return "∅" if value is None else str(_jsonable(value))


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from headwater.errors import DefinitionError

    if not path.is_file():
        raise DefinitionError(f"entity file {path} does not exist", fix="check the path")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    if suffix == ".csv":
        return pacsv.read_csv(path)
    if suffix in (".json", ".jsonl", ".ndjson"):
        return pajson.read_json(path)
    raise DefinitionError(
        f"cannot read {path}: unknown extension {suffix!r}", fix="use .parquet, .csv or .jsonl"
    )


@app.command()
def history(
    entities: Annotated[
        Path, typer.Option(help="Entity rows: join keys + event_timestamp (.parquet/.csv).")
    ],
    features: Annotated[list[str], typer.Option("--features", "-f", help="VIEW:FEATURE")],
    output: Annotated[Path, typer.Option(help="Where to write the training set.")],
    repo: Repo = Path("."),
    full_names: Annotated[
        bool, typer.Option("--full-names", help="Name columns view__feature.")
    ] = False,
) -> None:
    """Write a point-in-time correct training set."""
    from headwater.cli.progress import Progress

    with errors(), Progress() as progress:
        store = open_store(repo)
        names = [name for item in features for name in item.split(",") if name]
        with progress.task(f"reading {entities}"):
            rows = _read_table(entities)
        with progress.task(f"joining {rows.num_rows:,} entity rows with {len(names)} features"):
            table = store.get_historical_features(
                rows, names, full_feature_names=full_names
            ).to_arrow()
        store.close()
        with progress.task(f"writing {output}"):
            _write_table(table, output)
    typer.echo(f"wrote {table.num_rows} rows to {output}")


def _write_table(table: Any, path: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@app.command()
def status(repo: Repo = Path(".")) -> None:
    """Feature views with their last run, row counts and freshness."""
    from datetime import UTC

    from rich.table import Table

    with errors():
        store = open_store(repo)
        rows = store.status()
        store.close()
    table = Table(title=f"project {store.config.project}")
    columns = ("view", "shape", "entity", "source", "last run", "rows", "newest event", "age")
    for column in (*columns, "quality"):
        table.add_column(column)
    now = datetime.now(UTC)
    for item in rows:
        run_text = "never"
        if item.last_run is not None:
            run = item.last_run
            colour = _RUN_COLOURS.get(run.status, "yellow")
            run_text = f"[{colour}]{run.status}[/] {run.started_at:%Y-%m-%d %H:%M:%S}"
        newest = item.latest_event
        age = "-" if newest is None else _age(now - newest)
        table.add_row(
            item.name,
            item.shape,
            item.entity,
            item.source,
            run_text,
            str(item.offline_rows),
            "-" if newest is None else f"{newest:%Y-%m-%d %H:%M:%S}",
            age,
            _quality_summary(item.quality, item.last_run),
        )
    make_console().print(table)


def _quality_summary(results: list[Any], run: Any) -> str:
    """``ok (3 checks)``, or what went wrong in the last run's checks."""
    if not results:
        return "-"
    actions = [r.action for r in results]
    parts = [
        f"[{colour}]{actions.count(action)} {action}[/]"
        for action, colour in (("failed", "red"), ("quarantined", "yellow"), ("warned", "yellow"))
        if action in actions
    ]
    rows = (run.details or {}).get("rows_quarantined") if run is not None else None
    if rows:
        parts.append(f"[yellow]{rows} rows set aside[/]")
    return ", ".join(parts) or f"[green]ok[/] ({len(results)} checks)"


_RUN_COLOURS = {"success": "green", "failed": "red", "aborted": "red"}
_ACTION_COLOURS = {"passed": "green", "warned": "yellow", "quarantined": "yellow", "failed": "red"}


@app.command()
def check(
    views: Views = None,
    repo: Repo = Path("."),
    full: Annotated[
        bool, typer.Option(help="Read sources from the start, not from their cursors.")
    ] = False,
) -> None:
    """Run the data-quality checks alone, writing nothing (a dry run for a new source)."""
    from rich.table import Table

    console = make_console()
    with errors():
        store = open_store(repo)
        names = list(views or sorted(store.definitions.views))
        reports = run_with_progress(
            "checking", names, lambda v, on_step: store.check(v, full=full, on_step=on_step)
        )
        store.close()
    failed = False
    for report in reports:
        if not report.results:
            console.print(f"{report.view}: no checks")
            continue
        table = Table(title=f"{report.view} (dry run: nothing written)")
        for column in ("stage", "check", "severity", "result", "rows", "failed", "detail"):
            table.add_column(column)
        for stage, result in report.results:
            colour = _ACTION_COLOURS.get(result.action, "white")
            table.add_row(
                stage,
                result.check,
                result.severity,
                f"[{colour}]{result.action}[/]",
                str(result.rows_checked),
                str(result.rows_failed),
                result.message.partition(": ")[2],
            )
        console.print(table)
        failed = failed or report.failed
    if failed:
        raise typer.Exit(1)


@app.command()
def quality(
    view: Annotated[str | None, typer.Argument(help="A feature view (default: all).")] = None,
    repo: Repo = Path("."),
    run: Annotated[str | None, typer.Option("--run", help="Results of this run id.")] = None,
    runs: Annotated[int, typer.Option(help="How many recent runs per view.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Data-quality results recorded by recent runs."""
    from rich.table import Table

    with errors():
        store = open_store(repo)
        records = store.quality(view, run_id=run, runs=runs)
        store.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {k: _jsonable(v) for k, v in vars(r).items()} | {"columns": list(r.columns)}
                    for r in records
                ]
            )
        )
        return
    if not records:
        typer.echo("no check results recorded yet (declare checks=[...] and run)")
        return
    table = Table(title="data quality")
    for column in ("view", "run", "stage", "check", "severity", "result", "rows", "failed"):
        table.add_column(column)
    table.add_column("sample")
    for r in records:
        colour = _ACTION_COLOURS.get(r.action, "white")
        table.add_row(
            r.view,
            r.run_id[:12],
            r.stage,
            r.check,
            r.severity,
            f"[{colour}]{r.action}[/]",
            str(r.rows_checked),
            str(r.rows_failed),
            ", ".join(str(_jsonable(v)) for v in r.sample[:3]),
        )
    console = make_console()
    console.print(table)
    for r in records:
        if r.action != "passed":
            console.print(f"[{_ACTION_COLOURS.get(r.action, 'white')}]{r.action}[/] {r.message}")


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
