"""``headwater.yaml``: defaults, interpolation, and the error messages of bad files."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from headwater.config import ProjectConfig, load_config
from headwater.connectors.kafka.config import KafkaConnection
from headwater.connectors.postgres.config import PostgresConnection
from headwater.engines.duckdb import DuckDBEngineConfig
from headwater.errors import ConfigError, ConnectionFailed
from headwater.observability import configure_logging, get_logger, redact
from headwater.stores.offline.delta import DeltaOfflineStoreConfig
from headwater.stores.online.redis import RedisOnlineStoreConfig
from headwater.stores.online.sqlite import SqliteOnlineStoreConfig
from headwater.stores.registry import SqliteRegistryConfig

PASSWORD = "s3cr3t-Pa55"
DSN = f"postgresql://app:{PASSWORD}@127.0.0.1:5432/shop"


def load(tmp_path: Path, text: str) -> ProjectConfig:
    (tmp_path / "headwater.yaml").write_text(text)
    return load_config(tmp_path)


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


# ---------------------------------------------------------------------- defaults and shape
def test_a_file_with_only_the_project_name_is_a_complete_project(tmp_path: Path) -> None:
    config = load(tmp_path, "project: shop\n")
    assert config.project == "shop"
    assert config.root == tmp_path.resolve()
    assert config.registry == SqliteRegistryConfig()
    assert config.registry.path == ".headwater/registry.db"
    assert isinstance(config.offline_store, DeltaOfflineStoreConfig)
    assert config.offline_store.path == "data/offline"
    assert isinstance(config.online_store, SqliteOnlineStoreConfig)
    assert isinstance(config.engine, DuckDBEngineConfig)
    assert config.connections == {}
    assert config.resolve(config.registry.path) == str(
        tmp_path.resolve() / ".headwater/registry.db"
    )


def test_the_issue_example_shape_parses(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""
project: shop
connections:
  app_db: {{type: postgres, dsn: "{DSN}"}}
online_store: {{type: redis, url: "redis://:{PASSWORD}@127.0.0.1:6379/0"}}
""",
    )
    conn = config.connection("app_db", "postgres")
    assert isinstance(conn, PostgresConnection)
    assert conn.dsn.get_secret_value() == DSN
    assert isinstance(config.online_store, RedisOnlineStoreConfig)
    assert config.online_store.url.get_secret_value() == f"redis://:{PASSWORD}@127.0.0.1:6379/0"


def test_every_section_switches_kind(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
project: shop
registry: {type: postgres, dsn: "postgresql://h/db", schema: meta}
offline_store: {type: parquet, path: lake/offline}
online_store: {type: sqlite, path: online.db}
engine: {type: duckdb, memory_limit: 1GB, threads: 2}
connections:
  events: {type: kafka, bootstrap_servers: "k:9092", security_protocol: SASL_SSL}
""",
    )
    assert config.registry.type == "postgres"
    assert config.offline_store.type == "parquet"
    assert config.engine.memory_limit == "1GB"
    assert isinstance(config.connections["events"], KafkaConnection)


def test_a_connection_of_another_kind_or_missing_is_named(tmp_path: Path) -> None:
    config = load(
        tmp_path, "project: p\nconnections:\n  bus: {type: kafka, bootstrap_servers: k}\n"
    )
    with pytest.raises(ConfigError, match=r"connection 'app_db' is not defined.*defined: bus"):
        config.connection("app_db", "postgres")
    with pytest.raises(ConfigError, match=r"connection 'bus' is of type 'kafka'"):
        config.connection("bus", "postgres")


# ---------------------------------------------------------------------- interpolation
@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("HW_TEST_PW", "HW_TEST_HOST", "HW_TEST_MISSING"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def test_env_vars_are_interpolated(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    env.setenv("HW_TEST_PW", PASSWORD)
    env.setenv("HW_TEST_HOST", "db.internal")
    config = load(
        tmp_path,
        "project: p\nconnections:\n  app_db: {type: postgres, "
        'dsn: "postgresql://app:${HW_TEST_PW}@${HW_TEST_HOST}:5432/shop"}\n',
    )
    conn = config.connection("app_db", "postgres")
    assert conn.dsn.get_secret_value() == f"postgresql://app:{PASSWORD}@db.internal:5432/shop"


def test_env_var_defaults(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    text = "project: p\nonline_store: {type: sqlite, path: '${HW_TEST_HOST:-data/online.db}'}\n"
    assert load(tmp_path, text).online_store == SqliteOnlineStoreConfig(path="data/online.db")
    env.setenv("HW_TEST_HOST", "elsewhere.db")
    assert load(tmp_path, text).online_store == SqliteOnlineStoreConfig(path="elsewhere.db")
    empty = "project: p\nonline_store: {type: redis, key_prefix: 'x${HW_TEST_MISSING:-}'}\n"
    assert load(tmp_path, empty).online_store == RedisOnlineStoreConfig(key_prefix="x")


def test_a_missing_env_var_names_the_variable_and_the_key(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    message = config_error(
        tmp_path,
        "project: p\nconnections:\n  app_db:\n    type: postgres\n"
        '    dsn: "postgresql://app:${HW_TEST_MISSING}@h/db"\n',
    )
    assert "HW_TEST_MISSING" in message
    assert "connections.app_db.dsn" in message
    assert "not set" in message
    assert "export HW_TEST_MISSING=" in message


def test_a_missing_env_var_in_a_list_names_the_index(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    message = config_error(tmp_path, "project: p\nextra_list: [a, '${HW_TEST_MISSING}']\n")
    assert "extra_list.1 uses ${HW_TEST_MISSING}" in message


# ---------------------------------------------------------------------- unknown keys and types
@pytest.mark.parametrize(
    ("text", "path", "valid"),
    [
        ("projct: p\n", "projct", "project, registry, offline_store, online_store, engine"),
        (
            "project: p\nonline_store: {type: redis, urll: 'redis://h'}\n",
            "online_store.urll",
            "type, url, key_prefix, batch_size",
        ),
        (
            "project: p\nengine: {type: duckdb, memory: 2GB}\n",
            "engine.memory",
            "memory_limit",
        ),
        (
            "project: p\nregistry: {type: postgres, dsn: x, db_schema: meta}\n",
            "registry.db_schema",
            "type, dsn, schema",
        ),
        (
            f'project: p\nconnections:\n  app_db: {{type: postgres, dsn: "{DSN}", sslmode: x}}\n',
            "connections.app_db.sslmode",
            "dsn, options, connect_timeout_s",
        ),
        (
            # A connection named like a connection type keeps its name in the path.
            "project: p\nconnections:\n  postgres: {type: postgres, dsn: x, port: 1}\n",
            "connections.postgres.port",
            "dsn, options",
        ),
    ],
)
def test_unknown_keys_name_the_dotted_path_and_the_valid_keys(
    tmp_path: Path, text: str, path: str, valid: str
) -> None:
    message = config_error(tmp_path, text)
    assert f"{path}: unknown key" in message
    assert valid in message
    assert PASSWORD not in message


def test_an_unknown_key_suggests_the_closest_valid_one(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: p\nonline_store: {type: redis, urll: x}\n")
    assert "did you mean 'url'?" in message


def test_the_root_of_the_loader_is_not_a_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: p\nnope: 1\n")
    assert "valid keys of the top level: project, registry" in message
    assert "root" not in message.split("valid keys")[1]
    message = config_error(tmp_path, "project: p\nroot: /elsewhere\n")
    assert "root: unknown key" in message


@pytest.mark.parametrize(
    ("text", "where", "valid"),
    [
        ("project: p\nonline_store: {type: memcached}\n", "online_store.type", "'sqlite', 'redis'"),
        (
            "project: p\noffline_store: {type: iceberg}\n",
            "offline_store.type",
            "'delta', 'parquet'",
        ),
        ("project: p\nregistry: {type: mysql}\n", "registry.type", "'sqlite', 'postgres'"),
        ("project: p\nengine: {type: spark}\n", "engine.type", "'duckdb'"),
        (
            "project: p\nconnections:\n  a: {type: mysql, dsn: x}\n",
            "connections.a.type",
            "'postgres', 'kafka', 'redshift'",
        ),
    ],
)
def test_an_unknown_type_lists_the_valid_types(
    tmp_path: Path, text: str, where: str, valid: str
) -> None:
    message = config_error(tmp_path, text)
    assert where in message
    assert "unknown type" in message
    assert valid in message


def test_a_section_without_type_lists_the_valid_types(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: p\nconnections:\n  app_db: {dsn: x}\n")
    assert (
        "connections.app_db: needs a `type:` key (one of 'postgres', 'kafka', 'redshift')"
        in message
    )


def test_a_wrong_value_type_names_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: p\nengine: {type: duckdb, threads: many}\n")
    assert "engine.threads" in message


def test_a_bad_project_name_and_a_missing_one(tmp_path: Path) -> None:
    assert "project" in config_error(tmp_path, "project: 'my shop!'\n")
    assert "project: required key is missing" in config_error(tmp_path, "online_store: {}\n")


# ---------------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("project: p\nonline_store: {type: sqlite\n", 3, 1),
        ("project: p\n  engine: x\n", 2, 9),
        ("project: p\nconnections:\n\tapp_db: {}\n", 3, 1),
    ],
)
def test_malformed_yaml_gives_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    message = config_error(tmp_path, text)
    assert "not valid YAML" in message
    assert f"line {line}, column {column}" in message


def test_a_yaml_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in config_error(tmp_path, "- project\n- p\n")


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no headwater.yaml in .*headwater init"):
        load_config(tmp_path)


def test_an_empty_file_asks_for_the_project_name(tmp_path: Path) -> None:
    assert "project: required key is missing" in config_error(tmp_path, "")


# ---------------------------------------------------------------------- secrets
def test_dsns_never_show_in_the_repr_or_dump(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""
project: p
connections:
  app_db: {{type: postgres, dsn: "{DSN}"}}
  bus: {{type: kafka, bootstrap_servers: k, sasl_password: "{PASSWORD}"}}
registry: {{type: postgres, dsn: "{DSN}"}}
online_store: {{type: redis, url: "redis://:{PASSWORD}@127.0.0.1:6379/0"}}
offline_store: {{type: delta, storage_options: {{AWS_SECRET_ACCESS_KEY: "{PASSWORD}"}}}}
""",
    )
    for text in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        assert PASSWORD not in text


def test_config_errors_do_not_echo_secrets(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        f'project: p\nconnections:\n  app_db: {{type: postgres, dsn: "{DSN}", timeout: 3}}\n',
    )
    assert PASSWORD not in message
    message = config_error(
        tmp_path, f'project: p\nconnections:\n  app_db: {{type: pg, dsn: "{DSN}"}}\n'
    )
    assert PASSWORD not in message


def test_an_unreachable_server_error_redacts_the_dsn(tmp_path: Path) -> None:
    from headwater.connectors.postgres.reader import connect

    dsn = f"postgresql://app:{PASSWORD}@127.0.0.1:1/shop"
    conn = PostgresConnection(dsn=SecretStr(dsn), connect_timeout_s=1)
    with pytest.raises(ConnectionFailed) as info:
        connect(conn, what="source 'orders'")
    message = str(info.value)
    assert PASSWORD not in message
    assert "postgresql://app:***@127.0.0.1:1/shop" in message
    assert "source 'orders'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DSN, "postgresql://app:***@127.0.0.1:5432/shop"),
        (f"redis://:{PASSWORD}@h:6379/0", "redis://:***@h:6379/0"),
        (
            f"host=h user=app password={PASSWORD} dbname=shop",
            "host=h user=app password=*** dbname=shop",
        ),
        (f"host=h password='{PASSWORD} x' dbname=shop", "host=h password=*** dbname=shop"),
        ("postgresql://app@h/shop", "postgresql://app@h/shop"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert PASSWORD not in redact(f"could not reach {text}: refused")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_output_is_redacted(fmt: str) -> None:
    configure_logging(level="INFO", fmt=fmt)
    logger = logging.getLogger("headwater")
    formatter = logger.handlers[0].formatter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    try:
        log = get_logger("tests.config")
        log.warning("connecting to %s", DSN, extra={"fields": {"dsn": DSN, "rows": 3}})
        try:
            raise RuntimeError(f"cannot connect to {DSN}")
        except RuntimeError:
            log.exception("failed")
    finally:
        logger.removeHandler(handler)
        configure_logging(level="WARNING", fmt="text")
    output = stream.getvalue()
    assert "connecting to postgresql://app:***@127.0.0.1:5432/shop" in output
    if fmt == "json":  # the text format leaves tracebacks out altogether
        assert "RuntimeError: cannot connect to postgresql://app:***@" in output
    assert PASSWORD not in output
