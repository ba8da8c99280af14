"""Setting a project up: ``init`` and ``quickstart``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headwater.cli.app import app, errors, make_console


# ---------------------------------------------------------------------- project set-up
@app.command()
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create.")],
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Create a project: a commented headwater.yaml and an example definitions module."""
    from headwater.cli.scaffold import write_template

    with errors():
        written = write_template(directory, force=force)
    for path in written:
        typer.echo(f"created {path}")
    typer.echo(f"next: cd {directory} && headwater apply")


@app.command()
def quickstart(
    directory: Annotated[
        Path, typer.Argument(metavar="[DIR]", help="Folder for the demo project.")
    ] = Path("demo"),
    users: Annotated[int, typer.Option(metavar="N", help="Number of generated users.")] = 1_000,
    days: Annotated[int, typer.Option(metavar="N", help="Days of generated history.")] = 14,
    postgres: Annotated[
        str | None,
        typer.Option(
            metavar="DSN",
            help="Put the orders table in this PostgreSQL database (a DSN), in the demo's own "
            "schema headwater_demo_<folder name>; no other table is touched.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace the demo's PostgreSQL schema if it exists.")
    ] = False,
) -> None:
    """Create a demo shop project with generated data, then run it end to end."""
    from headwater.cli.quickstart import run_quickstart

    with errors():
        run_quickstart(
            directory,
            users=users,
            days=days,
            console=make_console(),
            postgres=postgres,
            force=force,
        )
