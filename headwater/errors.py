"""Errors raised by headwater.

Every error names the thing that is wrong, where it is, and how to fix it. The CLI prints
``str(error)`` as a one-line cause and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any


class HeadwaterError(Exception):
    """Base class of every error headwater raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} — fix: {fix}" if fix else message)


class ConfigError(HeadwaterError):
    """``headwater.yaml`` is malformed, has unknown keys, or references a missing variable."""


class DefinitionError(HeadwaterError):
    """A feature view, source or entity definition is invalid."""


class InvalidEntityKey(DefinitionError):
    """An entity key value is not of the key's declared type and cannot become one without
    losing something (``"abc"`` or ``"1.5"`` for an integer key, a number past its range)."""


class ConnectionFailed(HeadwaterError):
    """A server (PostgreSQL, Redis, ...) could not be reached."""


class MissingDependency(HeadwaterError):
    """An optional driver is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the optional package {package!r} is not installed",
            fix=f"pip install 'headwater[{extra}]'",
        )
        self.package = package
        self.extra = extra


class NotFound(HeadwaterError):
    """A named feature view, feature or entity does not exist in the registry."""


class RunFailed(HeadwaterError):
    """A pipeline run failed; the cause is chained."""


class QualityFailed(HeadwaterError):
    """Data-quality checks of severity ``fail`` failed; the run wrote nothing.

    ``failures`` holds the failed checks' results (``headwater.quality.CheckResult``).
    """

    def __init__(
        self, message: str, *, fix: str | None = None, failures: list[Any] | None = None
    ) -> None:
        super().__init__(message, fix=fix)
        self.failures = list(failures or [])


class ViewBusy(HeadwaterError):
    """A live run of the view holds it (a per-view lease in the registry); ``holder`` is its
    process as ``host:pid``."""

    def __init__(self, message: str, *, fix: str, holder: str) -> None:
        super().__init__(message, fix=fix)
        self.holder = holder


class StaleCheckpoint(HeadwaterError):
    """Another worker committed a streaming partition since this worker last read it (the
    partition moved in a rebalance); the commit was refused and nothing of it was saved."""


_interrupted: list[bool] = []
_interrupt_hooks: list[Callable[[], None]] = []


def mark_interrupted() -> None:
    """Note that this process was asked to stop (SIGINT) and stop the work of the hooks given
    to :func:`on_interrupt` (may be called from any thread). Some libraries turn the
    ``KeyboardInterrupt`` into an error of their own (DuckDB: ``RuntimeError: Query
    interrupted``); the note lets runs be recorded ``interrupted`` all the same."""
    first = not _interrupted
    _interrupted.append(True)
    if first:
        interrupt_work()


def interrupt_work() -> None:
    """Call the hooks given to :func:`on_interrupt` (again: work started after the first call,
    such as a query that began a moment after the signal, is stopped by a later one)."""
    for hook in list(_interrupt_hooks):
        with contextlib.suppress(Exception):  # best effort: the interrupt goes on anyway
            hook()


def on_interrupt(hook: Callable[[], None]) -> None:
    """Call ``hook`` (from any thread) when the process is asked to stop: for work that
    Python's ``KeyboardInterrupt`` cannot reach, such as a DuckDB query a native writer is
    pulling rows from."""
    if hook not in _interrupt_hooks:
        _interrupt_hooks.append(hook)


def was_interrupted() -> bool:
    """Whether :func:`mark_interrupted` was called in this process."""
    return bool(_interrupted)


OPTIONAL_MODULES: dict[str, str] = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "pgpq": "postgres",
    "adbc_driver_manager": "postgres",
    "adbc_driver_postgresql": "postgres",
    "redis": "redis",
    "confluent_kafka": "kafka",
    "fastavro": "kafka",
    "boto3": "s3",
    "botocore": "s3",
    "pyspark": "spark",
}
"""Optional drivers (top-level module names) and the extra of ``pyproject.toml`` that installs
each (psycopg and boto3 come with ``redshift`` too: the error names the first extra)."""


def missing_extra(exc: BaseException) -> MissingDependency | None:
    """The :class:`MissingDependency` an import error of an optional driver means, else
    ``None`` (a module headwater does not know stays the error it is)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.split(".")[0]
    extra = OPTIONAL_MODULES.get(module)
    return None if extra is None else MissingDependency(module, extra)


def require_modules(modules: tuple[str, ...], extra: str | None = None) -> None:
    """Check, without importing them, that ``modules`` are installed.

    Raises:
        MissingDependency: naming the first missing one and the extra that installs it
            (``extra``, else the one :data:`OPTIONAL_MODULES` gives).
    """
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependency(module, extra or OPTIONAL_MODULES.get(module, module))


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependency` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependency(module.split(".")[0], extra) from exc
