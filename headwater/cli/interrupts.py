"""Ctrl-C in the ``headwater`` command: one line, ``interrupted``, exit status 130, always.

:func:`install` replaces Python's SIGINT handler first thing. Outside a command's body (start-up,
argument parsing) nothing needs cleaning up, so an interrupt ends the process at once. Inside one
(:func:`headwater.cli.app.errors`) it raises ``KeyboardInterrupt`` so that a run in progress is
recorded ``interrupted`` and connections close; the process is also marked interrupted
(:func:`headwater.errors.mark_interrupted`), since DuckDB turns the interrupt into a
``RuntimeError: Query interrupted`` of its own. A second Ctrl-C ends the process at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

_state = {"inside": 0, "told": False, "seen": False}


def install() -> None:
    """Handle SIGINT as described in the module docstring."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    from headwater.errors import mark_interrupted

    mark_interrupted()
    if _state["seen"] or not _state["inside"]:
        stop()
    _state["seen"] = True
    raise KeyboardInterrupt


def enter() -> None:
    """A command's body starts: interrupts become ``KeyboardInterrupt``."""
    _state["inside"] = int(_state["inside"]) + 1


def leave() -> None:
    """A command's body ended."""
    _state["inside"] = max(0, int(_state["inside"]) - 1)


def tell() -> None:
    """Print the one line of an interrupted command (once)."""
    if not _state["told"]:
        _state["told"] = True
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing more to say
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()


def stop() -> None:
    """End the process now: the one line, exit status 130."""
    tell()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    os._exit(130)
