"""Shared fixtures: real PostgreSQL and Redis servers, one database / key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_DSN = os.environ.get(
    "HEADWATER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HEADWATER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESOURCES = Path(__file__).parent / "resources"


def _with_db(dsn: str, db: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN of a fresh, empty PostgreSQL database dropped after the test."""
    import psycopg

    name = f"hw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(PG_ADMIN_DSN, name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    import redis

    prefix = f"hwtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
