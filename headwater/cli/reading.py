"""Reading features and results: ``get``, ``history``, ``status``, ``check``, ``quality``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headwater.cli.app import Json, Repo, Views, app, errors, make_console, open_store
from headwater.cli.entities import parse_entity
from headwater.cli.output import Cell, jsonable, print_json, print_table, text
from headwater.cli.pipeline import run_with_progress

if TYPE_CHECKING:
    from headwater.stores.registry import RunRecord

# ---------------------------------------------------------------------- retrieval


@app.command()
def get(
    features: Annotated[
        list[str], typer.Argument(metavar="VIEW:FEATURE...", help="Features as VIEW:FEATURE.")
    ],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity",
            "-e",
            metavar="KEY=VALUE[,KEY=VALUE]",
            help="An entity row (repeat for several).",
        ),
    ],
    repo: Repo = Path("."),
    as_json: Json = False,
    full_names: Annotated[
        bool, typer.Option("--full-names", help="Name columns view__feature.")
    ] = False,
) -> None:
    """Read online feature values for one or more entities."""
    with errors():
        store = open_store(repo)
        rows = [parse_entity(spec) for spec in entity]
        result = store.get_online_features(features, rows, full_feature_names=full_names).to_dict()
        store.close()
    if as_json:
        print_json(result)
        return
    print_table(list(result), [[text(result[c][i]) for c in result] for i in range(len(rows))])


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
        Path,
        typer.Option(
            metavar="PATH", help="Entity rows: join keys + event_timestamp (.parquet/.csv)."
        ),
    ],
    features: Annotated[
        list[str],
        typer.Option("--features", "-f", metavar="VIEW:FEATURE[,...]", help="Features to join."),
    ],
    output: Annotated[Path, typer.Option(metavar="PATH", help="Where to write the training set.")],
    repo: Repo = Path("."),
    full_names: Annotated[
        bool, typer.Option("--full-names", help="Name columns view__feature.")
    ] = False,
    table_version: Annotated[
        list[str] | None,
        typer.Option(
            "--table-version",
            metavar="VIEW=N",
            help="Read a kept table version of a view (reproduce an earlier training set).",
        ),
    ] = None,
) -> None:
    """Write a point-in-time correct training set (.parquet or .csv)."""
    from headwater.cli.progress import Progress
    from headwater.cli.versions import parse_pins
    from headwater.errors import ConfigError

    with errors(), Progress() as progress:
        if output.suffix.lower() not in _OUTPUT_SUFFIXES:
            raise ConfigError(
                f"--output {output}: cannot write {output.suffix or 'a file without an extension'}",
                fix="name a .parquet or .csv file",
            )
        pins = parse_pins(table_version or [])
        store = open_store(repo)
        names = [name for item in features for name in item.split(",") if name]
        with progress.task(f"reading {entities}"):
            rows = _read_table(entities)
        with progress.task(f"joining {rows.num_rows:,} entity rows with {len(names)} features"):
            table = store.get_historical_features(
                rows, names, full_feature_names=full_names, versions=pins
            ).to_arrow()
        store.close()
        with progress.task(f"writing {output}"):
            _write_table(table, output)
    typer.echo(f"wrote {table.num_rows} rows to {output}")


_OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv")
"""The training-set files ``history --output`` writes."""


def _write_table(table: Any, path: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@app.command()
def status(repo: Repo = Path("."), as_json: Json = False) -> None:
    """Feature views with their last run, row counts and freshness."""
    from datetime import UTC

    from headwater.cli.versions import table_cell, table_versions

    with errors():
        store = open_store(repo)
        rows = store.status()
        tables = {r.name: table_versions(store.registry, r.name) for r in rows}
        store.close()
    if as_json:
        views = [_status_json(r) | tables[r.name] for r in rows]
        print_json({"project": store.config.project, "views": views})
        return
    columns = (
        "view",
        "shape",
        "entity",
        "source",
        "table version",
        "last run",
        "rows",
        "newest event",
        "age",
    )
    now = datetime.now(UTC)
    table: list[list[Cell]] = []
    for item in rows:
        run_cell: Cell = "never"
        if item.last_run is not None:
            run = item.last_run
            colour = _RUN_COLOURS.get(run.status, "yellow")
            run_cell = (f"{run.status} {run.started_at:%Y-%m-%d %H:%M:%S}", colour)
        newest = item.latest_event
        table.append(
            [
                item.name,
                item.shape,
                item.entity,
                item.source,
                table_cell(tables[item.name]),
                run_cell,
                str(item.offline_rows),
                "-" if newest is None else f"{newest:%Y-%m-%d %H:%M:%S}",
                "-" if newest is None else _age(now - newest),
                _quality_summary(item.quality, item.last_run),
            ]
        )
    print_table([*columns, "quality"], table, title=f"project {store.config.project}")


def _status_json(item: Any) -> dict[str, Any]:
    run = item.last_run
    return {
        "view": item.name,
        "shape": item.shape,
        "entity": item.entity,
        "source": item.source,
        "offline_rows": item.offline_rows,
        "newest_event": item.latest_event,
        "materialized_seq": item.materialized_seq,
        "last_run": None if run is None else _run_json(run),
        "quality": [_check_json(r) for r in item.quality],
    }


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "view": run.view,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "seconds": run.seconds,
        "rows_in": run.rows_in,
        "rows_out": run.rows_out,
        "error": run.error,
        "details": run.details,
    }


def _check_json(record: Any) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in vars(record).items()} | {"columns": list(record.columns)}


def _quality_summary(results: list[Any], run: Any) -> Cell:
    """``ok (3 checks)``, or what went wrong in the last run's checks."""
    if not results:
        return "-"
    actions = [r.action for r in results]
    parts = [f"{actions.count(action)} {action}" for action in _BAD if action in actions]
    rows = (run.details or {}).get("rows_quarantined") if run is not None else None
    if rows:
        parts.append(f"{rows} rows set aside")
    if not parts:
        return (f"ok ({len(results)} checks)", "green")
    return (", ".join(parts), "red" if "failed" in actions else "yellow")


_BAD = ("failed", "quarantined", "warned")
_RUN_COLOURS = {"success": "green", "failed": "red", "interrupted": "red", "aborted": "red"}
_ACTION_COLOURS = {"passed": "green", "warned": "yellow", "quarantined": "yellow", "failed": "red"}


@app.command()
def check(
    views: Views = None,
    repo: Repo = Path("."),
    full: Annotated[
        bool, typer.Option(help="Read sources from the start, not from their cursors.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Run the data-quality checks alone, writing nothing (a dry run for a new source)."""
    console = make_console()
    with errors():
        store = open_store(repo)
        names = list(views or sorted(store.definitions.views))
        reports = run_with_progress(
            "checking", names, lambda v, on_step: store.check(v, full=full, on_step=on_step)
        )
        store.close()
    failed = any(report.failed for report in reports)
    if as_json:
        print_json(
            [
                {
                    "view": report.view,
                    "failed": report.failed,
                    "results": [
                        {"stage": stage} | _check_json(result) for stage, result in report.results
                    ],
                }
                for report in reports
            ]
        )
    for report in [] if as_json else reports:
        if not report.results:
            console.print(f"{report.view}: no checks")
            continue
        console.print(f"[bold]{report.view}[/] (dry run: nothing written)", soft_wrap=True)
        print_table(
            ("stage", "check", "severity", "result", "rows", "failed", "detail"),
            [
                [
                    stage,
                    result.check,
                    result.severity,
                    (result.action, _ACTION_COLOURS.get(result.action, "white")),
                    str(result.rows_checked),
                    str(result.rows_failed),
                    result.message.partition(": ")[2],
                ]
                for stage, result in report.results
            ],
            console=console,
        )
    if failed:
        raise typer.Exit(1)


@app.command()
def quality(
    view: Annotated[
        str | None, typer.Argument(metavar="[VIEW]", help="A feature view (default: all).")
    ] = None,
    repo: Repo = Path("."),
    run: Annotated[
        str | None, typer.Option("--run", metavar="ID", help="Results of this run id.")
    ] = None,
    runs: Annotated[int, typer.Option(metavar="N", help="How many recent runs per view.")] = 1,
    as_json: Json = False,
) -> None:
    """Data-quality results recorded by recent runs."""
    with errors():
        store = open_store(repo)
        records = store.quality(view, run_id=run, runs=runs)
        store.close()
    if as_json:
        print_json([_check_json(r) for r in records])
        return
    if not records:
        typer.echo("no check results recorded yet (declare checks=[...] and run)")
        return
    console = make_console()
    print_table(
        ("view", "run", "stage", "check", "severity", "result", "rows", "failed", "sample"),
        [
            [
                r.view,
                r.run_id,
                r.stage,
                r.check,
                r.severity,
                (r.action, _ACTION_COLOURS.get(r.action, "white")),
                str(r.rows_checked),
                str(r.rows_failed),
                ", ".join(text(v) for v in r.sample[:3]),
            ]
            for r in records
        ],
        title="data quality",
        console=console,
    )
    for r in records:
        if r.action != "passed":
            console.print(f"[{_ACTION_COLOURS.get(r.action, 'white')}]{r.action}[/] {r.message}")


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
