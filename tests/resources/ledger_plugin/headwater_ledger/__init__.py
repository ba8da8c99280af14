"""Example headwater plugin: the entries of a ledger service as a source.

``type: ledger`` connections hold the service's settings; ``LedgerSource`` declares which
accounts to read; ``LedgerConnector`` yields their entries as Arrow record batches. The
service is simulated: every account has ``entries_per_account`` entries, one an hour from
2024-01-01 00:00 UTC, the k-th of account number i worth ``(i + 1) * 10 + k``.
"""

from headwater_ledger.source import LedgerSource

__all__ = ["LedgerSource"]
