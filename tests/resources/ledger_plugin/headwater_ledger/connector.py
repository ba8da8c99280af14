"""The connector of ``LedgerSource``: entries as a one-shot stream of Arrow record batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pyarrow as pa

from headwater.connectors.base import Scan, StreamScan
from headwater.errors import ConnectionFailed
from headwater_ledger.connection import LedgerConnection
from headwater_ledger.source import LedgerSource

SCHEMA = pa.schema(
    [
        pa.field("account", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("booked_at", pa.timestamp("us", tz="UTC")),
    ]
)
START = datetime(2024, 1, 1, tzinfo=UTC)


class LedgerConnector:
    """Reads a :class:`LedgerSource`: one record batch per account."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = False

    def __init__(self, source: LedgerSource, project: Any) -> None:
        self.source = source
        self.conn: LedgerConnection = project.connection(source.connection, "ledger")

    def schema(self) -> pa.Schema:
        return SCHEMA

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if not self.conn.api_key.get_secret_value():
            raise ConnectionFailed(
                f"source {self.source.name!r}: the ledger service refused an empty api_key",
                fix="set api_key of the connection",
            )
        count = self.conn.entries_per_account
        for i, account in enumerate(self.source.accounts):
            yield pa.record_batch(
                [
                    [account] * count,
                    [float((i + 1) * 10 + k) for k in range(count)],
                    [self.conn.currency] * count,
                    [START + timedelta(hours=k) for k in range(count)],
                ],
                schema=SCHEMA,
            )

    def scan(self, con: Any, *, checkpoint: Any = None) -> Scan:
        view = f"__ledger_{self.source.name}"
        con.register(view, pa.RecordBatchReader.from_batches(SCHEMA, self._batches()))
        return StreamScan(relation=view)
