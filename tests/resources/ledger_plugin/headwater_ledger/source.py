"""``LedgerSource``: the entries of some accounts of a ledger service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from headwater.definitions import Source


@dataclass(frozen=True, kw_only=True)
class LedgerSource(Source):
    """Entries (``account``, ``amount``, ``currency``, ``booked_at``) of ``accounts``.

    Args:
        name: unique source name.
        connection: a ``type: ledger`` connection of ``headwater.yaml``.
        accounts: the accounts to read.
        timestamp_field: the event-time column (``booked_at``).
    """

    kind: ClassVar[str] = "ledger"
    connection: str
    accounts: tuple[str, ...] = ()
