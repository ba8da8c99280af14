"""The pipeline commands: ``apply``, ``run``, ``backfill``, ``materialize``, ``stream``
(``prune`` and the ``apply`` report: :mod:`headwater.cli.versions`)."""

from __future__ import annotations

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
    """``work([view], on_step=...)`` for each view in turn, with a spinner on a terminal."""
    from headwater.cli.progress import Progress

    results = []
    with Progress() as progress:
        for view in views:
            with progress.task(f"{label} {view}") as steps:
                results.extend(work([view], on_step=steps.step))
    return results


Wait = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        min=0,
        help="When another run holds a view, wait up to SECONDS for it (default: fail at once).",
    ),
]


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
    apply_first: Annotated[
        bool,
        typer.Option(
            "--apply", help="Apply the definitions first (default: refuse unapplied changes)."
        ),
    ] = False,
    wait: Wait = 0.0,
) -> None:
    """Compute feature views from their sources into the offline store.

    Each view runs on its own: a failed view does not stop the others. Each prints a line as it
    ends (✓ or ✗); a summary closes the run; the exit status is 1 when any view failed.
    """
    from headwater.cli.runs import compute_views

    compute_views(
        repo,
        views,
        lambda store, name, steps: store.run(
            [name],
            full_refresh=full_refresh,
            on_step=steps.step,
            on_rows=steps.rows,
            on_progress=steps.progress,
        )[0],
        label="running",
        wait=wait,
        apply_first=apply_first,
    )


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
    wait: Wait = 0.0,
) -> None:
    """Recompute the rows of a period (sources re-read; cursors untouched)."""
    from datetime import UTC

    from headwater.cli.runs import compute_views

    stop = end or datetime.now(UTC)
    compute_views(
        repo,
        views,
        lambda store, name, steps: store.backfill(
            [name],
            start=start,
            end=stop,
            on_step=steps.step,
            on_rows=steps.rows,
            on_progress=steps.progress,
        )[0],
        label="backfilling",
        wait=wait,
    )


@app.command()
def materialize(
    views: Views = None,
    repo: Repo = Path("."),
    full_refresh: Annotated[
        bool, typer.Option(help="Clear the online view and reload it from all history.")
    ] = False,
) -> None:
    """Copy the latest offline rows per entity into the online store.

    Each view is materialized on its own: a failed view does not stop the others. Each prints
    a line as it ends (✓ or ✗); a summary closes the command; the exit status is 1 when any
    view failed.
    """
    from headwater.cli.runs import run_views

    console = make_console()
    with errors():
        store = open_store(repo)
        try:
            names = [store.view(name).name for name in views or sorted(store.definitions.views)]
            names = [name for name in names if store.view(name).online]
            if not names:
                console.print("no view to materialize: none of them is served online")
                return
            run_views(
                console,
                store,
                names,
                lambda name, _steps: store.materialize([name], full_refresh=full_refresh)[0],
                label="materializing",
                show=lambda result: (
                    f"[green]✓[/] {result.view}: {result.entities} entities ({result.seconds:.2f}s)"
                ),
            )
        finally:
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
