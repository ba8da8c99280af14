"""The ``headwater`` command line: the Typer app and what every command shares.

Every project command takes ``--repo DIR`` (default ``.``), also accepted before the command
(``headwater --repo DIR status``; a command's own ``--repo`` wins). Heavy modules are imported
inside the commands so ``headwater --help`` stays fast. Errors headwater raises on purpose print
as one line (``error: ... — fix: ...``) and exit with status 1; an interrupted command exits 130.
The commands live in :mod:`.project` (``init``, ``quickstart``), :mod:`.pipeline` (``apply``,
``run``, ``backfill``, ``materialize``, ``stream``), :mod:`.reading` (``get``, ``history``,
``status``, ``check``, ``quality``), :mod:`.catalog` (``views``, ``describe``, ``runs``,
``quarantine``) and :mod:`.serving` (``serve``); :mod:`.main` registers them. Reading commands
print through :mod:`.output` (never a cut value; TSV when piped; ``--json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from headwater.feature_store import FeatureStore

app = typer.Typer(
    name="headwater",
    help="Feature-engineering data pipelines: ingest, compute, store and serve features.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

Repo = Annotated[
    Path,
    typer.Option("--repo", "-r", metavar="DIR", help="Project folder (holds headwater.yaml)."),
]
Views = Annotated[
    list[str] | None, typer.Argument(metavar="[VIEW]...", help="Feature views (default: all).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (one document) instead.")]
F = TypeVar("F", bound=Callable[..., Any])


def make_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


@contextmanager
def errors() -> Iterator[None]:
    """Turn headwater errors into a one-line message and exit status 1; an interrupt (however
    a library reports it) into ``interrupted`` and exit status 130."""
    from headwater.cli import interrupts
    from headwater.errors import HeadwaterError, missing_extra, was_interrupted

    interrupts.enter()
    try:
        yield
    except KeyboardInterrupt:
        interrupts.tell()
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except Exception as exc:
        if was_interrupted():  # e.g. DuckDB's "Query interrupted"
            interrupts.tell()
            raise typer.Exit(130) from None
        if isinstance(exc, HeadwaterError):
            typer.echo(f"error: {one_line(str(exc))}", err=True)
            raise typer.Exit(1) from None
        # An optional driver imported deep in a code path: still name the extra.
        missing = missing_extra(exc)
        if missing is None:
            raise _unexpected(exc) from None
        typer.echo(f"error: {one_line(str(missing))}", err=True)
        raise typer.Exit(1) from None
    finally:
        interrupts.leave()


def _unexpected(exc: Exception) -> BaseException:
    """Not an error headwater raises on purpose: still one line, with a way to see more (the
    traceback itself under ``HEADWATER_DEBUG=1``)."""
    import os

    if os.environ.get("HEADWATER_DEBUG"):
        return exc
    typer.echo(
        f"error: unexpected {type(exc).__name__}: {one_line(str(exc), first=True)} — fix: "
        "rerun with HEADWATER_DEBUG=1 to see the traceback",
        err=True,
    )
    return typer.Exit(1)


def one_line(text: str, *, first: bool = False) -> str:
    """``text`` redacted and folded onto one line (driver messages often span several)."""
    from headwater.observability import redact

    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return redact(" ".join(lines[:1] if first else lines))


_given: dict[str, Path | None] = {"repo": None}
"""``--repo`` given before the command (set by the app's callback on every invocation)."""


def resolve_repo(repo: Path) -> Path:
    """The project folder of the running command: its own ``--repo`` when given (other than
    ``.``), else the one given before the command (``headwater --repo DIR status``), else ``.``."""
    given = _given["repo"]
    return given if given is not None and repo == Path(".") else repo


def open_store(repo: Path) -> FeatureStore:
    from headwater.feature_store import FeatureStore
    from headwater.observability import configure_logging

    configure_logging()
    return FeatureStore(resolve_repo(repo))


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
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            "-r",
            metavar="DIR",
            help="Project folder for the command (default .; the command's own --repo wins).",
        ),
    ] = None,
) -> None:
    """Feature-engineering data pipelines: ingest, compute, store and serve features.

    Shell completion: `headwater --install-completion` (bash, zsh, fish, PowerShell).
    """
    _given["repo"] = repo
