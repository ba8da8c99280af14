"""Definition changes and table versions: the ``apply`` report, ``versions`` and ``prune``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headwater.cli.app import Repo, app, errors, make_console, open_store

if TYPE_CHECKING:
    from headwater.cli.output import Cell
    from headwater.feature_store import ApplyReport
    from headwater.stores.registry import Registry


def table_versions(registry: Registry, view: str) -> dict[str, int | None]:
    """``{"table_version": N, "building_table_version": M}``: the table version serving
    ``view``'s reads (``None`` before its first ``apply``) and the one waiting to be built by
    its next run (``None`` when none waits)."""
    serving = registry.serving_version(view)
    building = registry.building_version(view)
    return {
        "table_version": None if serving is None else serving.version,
        "building_table_version": None if building is None else building.version,
    }


def table_cell(versions: dict[str, int | None]) -> Cell:
    """``2``, or ``2 (3 building)`` in yellow while a new version waits; ``-`` before any."""
    serving, building = versions["table_version"], versions["building_table_version"]
    if building is None:
        return "-" if serving is None else str(serving)
    return (f"{'-' if serving is None else serving} ({building} building)", "yellow")


def parse_pins(items: list[str]) -> dict[str, int]:
    """``["view=2", ...]`` (``--table-version``) as ``{"view": 2}``.

    Raises:
        DefinitionError: an item is not ``VIEW=N`` with N a positive integer.
    """
    from headwater.errors import DefinitionError

    pins: dict[str, int] = {}
    for item in items:
        view, _, number = item.partition("=")
        if not view or not number.isdigit() or int(number) < 1:
            raise DefinitionError(
                f"--table-version {item!r} is not VIEW=N",
                fix="e.g. --table-version user_orders=1 (`headwater versions` lists them)",
            )
        pins[view.strip()] = int(number)
    return pins


def show_apply(console: Any, report: ApplyReport) -> None:
    """Print what ``apply`` added, changed (field by field, old → new, each marked ``[rows]``
    when it changes computed rows) and removed, then what happens to the views' tables."""
    diff = report.diff
    for kind, name in diff.added:
        console.print(f"[green]+ {kind} {name}[/]")
    for kind, name, version in diff.changed:
        console.print(f"[yellow]~ {kind} {name} (version {version})[/]")
        for change in report.fields.get((kind, name), []):
            mark = "[red]\\[rows][/]" if change.changes_rows else "[dim]\\[no row change][/]"
            console.print(f"    {change.describe()}  {mark}", markup=True, highlight=False)
    for kind, name in diff.removed:
        console.print(f"[red]- {kind} {name}[/]")
    for step in diff.versions:
        if step.action == "building":
            console.print(
                f"[yellow]⟳ {step.view}: new table version {step.version} — built by the "
                f"next `headwater run {step.view}`; version {step.serving} serves until "
                "then[/]",
                highlight=False,
            )
        elif step.action == "abandoned":
            console.print(
                f"{step.view}: table version {step.version} is no longer needed (the rows "
                f"are those of version {step.serving} again); `headwater prune` removes it",
                highlight=False,
            )
    if not diff.changes():
        console.print("no changes")
    suffix = " (dry run)" if report.dry_run else ""
    console.print(f"{len(report.views)} feature views valid{suffix}")


@app.command()
def versions(
    view: Annotated[str | None, typer.Argument(help="A feature view (default: all).")] = None,
    repo: Repo = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the offline table versions of views: which serves, which is being built, which
    are kept for reproducing past training sets."""
    import json

    with errors():
        store = open_store(repo)
        found = store.table_versions(view)
        store.close()
    if as_json:
        rows = [
            {
                "view": v.view,
                "version": v.version,
                "status": v.status,
                "table": v.table,
                "reason": v.reason,
                "created_at": v.created_at.isoformat(),
                "activated_at": None if v.activated_at is None else v.activated_at.isoformat(),
            }
            for v in found
        ]
        typer.echo(json.dumps(rows))
        return
    for v in found:
        when = v.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{v.view}\tv{v.version}\t{v.status}\t{v.table}\t{v.reason}\t{when}")
    if not found:
        typer.echo("no table versions recorded (run `headwater apply`)")


@app.command()
def prune(
    repo: Repo = Path("."),
    keep: Annotated[
        int, typer.Option("--keep", min=0, help="Retired versions to keep per view (newest).")
    ] = 0,
    dry_run: Annotated[bool, typer.Option(help="Show what would be removed.")] = False,
) -> None:
    """Remove old offline table versions of views (kept after definition changes for
    reproducing past training sets): their tables and their registry records."""
    console = make_console()
    with errors():
        store = open_store(repo)
        removed = store.prune(keep=keep, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for version in removed:
            console.print(
                f"{verb} {version.view} table version {version.version} ({version.status}, "
                f"table {version.table})",
                highlight=False,
            )
        if not removed:
            console.print("nothing to prune")
        store.close()
