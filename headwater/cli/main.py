"""The ``headwater`` console script: registers every command on the app, then runs it.

Commands appear in ``headwater --help`` in the order their modules are imported here.
"""

from __future__ import annotations

from headwater.cli import project  # noqa: F401  (registers init, quickstart)

# isort: split
from headwater.cli import pipeline, reading  # noqa: F401  (apply … materialize; get … quality)

# isort: split
from headwater.cli import catalog, serving  # noqa: F401  (views … quarantine; serve)

# isort: split
from headwater.cli import versions  # noqa: F401  (versions, prune)
from headwater.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
