"""The ``headwater`` command line.

Every command takes ``--repo DIR`` (default ``.``). Heavy modules are imported inside the
commands so ``headwater --help`` stays fast. Errors headwater raises on purpose print as one
line (``error: ... — fix: ...``) and exit with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from headwater.feature_store import FeatureStore

app = typer.Typer(
    name="headwater",
    help="Feature-engineering data pipelines: ingest, compute, store and serve features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Repo = Annotated[Path, typer.Option("--repo", "-r", help="Project folder (holds headwater.yaml).")]
Views = Annotated[list[str] | None, typer.Argument(help="Feature views (default: all).")]
F = TypeVar("F", bound=Callable[..., Any])


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn headwater errors into a one-line message and exit status 1."""
    from headwater.errors import HeadwaterError

    try:
        yield
    except HeadwaterError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except Exception as exc:
        # Not an error headwater raises on purpose: still one line, with a way to see more.
        import os

        if os.environ.get("HEADWATER_DEBUG"):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {_one_line(str(exc), first=True)} — fix: "
            "rerun with HEADWATER_DEBUG=1 to see the traceback",
            err=True,
        )
        raise typer.Exit(1) from None


def _one_line(text: str, *, first: bool = False) -> str:
    """``text`` redacted and folded onto one line (driver messages often span several)."""
    from headwater.observability import redact

    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return redact(" ".join(lines[:1] if first else lines))


def _store(repo: Path) -> FeatureStore:
    from headwater.feature_store import FeatureStore
    from headwater.observability import configure_logging

    configure_logging()
    return FeatureStore(repo)


def _print_version(value: bool) -> None:
    # Eager, so that `headwater --version` works without a command.
    if value:
        from headwater import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    pass


# ---------------------------------------------------------------------- project set-up
@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create.")],
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Create a project: a commented headwater.yaml and an example definitions module."""
    from headwater.cli.scaffold import write_template

    with _errors():
        written = write_template(directory, force=force)
    for path in written:
        typer.echo(f"created {path}")
    typer.echo(f"next: cd {directory} && headwater apply")


@app.command()
def quickstart(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")] = Path("demo"),
    users: Annotated[int, typer.Option(help="Number of generated users.")] = 1_000,
    days: Annotated[int, typer.Option(help="Days of generated history.")] = 14,
    postgres: Annotated[
        str | None,
        typer.Option(help="Put the orders table in this PostgreSQL database (a DSN)."),
    ] = None,
) -> None:
    """Create a demo shop project with generated data, then run it end to end."""
    from headwater.cli.quickstart import run_quickstart

    with _errors():
        run_quickstart(directory, users=users, days=days, console=_console(), postgres=postgres)


# ---------------------------------------------------------------------- pipeline
@app.command()
def apply(
    repo: Repo = Path("."),
    dry_run: Annotated[bool, typer.Option(help="Show the diff, change nothing.")] = False,
) -> None:
    """Validate definitions against their sources and record new versions."""
    console = _console()
    with _errors():
        store = _store(repo)
        report = store.apply(dry_run=dry_run)
        diff = report.diff
        for kind, name in diff.added:
            console.print(f"[green]+ {kind} {name}[/]")
        for kind, name, version in diff.changed:
            console.print(f"[yellow]~ {kind} {name} (version {version})[/]")
        for kind, name in diff.removed:
            console.print(f"[red]- {kind} {name}[/]")
        if not diff.changes():
            console.print("no changes")
        suffix = " (dry run)" if dry_run else ""
        console.print(f"{len(report.views)} feature views valid{suffix}")
        store.close()


def _run_with_progress(label: str, views: list[str], work: Callable[..., Any]) -> list[Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    results = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        for view in views:
            task = progress.add_task(f"{label} {view}", total=None)
            results.extend(
                work(
                    [view],
                    on_step=lambda msg, task=task: progress.update(task, description=msg),
                )
            )
            progress.remove_task(task)
    return results


@app.command()
def run(
    views: Views = None,
    repo: Repo = Path("."),
    full_refresh: Annotated[
        bool, typer.Option(help="Ignore cursors: re-read sources from the start.")
    ] = False,
) -> None:
    """Compute feature views from their sources into the offline store."""
    console = _console()
    with _errors():
        store = _store(repo)
        names = list(views or sorted(store.definitions.views))
        results = _run_with_progress(
            "running",
            names,
            lambda v, on_step: store.run(v, full_refresh=full_refresh, on_step=on_step),
        )
        for result in results:
            skipped = f", {result.rows_skipped} skipped" if result.rows_skipped else ""
            if result.rows_quarantined:
                skipped += f", [yellow]{result.rows_quarantined} quarantined[/]"
            console.print(
                f"[green]✓[/] {result.view}: {result.rows_in} rows in, "
                f"{result.inserted} inserted, {result.updated} updated, "
                f"{result.deleted} deleted{skipped} ({result.seconds:.2f}s)"
            )
        store.close()


@app.command()
def backfill(
    views: Views = None,
    repo: Repo = Path("."),
    start: Annotated[
        datetime, typer.Option(help="First event time to recompute (UTC).")
    ] = datetime(1970, 1, 1),
    end: Annotated[
        datetime | None, typer.Option(help="End of the period, exclusive (UTC; default now).")
    ] = None,
) -> None:
    """Recompute the rows of a period (sources re-read; cursors untouched)."""
    from datetime import UTC

    console = _console()
    with _errors():
        store = _store(repo)
        names = list(views or sorted(store.definitions.views))
        stop = end or datetime.now(UTC)
        results = _run_with_progress(
            "backfilling",
            names,
            lambda v, on_step: store.backfill(v, start=start, end=stop, on_step=on_step),
        )
        for result in results:
            console.print(
                f"[green]✓[/] {result.view}: {result.inserted} inserted, "
                f"{result.updated} updated ({result.seconds:.2f}s)"
            )
        store.close()


@app.command()
def materialize(
    views: Views = None,
    repo: Repo = Path("."),
    full_refresh: Annotated[
        bool, typer.Option(help="Clear the online view and reload it from all history.")
    ] = False,
) -> None:
    """Copy the latest offline rows per entity into the online store."""
    console = _console()
    with _errors():
        store = _store(repo)
        for result in store.materialize(views, full_refresh=full_refresh):
            console.print(
                f"[green]✓[/] {result.view}: {result.entities} entities ({result.seconds:.2f}s)"
            )
        store.close()


@app.command()
def stream(
    views: Views = None,
    until_caught_up: Annotated[
        bool,
        typer.Option(
            "--until-caught-up",
            help="Stop once every partition reached the end offset it had at start.",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Worker processes sharing the topics.")
    ] = 1,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Forget saved offsets and window state first (start over)."),
    ] = False,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most messages per micro-batch.")
    ] = 200_000,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on this port (/metrics)."),
    ] = None,
    repo: Repo = Path("."),
) -> None:
    """Run streaming workers for views whose source is a Kafka topic.

    Workers of the same views share partitions through Kafka consumer groups: run more
    processes (or --workers N) to scale out. Stop with Ctrl-C / SIGTERM: the current
    micro-batch is finished and committed first.
    """
    from headwater.cli import stream as streaming

    with _errors():
        store = _store(repo)
        if reset:
            names = views or [
                v.name for v in store.definitions.views.values() if v.source.kind == "kafka"
            ]
            for name, count in store.reset_stream(names).items():
                typer.echo(f"{name}: forgot {count} partition(s)")
        if workers > 1:
            store.close()
            code = streaming.run_workers(
                repo,
                list(views or []),
                workers=workers,
                until_caught_up=until_caught_up,
                max_batch=max_batch,
            )
            raise typer.Exit(code)
        if metrics_port is not None:
            from headwater.observability import metrics as stream_metrics

            stream_metrics.serve(metrics_port)
        try:
            stats = streaming.run_here(
                store, views, until_caught_up=until_caught_up, max_batch=max_batch
            )
        finally:
            store.close()
        streaming.show(stats)


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
    with _errors():
        store = _store(repo)
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
    _console().print(table)


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
    with _errors():
        store = _store(repo)
        names = [name for item in features for name in item.split(",") if name]
        table = store.get_historical_features(
            _read_table(entities), names, full_feature_names=full_names
        ).to_arrow()
        store.close()
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

    with _errors():
        store = _store(repo)
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
    _console().print(table)


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

    console = _console()
    with _errors():
        store = _store(repo)
        names = list(views or sorted(store.definitions.views))
        reports = _run_with_progress(
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

    with _errors():
        store = _store(repo)
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
    console = _console()
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


@app.command()
def serve(
    repo: Repo = Path("."),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 6566,
    token_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding a bearer token to require."),
    ] = None,
) -> None:
    """Serve online features over HTTP, with /metrics and a dashboard at /."""
    import os

    from headwater.errors import ConfigError

    with _errors():
        token = None
        if token_env:
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(
                    f"--token-env {token_env}: the variable is not set",
                    fix=f"export {token_env}=...",
                )
        store = _store(repo)
        _ = store.definitions  # fail fast on broken definitions
        from headwater.server.app import serve as run_server

        run_server(store, host=host, port=port, token=token)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
