"""``serve``: online features over HTTP, metrics and the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headwater.cli.app import Repo, app, errors, open_store

DEFAULT_PORT = 8566
"""``headwater.server.DEFAULT_PORT``, repeated so that ``--help`` imports no server code."""


@app.command()
def serve(
    repo: Repo = Path("."),
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = DEFAULT_PORT,
    token_env: Annotated[
        str | None,
        typer.Option(
            metavar="VAR",
            help="Name of an environment variable holding a bearer token to require.",
        ),
    ] = None,
) -> None:
    """Serve online features over HTTP, with /metrics and a dashboard at /."""
    import os

    from headwater.errors import ConfigError

    with errors():
        token = None
        if token_env:
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(
                    f"--token-env {token_env}: the variable is not set",
                    fix=f"export {token_env}=...",
                )
        store = open_store(repo)
        _ = store.definitions  # fail fast on broken definitions
        from headwater.server.app import serve as run_server

        run_server(store, host=host, port=port, token=token)
