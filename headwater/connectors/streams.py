"""Scans of one-shot Arrow streams (database reads), and when to read them again.

DuckDB reports an error raised inside a registered Arrow stream only as text, so a
:class:`StreamScan` keeps the connector's own exception. A read that lost its connection
(:class:`ConnectionLost`) may be started again from the same checkpoint, since nothing was
written yet: :func:`read_failure` tells the orchestrator whether and when.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from headwater.connectors.base import Scan
from headwater.errors import ConnectionFailed


class ConnectionLost(ConnectionFailed):
    """The connection broke while a read was streaming; the read may be started again."""


@dataclass
class StreamScan(Scan):
    """A :class:`Scan` of a one-shot Arrow stream, which the runner stages in DuckDB.

    Attributes:
        failure: the exception that ended the stream early, as the connector raised it.
        retries: how many times the whole read may be started again after a
            :class:`ConnectionLost`.
        backoff_s: delay before the first such retry (doubled each time, with jitter).
    """

    failure: Callable[[], BaseException | None] = field(default=lambda: None)
    one_shot: bool = True
    retries: int = 0
    backoff_s: float = 0.5


def backoff_delay(attempt: int, base_s: float) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``base * 2**attempt``, half of it
    jittered, so that readers that failed together do not come back together."""
    delay = base_s * (1 << attempt)
    return delay / 2 + random.uniform(0, delay / 2)


def read_failure(scan: Scan, error: BaseException, attempt: int) -> tuple[BaseException, float]:
    """What to do after reading ``scan`` failed with ``error`` on try number ``attempt``.

    Returns:
        The error to report (the connector's own when the stream failed inside DuckDB) and the
        delay before reading again, or a negative delay when the read must not be retried.
    """
    if not isinstance(scan, StreamScan):
        return error, -1.0
    cause = scan.failure() or error
    if isinstance(cause, ConnectionLost) and attempt < scan.retries:
        return cause, backoff_delay(attempt, scan.backoff_s)
    return cause, -1.0
