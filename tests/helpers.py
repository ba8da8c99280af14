"""Helpers shared by tests: write a project folder (config, definitions, data) and read it back."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
"""The offline stores' timestamp type."""

STORAGE_COLUMNS = ("_seq", "event_date")


def write_parquet(root: Path, relative: str, table: pa.Table) -> Path:
    """Write ``table`` to ``root/relative`` (folders created), replacing any previous file."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_project(
    root: Path,
    definitions: str,
    *,
    offline: str | None = None,
    online: dict[str, Any] | None = None,
    data: dict[str, pa.Table] | None = None,
    module: str = "defs.py",
) -> Path:
    """Create a project in ``root``: ``headwater.yaml``, one definitions module and data files.

    Args:
        root: the project folder (usually ``tmp_path``).
        definitions: Python source of the definitions module (dedented here).
        offline: ``"delta"`` or ``"parquet"``; the default store when ``None``.
        online: the ``online_store`` section, e.g. ``{"type": "redis", "url": ...}``.
        data: Parquet files to write, by path relative to ``root`` (``"data/x.parquet"``).
        module: file name of the definitions module.
    """
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"project": "t"}
    if offline is not None:
        config["offline_store"] = {"type": offline}
    if online is not None:
        config["online_store"] = dict(online)
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / module).write_text(textwrap.dedent(definitions).lstrip())
    for relative, table in (data or {}).items():
        write_parquet(root, relative, table)
    return root


def offline_rows(store: Any, view: str, *, keep_storage: bool = False) -> list[dict[str, Any]]:
    """The offline rows of ``view`` as sorted dicts (``_seq``/``event_date`` dropped by default),
    from its serving table version (a side table's name is read as it is)."""
    registry = getattr(store, "registry", None)
    table = view if registry is None else registry.serving_table(view)
    dataset = store.offline.dataset(table)
    if dataset is None:
        return []
    table = dataset.to_table()
    if not keep_storage:
        table = table.drop_columns([c for c in STORAGE_COLUMNS if c in table.column_names])
    return sorted_rows(table)


def sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of ``table`` as dicts with sorted keys, sorted by every column (nulls first)."""
    names = sorted(table.column_names)
    rows = [{name: row[name] for name in names} for row in table.to_pylist()]
    return sorted(rows, key=lambda row: [_sort_key(row[name]) for name in names])


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


def aws_client(endpoint: str, service: str) -> Any:
    """A boto3 client of ``service`` on the S3-compatible test server (fixture ``s3_endpoint``)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
