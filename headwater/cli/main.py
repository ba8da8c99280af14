"""The ``headwater`` console script: registers every command on the app, then runs it.

Commands appear in ``headwater --help`` in the order their modules are imported here. Ctrl-C
is handled from the first line on (see :mod:`headwater.cli.interrupts`): whenever it lands, the
command prints one line, ``interrupted``, and exits 130.
"""

from __future__ import annotations

from headwater.cli import interrupts

interrupts.install()

try:
    # isort: off
    from headwater.cli import project  # noqa: F401  (registers init, quickstart)
    from headwater.cli import pipeline, reading  # noqa: F401  (apply … materialize; get … quality)
    from headwater.cli import catalog, serving  # noqa: F401  (views … quarantine; serve)
    from headwater.cli import versions  # noqa: F401  (versions, prune)
    from headwater.cli.app import app

    # isort: on
except KeyboardInterrupt:  # pragma: no cover - an interrupt between two bytecodes of an import
    interrupts.stop()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - outside every command's own handling
        interrupts.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
