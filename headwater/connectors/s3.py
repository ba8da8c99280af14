"""Stage Arrow batches as Parquet parts on S3 for a warehouse ``COPY``, and remove them after.

The client is any boto3 S3 client (``boto3.client("s3")``; S3-compatible servers through
``endpoint_url`` or the ``AWS_ENDPOINT_URL_S3`` environment variable).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.connectors.sinks.base import SinkError

if TYPE_CHECKING:
    import pyarrow as pa

_FIX = "check that the AWS credentials may write, list and delete objects under s3_staging"


@dataclass
class StagedFiles:
    """Parquet parts written under one prefix."""

    bucket: str
    prefix: str
    keys: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def url(self) -> str:
        """``s3://bucket/prefix/``: what ``COPY`` loads (every part under it)."""
        return f"s3://{self.bucket}/{self.prefix}"


def split_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of ``s3://bucket/key/prefix/``."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def stage_parquet(
    client: Any,
    url: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    rows_per_file: int = 1_000_000,
) -> StagedFiles:
    """Write ``batches`` as ``part-NNNNN.parquet`` files of about ``rows_per_file`` rows under
    ``url`` (a prefix ending in ``/``).

    One part at a time is held in memory. On any failure the parts written so far are deleted.

    Raises:
        SinkError: S3 refused an upload.
    """
    import pyarrow.parquet as pq

    bucket, prefix = split_s3_url(url)
    staged = StagedFiles(bucket, prefix)
    pending = iter(batches)
    try:
        while True:
            buffer, rows = io.BytesIO(), 0
            with pq.ParquetWriter(buffer, schema, compression="snappy") as writer:
                for batch in pending:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    if rows >= rows_per_file:
                        break
            if rows == 0:
                return staged
            key = f"{prefix}part-{len(staged.keys):05d}.parquet"
            buffer.seek(0)
            try:
                client.upload_fileobj(buffer, bucket, key)
            except Exception as exc:  # botocore's errors; boto3 is imported lazily
                raise SinkError(f"cannot write s3://{bucket}/{key}: {exc}", fix=_FIX) from None
            staged.keys.append(key)
            staged.rows += rows
    except BaseException:
        delete_staged(client, staged)
        raise


def delete_staged(client: Any, staged: StagedFiles) -> None:
    """Delete the staged parts (1,000 keys per request).

    Raises:
        SinkError: S3 refused the deletion.
    """
    for start in range(0, len(staged.keys), 1000):
        chunk = staged.keys[start : start + 1000]
        try:
            client.delete_objects(
                Bucket=staged.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )
        except Exception as exc:  # botocore's errors
            raise SinkError(
                f"cannot delete staged files under {staged.url}: {exc}", fix=_FIX
            ) from None
