"""How ``headwater run``, ``backfill`` and ``materialize`` go through their views and say what
happened.

Views run one after the other, each on its own: a failed view is reported and the next one
runs (no view reads another view's output, so no view depends on another). Each view prints
one line as it ends, on stdout:

    ✓ spend: 6 rows in, 3 inserted, 0 updated, 0 deleted, 3 quarantined → PATH (0.12s)
    ✗ daily: view 'daily': run 0190… failed: … (0.40s)

and a summary closes the run (``2 views: 1 succeeded, 1 failed (daily) in 0.52s``).
``materialize`` prints its own ✓ line (``✓ spend: 3 entities (0.05s)``) the same way. When a
view failed, one ``error:`` line on stderr says which, and the exit status is 1. A view another
run holds (:class:`~headwater.errors.ViewBusy`) is waited for up to ``--wait`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from headwater.cli.app import one_line
from headwater.cli.progress import Progress, Steps

if TYPE_CHECKING:
    from headwater.feature_store import FeatureStore
    from headwater.orchestration.runner import RunResult

T = TypeVar("T")


def run_views(
    console: Any,
    store: FeatureStore,
    names: list[str],
    work: Callable[[str, Steps], T],
    *,
    label: str,
    wait: float = 0.0,
    show: Callable[[T], str],
) -> None:
    """Run ``work(name, steps)`` for each view, printing a line per view (``show(result)``,
    e.g. a run's ✓ line :func:`line`) and a summary; exit with status 1 (after the summary) when any
    view failed."""
    from headwater.errors import ViewBusy, was_interrupted

    started = time.perf_counter()
    failed: list[tuple[str, str]] = []
    with Progress() as progress:
        for name in names:
            began = time.perf_counter()
            try:
                with progress.task(f"{label} {name}") as steps:
                    result = _waiting(work, name, steps, wait)
            except ViewBusy as exc:
                failed.append((name, one_line(str(exc))))
                progress.print(console, f"[red]✗[/] {name}: {escape(one_line(exc.message))}")
                continue
            except Exception as exc:
                if was_interrupted():
                    raise
                message = one_line(str(exc), first=not _ours(exc))
                if not _ours(exc):
                    message = f"unexpected {type(exc).__name__}: {message}"
                failed.append((name, message))
                seconds = time.perf_counter() - began
                progress.print(console, f"[red]✗[/] {name}: {escape(message)} ({seconds:.2f}s)")
                continue
            progress.print(console, show(result))
    total = time.perf_counter() - started
    done = len(names) - len(failed)
    noun = "view" if len(names) == 1 else "views"
    if not failed:
        console.print(f"{len(names)} {noun} succeeded in {total:.2f}s", soft_wrap=True)
        return
    names_failed = ", ".join(name for name, _ in failed)
    console.print(
        f"{len(names)} {noun}: {done} succeeded, [red]{len(failed)} failed[/] ({names_failed}) "
        f"in {total:.2f}s",
        soft_wrap=True,
    )
    if len(failed) == 1:
        name, message = failed[0]
        if f"'{name}'" not in message:
            message = f"view '{name}': {message}"
        typer.echo(f"error: {message}", err=True)
    else:
        typer.echo(
            f"error: {len(failed)} of {len(names)} views failed: {names_failed} — fix: see the "
            "✗ line of each above",
            err=True,
        )
    raise typer.Exit(1)


def compute_views(
    repo: Path,
    views: list[str] | None,
    compute: Callable[[FeatureStore, str, Steps], RunResult],
    *,
    label: str,
    wait: float,
    apply_first: bool = False,
) -> None:
    """``run`` and ``backfill``: open the project, check the view names (an unknown one stops
    everything before anything runs), apply first or refuse unapplied definitions, then
    :func:`run_views` with ``compute(store, name, steps)`` and the run's ✓ :func:`line`."""
    from headwater.cli.app import errors, make_console, open_store
    from headwater.cli.versions import show_apply

    console = make_console()
    with errors():
        store = open_store(repo)
        try:
            names = list(views or sorted(store.definitions.views))
            for name in names:
                store.view(name)
            if apply_first:
                show_apply(console, store.apply())
            else:
                store.require_applied(names)
            run_views(
                console,
                store,
                names,
                lambda name, steps: compute(store, name, steps),
                label=label,
                wait=wait,
                show=lambda result: line(store, result),
            )
        finally:
            store.close()


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _ours(exc: Exception) -> bool:
    from headwater.errors import HeadwaterError

    return isinstance(exc, HeadwaterError)


def _waiting(work: Callable[[str, Steps], T], name: str, steps: Steps, wait: float) -> T:
    """``work(name, steps)``, tried again every second for up to ``wait`` seconds while
    another run holds the view."""
    from headwater.errors import ViewBusy

    deadline = time.monotonic() + wait
    while True:
        try:
            return work(name, steps)
        except ViewBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def line(store: FeatureStore, result: RunResult) -> str:
    """The ✓ line of a view's run."""
    parts = [
        f"{result.rows_in} rows in",
        f"{result.inserted} inserted",
        f"{result.updated} updated",
        f"{result.deleted} deleted",
    ]
    if result.rows_quarantined:
        where = _relative(store.quarantine_location(result.view))
        kept = f"{result.rows_quarantined} quarantined → {escape(where)}"
        if result.rows_skipped:
            kept += f" ({result.rows_skipped} without a join key or event time)"
        parts.append(f"[yellow]{kept}[/]")
    if result.details.get("built"):
        parts.append(
            f"[cyan]built table version {result.details['table_version']} (now serving)[/]"
        )
    return f"[green]✓[/] {result.view}: {', '.join(parts)} ({result.seconds:.2f}s)"


def _relative(location: str) -> str:
    if "://" in location:
        return location
    try:
        relative = os.path.relpath(location)
    except ValueError:  # another drive
        return location
    return location if relative.startswith("..") else relative
