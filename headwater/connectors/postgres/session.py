"""The sessions of PostgreSQL reads: connection strings, parameters, errors.

A read is one ``COPY (SELECT ...) TO STDOUT``, and COPY takes no bound parameters (the ADBC
driver falls back to materialising the whole result when given some). So each value is bound to
``set_config('headwater.p<n>', $1, false)`` on the reading session, and the statement refers to
it as ``(current_setting('headwater.p<n>')::<type>)``. Values are never formatted into SQL
text. ``<type>`` is the type PostgreSQL inferred for the placeholder (or the cursor / partition
column's type), so a string compares with a timestamp column as it would when bound by psycopg.
``current_setting`` is a stable function: the planner estimates with the actual value (the same
plan as a literal: an index scan for a recent cursor mark) and an index scan computes it once;
only a filter evaluated row by row pays for it on each row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from headwater.errors import ConnectionFailed, DefinitionError
from headwater.observability import redact

if TYPE_CHECKING:
    from headwater.connectors.postgres.config import PostgresConnection


def unreachable(what: str, dsn: str, exc: BaseException) -> ConnectionFailed:
    """The error for a connection that could not be opened: one line, the DSN redacted."""
    # libpq's message spans lines ("...: Connection refused\n\tIs the server running...");
    # keep every part, on one line.
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return ConnectionFailed(
        f"{what}: cannot connect to PostgreSQL at {redact(dsn)}: "
        f"{redact(text or type(exc).__name__)}",
        fix="check that the server is running and the dsn in headwater.yaml is right",
    )


def session_conninfo(
    conn_config: PostgresConnection, *, application_name: str | None = None
) -> str:
    """The libpq connection string of every headwater session: the connection's options
    (``sslmode``, ...), a UTC session and the statement timeout, all as startup options (so
    ``RESET ALL`` returns a pooled session to them), and ``application_name`` (default: the
    configured one, else ``headwater``)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = conn_config.dsn.get_secret_value()
    in_dsn = conninfo_to_dict(dsn)
    params = {"connect_timeout": str(max(1, int(conn_config.connect_timeout_s)))}
    params.update({k: v.get_secret_value() for k, v in conn_config.options.items()})
    # The DSN's own "options" come first, then the configured ones, then headwater's.
    flags = [str(in_dsn.get("options") or ""), params.pop("options", ""), "-c TimeZone=UTC"]
    if conn_config.statement_timeout_ms:
        flags.append(f"-c statement_timeout={int(conn_config.statement_timeout_ms)}")
    if application_name is None:
        configured = params.get("application_name") or in_dsn.get("application_name")
        application_name = str(configured or "headwater")
    params.update(application_name=application_name, options=" ".join(f for f in flags if f))
    return make_conninfo(dsn, **params)


def reader_conninfo(conn_config: PostgresConnection, *, application_name: str) -> str:
    """:func:`session_conninfo` with ``application_name`` replacing any configured one."""
    return session_conninfo(conn_config, application_name=application_name)


_PLACEHOLDER = re.compile(r"%\((?P<name>[^)]*)\)[sbt]|%%|%")


def render_query(
    query: str, params: Mapping[str, Any], placeholder: Callable[[str], str], *, what: str
) -> str:
    """Replace the ``%(name)s`` placeholders of ``query`` by ``placeholder(name)``; ``%%`` is
    ``%`` (psycopg's rules).

    Raises:
        DefinitionError: a placeholder has no value, or a lone ``%`` is in the text.
    """

    def replace(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group("name")
        if token == "%%":
            return "%"
        if name is None:
            raise DefinitionError(
                f"{what}: query has a lone '%' at character {match.start()}",
                fix="write a literal % as %% when the query has params",
            )
        if name not in params:
            raise DefinitionError(
                f"{what}: query placeholder %({name})s has no value in params",
                fix=f"add {name!r} to params (given: {', '.join(sorted(params))})",
            )
        return placeholder(name)

    return _PLACEHOLDER.sub(replace, query)


def value_text(value: Any, *, what: str) -> str | None:
    """``value`` in PostgreSQL's input syntax (``None`` for NULL).

    Raises:
        DefinitionError: the value has no text form here.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            ("NaN" if math.isnan(value) else "-Infinity" if value < 0 else "Infinity")
            if (not math.isfinite(value))
            else repr(value)
        )
    if isinstance(value, int | Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        aware = value.tzinfo is not None  # aware values in UTC: the sessions run in UTC
        return (value.astimezone(UTC) if aware else value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, str):
        if "\x00" in value:
            raise DefinitionError(f"{what}: PostgreSQL text cannot hold a NUL character")
        return value
    if isinstance(value, list | tuple):
        items = [value_text(item, what=what) for item in value]
        quoted = (
            "NULL" if item is None else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for item in items
        )
        return "{" + ",".join(quoted) + "}"
    raise DefinitionError(
        f"{what}: cannot pass {value!r} ({type(value).__name__}) to PostgreSQL",
        fix="use None, bool, int, float, Decimal, str, bytes, UUID, date, time, datetime, "
        "timedelta, or a list of those",
    )


class SessionParams:
    """Named values of one read, carried in session settings (see the module's docstring)."""

    def __init__(self) -> None:
        self._slots: dict[str, tuple[int, str, str | None]] = {}

    def set(self, name: str, value: Any, sql_type: str) -> None:
        """Give ``name`` a value, read back in the statement as ``sql_type``."""
        index = self._slots[name][0] if name in self._slots else len(self._slots)
        self._slots[name] = (index, sql_type, value_text(value, what=f"parameter {name!r}"))

    def ref(self, name: str) -> str:
        """The SQL expression standing for ``name``'s value."""
        index, sql_type, text = self._slots[name]
        if text is None:
            return f"NULL::{sql_type}"
        return f"(current_setting('headwater.p{index}')::{sql_type})"

    def settings(self) -> list[tuple[str, str]]:
        """``(setting name, value text)`` pairs to set on the session before the read."""
        return [
            (f"headwater.p{i}", text) for i, _, text in self._slots.values() if text is not None
        ]

    def copy(self) -> SessionParams:
        """An independent copy (a partition adds its bounds to it)."""
        other = SessionParams()
        other._slots = dict(self._slots)
        return other


def set_config_sql(count: int, style: str) -> str:
    """``SELECT set_config(<name>, <value>, false), ...`` with ``count`` pairs of placeholders in
    ``style``: ``"$"`` (``$1, $2``: ADBC) or ``"%s"`` (psycopg)."""
    marks = [f"${i}" if style == "$" else "%s" for i in range(1, 2 * count + 1)]
    calls = (f"set_config({marks[2 * i]}, {marks[2 * i + 1]}, false)" for i in range(count))
    return "SELECT " + ", ".join(calls)


# ---------------------------------------------------------------------- errors
_LOST = (
    "server closed the connection",
    "terminating connection",
    "connection to server",
    "could not receive data",
    "could not send data",
    "no connection to the server",
    "consuming input failed",
    "ssl syscall error",
    "ssl connection has been closed",
    "connection reset",
    "broken pipe",
    "eof detected",
    "lost synchronization",
)
_LOST_STATES = ("57P01", "57P02", "57P03")  # admin / crash shutdown, cannot connect now


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection broke (rather than the statement failing)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state.startswith("08") or state in _LOST_STATES
    text = str(exc).lower()
    return any(marker in text for marker in _LOST)


def reason(exc: BaseException) -> str:
    """The server's or libpq's message of ``exc`` on one line, without driver prefixes and
    without the ``LINE``/``DETAIL``/``HINT`` lines that follow it."""
    text = str(exc)
    for prefix in ("ERROR:", "FATAL:"):
        if prefix in text:
            text = text.split(prefix, 1)[1]
            break
    lines = []
    for line in (part.strip() for part in text.splitlines()):
        if line.startswith(_TRAILERS):
            break
        if line:
            lines.append(line)
    text = re.sub(r"^\[libpq\]\s*", "", " ".join(" ".join(lines).split()))
    return redact(text or type(exc).__name__)


_TRAILERS = ("LINE ", "DETAIL:", "HINT:", "CONTEXT:", "QUERY:", "^")
