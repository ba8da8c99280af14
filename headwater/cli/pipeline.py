"""The pipeline commands: ``apply``, ``run``, ``backfill``, ``materialize``, ``stream``
(``prune`` and the ``apply`` report: :mod:`headwater.cli.versions`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from headwater.cli.app import Repo, Views, app, errors, make_console, open_store, resolve_repo


# ---------------------------------------------------------------------- pipeline
@app.command()
def apply(
    repo: Repo = Path("."),
    dry_run: Annotated[bool, typer.Option(help="Show the diff, change nothing.")] = False,
) -> None:
    """Validate definitions against their sources and record new versions.

    Each changed field is shown old → new, marked [rows] when it changes computed rows: such a
    view gets a new offline table version, built by its next `headwater run` (the current one
    serves until then).
    """
    from headwater.cli.versions import show_apply

    console = make_console()
    with errors():
        store = open_store(repo)
        show_apply(console, store.apply(dry_run=dry_run))
        store.close()


def run_with_progress(label: str, views: list[str], work: Callable[..., Any]) -> list[Any]:
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
        bool,
        typer.Option(
            help="Rebuild from the start of the sources into a new table version, which "
            "replaces the current one once complete."
        ),
    ] = False,
) -> None:
    """Compute feature views from their sources into the offline store."""
    console = make_console()
    with errors():
        store = open_store(repo)
        names = list(views or sorted(store.definitions.views))
        results = run_with_progress(
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
        datetime, typer.Option(metavar="TIME", help="First event time to recompute (UTC).")
    ] = datetime(1970, 1, 1),
    end: Annotated[
        datetime | None,
        typer.Option(metavar="TIME", help="End of the period, exclusive (UTC; default now)."),
    ] = None,
) -> None:
    """Recompute the rows of a period (sources re-read; cursors untouched)."""
    from datetime import UTC

    console = make_console()
    with errors():
        store = open_store(repo)
        names = list(views or sorted(store.definitions.views))
        stop = end or datetime.now(UTC)
        results = run_with_progress(
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
    console = make_console()
    with errors():
        store = open_store(repo)
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
        int,
        typer.Option(
            "--workers", "-w", metavar="N", min=1, help="Worker processes sharing the topics."
        ),
    ] = 1,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Forget saved offsets and window state first (start over)."),
    ] = False,
    max_batch: Annotated[
        int, typer.Option("--max-batch", metavar="N", min=1, help="Most messages per micro-batch.")
    ] = 200_000,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            help="Serve Prometheus metrics on this port (/metrics).",
        ),
    ] = None,
    repo: Repo = Path("."),
) -> None:
    """Run streaming workers for views whose source is a Kafka topic.

    Workers of the same views share partitions through Kafka consumer groups: run more
    processes (or --workers N) to scale out. Stop with Ctrl-C / SIGTERM: the current
    micro-batch is finished and committed first.
    """
    from headwater.cli import stream as streaming

    with errors():
        store = open_store(repo)
        if reset:
            names = views or [
                v.name for v in store.definitions.views.values() if v.source.kind == "kafka"
            ]
            for name, count in store.reset_stream(names).items():
                typer.echo(f"{name}: forgot {count} partition(s)")
        if workers > 1:
            store.close()
            code = streaming.run_workers(
                resolve_repo(repo),
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
