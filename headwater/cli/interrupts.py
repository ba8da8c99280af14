"""Ctrl-C in the ``headwater`` command: one line, ``interrupted``, exit status 130, always.

:func:`install` replaces Python's SIGINT handler first thing. Outside a command's body (start-up,
argument parsing) nothing needs cleaning up, so an interrupt ends the process at once. Inside one
(:func:`headwater.cli.app.errors`) it raises ``KeyboardInterrupt`` so that a run in progress is
recorded ``interrupted`` and connections close; the process is also marked interrupted
(:func:`headwater.errors.mark_interrupted`), since DuckDB turns the interrupt into a
``RuntimeError: Query interrupted`` of its own, and a thread woken by the signal interrupts
work the main thread cannot leave (DuckDB queries pulled by native writers) — again every
0.2 s, for work that started just after the signal — and ends a process that is still alive
after :data:`GRACE_S`. A second Ctrl-C ends the process at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType

_state = {"inside": 0, "told": False, "seen": False, "insisting": False}

GRACE_S = 20.0
"""Seconds an interrupted command has to record its run and close before it is ended."""


def install() -> None:
    """Handle SIGINT as described in the module docstring."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    signal.signal(signal.SIGINT, _on_interrupt)
    # Python runs a signal handler only between bytecodes of the main thread, which may be
    # inside a native call for minutes (a Delta write pulling rows from a DuckDB query). The
    # wake-up byte reaches this thread at once; it stops such work (``on_interrupt`` hooks).
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read,), name="interrupts", daemon=True).start()


def _watch(read: int) -> None:
    from headwater.errors import mark_interrupted

    while True:
        try:
            data = os.read(read, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGINT in data:
            mark_interrupted()
            if not _state["insisting"]:
                _state["insisting"] = True
                threading.Thread(target=_insist, name="interrupts-insist", daemon=True).start()


def _insist() -> None:
    """Stop work again and again until the process ends: the signal may land a moment before a
    native call (a query, a writer pulling rows) that Python's handler cannot reach. A process
    still alive :data:`GRACE_S` after the interrupt ends at once, as a second Ctrl-C would."""
    import time

    from headwater.errors import interrupt_work

    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        interrupt_work()
    stop()


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
