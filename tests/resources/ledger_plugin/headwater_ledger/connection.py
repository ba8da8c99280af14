"""The ``type: ledger`` connection of ``headwater.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from headwater.config.models import ConnectionConfig


class LedgerConnection(ConnectionConfig):
    """An account at the ledger service."""

    type: Literal["ledger"] = "ledger"
    currency: str
    """Currency every amount is given in."""
    api_key: SecretStr
    """Key of the service account (take it from the environment: ``${LEDGER_API_KEY}``)."""
    entries_per_account: int = 3
    """Entries the service holds for each account."""
