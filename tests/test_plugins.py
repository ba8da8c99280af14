"""Plugins: the registry's groups, and a third-party package installed for real.

``tests/resources/ledger_plugin`` is a package of its own (a ``pyproject.toml`` with entry
points for a connection type and a source connector). The end-to-end tests install it with pip
into a temporary folder and run the ``headwater`` console script with that folder on
``PYTHONPATH``, so ``importlib.metadata`` finds its entry points as it would in a user's
environment; the project's own virtualenv is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from headwater.config import ProjectConfig, parse_config
from headwater.config.models import (
    ConnectionConfig,
    EngineConfig,
    OfflineStoreConfig,
    OnlineStoreConfig,
    RegistryConfig,
    plugin_model,
)
from headwater.errors import ConfigError
from headwater.plugins import BUILTINS, ONLINE_STORES, load_plugin, plugin_names
from headwater.stores.offline import open_offline_store
from headwater.stores.online import open_online_store
from tests.helpers import sorted_rows

PLUGIN = Path(__file__).parent / "resources" / "ledger_plugin"
HEADWATER = shutil.which("headwater", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "headwater"
)
API_KEY = "ledger-Key-0042"

BASES = {
    "headwater.connections": ConnectionConfig,
    "headwater.registries": RegistryConfig,
    "headwater.offline_stores": OfflineStoreConfig,
    "headwater.online_stores": OnlineStoreConfig,
    "headwater.engines": EngineConfig,
}


# ---------------------------------------------------------------------- the built-in tables
@pytest.mark.parametrize("group", sorted(BUILTINS))
def test_every_builtin_loads(group: str) -> None:
    for name in BUILTINS[group]:
        assert isinstance(load_plugin(group, name), type), (group, name)


@pytest.mark.parametrize("group", sorted(BASES))
def test_every_configured_builtin_declares_its_model(group: str) -> None:
    for name in BUILTINS[group]:
        model = plugin_model(group, name)
        assert issubclass(model, BASES[group])
        assert model.model_fields["type"].default == name
        assert model.model_config.get("extra") == "forbid"
        implementation = load_plugin(group, name)
        if group == "headwater.connections":  # a connection type is registered as its model
            assert implementation is model
        else:
            assert implementation.config_model is model
            assert model.__name__ != implementation.__name__


def test_names_of_a_group_are_the_builtins_in_order_without_importing_them() -> None:
    assert plugin_names("headwater.online_stores")[:2] == ["sqlite", "redis"]
    assert plugin_names("headwater.connections")[:3] == ["postgres", "kafka", "redshift"]


def test_an_unknown_name_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        load_plugin("headwater.connectors", "postgress")
    message = str(info.value)
    assert "no implementation named 'postgress' in headwater.connectors" in message
    assert "did you mean 'postgres'?" in message
    assert "'file', 'kafka', 'postgres', 'redshift', 'sqlite'" in message


def test_defaults_and_instances_pass_through_project_config(tmp_path: Path) -> None:
    from headwater.connectors.kafka.config import KafkaConnection

    bus = KafkaConnection(bootstrap_servers="k:9092")
    config = ProjectConfig(
        project="p",
        connections={"bus": bus, "db": {"type": "postgres", "dsn": "postgresql://h/db"}},
    )
    assert config.connections["bus"] is bus
    assert type(config.connections["db"]).__name__ == "PostgresConnection"
    assert [config.registry.type, config.offline_store.type] == ["sqlite", "delta"]
    assert [config.online_store.type, config.engine.type] == ["sqlite", "duckdb"]
    dumped = config.model_dump()
    assert dumped["connections"]["db"]["connect_timeout_s"] == 10.0
    assert dumped["engine"] == {
        "type": "duckdb",
        "memory_limit": None,
        "threads": None,
        "temp_directory": ".headwater/tmp",
    }
    with pytest.raises(ConfigError, match=r"connections.db.type: unknown type 'mysql'"):
        parse_config({"project": "p", "connections": {"db": {"type": "mysql"}}}, tmp_path)


# ---------------------------------------------------------------------- a store of another package
class MemoOnlineStoreConfig(OnlineStoreConfig):
    """``online_store`` of ``type: memo``."""

    type: Literal["memo"] = "memo"
    capacity: int = 10
    """Entities kept."""


class MemoOnlineStore:
    config_model: ClassVar[type[MemoOnlineStoreConfig]] = MemoOnlineStoreConfig

    def __init__(self, store_config: MemoOnlineStoreConfig, project: ProjectConfig) -> None:
        self.config = store_config


class Unconfigured:
    def __init__(self, store_config: Any, project: ProjectConfig) -> None: ...


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ONLINE_STORES, "memo", f"{__name__}:MemoOnlineStore")
    monkeypatch.setitem(ONLINE_STORES, "bare", f"{__name__}:Unconfigured")


def online(tmp_path: Path, section: dict[str, Any]) -> ProjectConfig:
    return parse_config({"project": "p", "online_store": section}, tmp_path)


def test_a_store_is_configured_by_its_own_model(memo: None, tmp_path: Path) -> None:
    config = online(tmp_path, {"type": "memo", "capacity": 3})
    assert config.online_store == MemoOnlineStoreConfig(capacity=3)
    store = open_online_store(config)
    assert isinstance(store, MemoOnlineStore)
    assert store.config is config.online_store


def test_errors_in_a_plugin_section_name_the_path_and_its_models_keys(
    memo: None, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        online(tmp_path, {"type": "memo", "capacty": 3})
    assert (
        "online_store.capacty: unknown key (did you mean 'capacity'?); "
        "valid keys of a memo online_store: type, capacity"
    ) in str(info.value)
    with pytest.raises(ConfigError) as info:
        online(tmp_path, {"type": "memo", "capacity": "many"})
    assert "online_store.capacity: Input should be a valid integer" in str(info.value)
    with pytest.raises(ConfigError) as info:
        online(tmp_path, {"type": "mem"})
    assert "online_store.type: unknown type 'mem', did you mean 'memo'?" in str(info.value)
    assert "(valid: 'sqlite', 'redis', 'memo', 'bare')" in str(info.value)


def test_an_implementation_without_a_config_model_is_named(memo: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        online(tmp_path, {"type": "bare"})
    message = str(info.value)
    assert "the 'bare' implementation of headwater.online_stores" in message
    assert "declares no configuration model derived from" in message
    assert "config_model" in message


# ---------------------------------------------------------------------- a plugin installed for real
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plugin (built from a copy of its sources, so
    the build leaves nothing in the repository)."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, root / "src")
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(target.glob("headwater_ledger-0.1.0.dist-info/entry_points.txt"))
    return target


def headwater(
    project: Path, *args: str, site: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "LEDGER_API_KEY": API_KEY}
    env.pop("HEADWATER_DEBUG", None)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [HEADWATER, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ledger_project(root: Path, connection_type: str = "ledger") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(
        textwrap.dedent(
            f"""
            project: ledger_demo
            connections:
              books:
                type: {connection_type}
                currency: EUR
                api_key: "${{LEDGER_API_KEY}}"
            """
        )
    )
    (root / "features.py").write_text(
        textwrap.dedent(
            """
            from headwater import Count, Entity, FeatureView, Sum, Tumbling
            from headwater_ledger import LedgerSource

            account = Entity("account", join_keys=["account"])
            entries = LedgerSource(
                name="entries",
                connection="books",
                accounts=("a", "b"),
                timestamp_field="booked_at",
            )
            account_daily = FeatureView(
                "account_daily",
                entity=account,
                source=entries,
                window=Tumbling("1d"),
                features=[Sum("amount", name="amount_sum"), Count(name="entries")],
            )
            """
        )
    )
    return root


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    return output


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.slow
def test_a_plugin_connection_and_source_run_end_to_end(site: Path, tmp_path: Path) -> None:
    project = ledger_project(tmp_path / "project")
    succeeded(headwater(project, "apply", site=site))
    succeeded(headwater(project, "run", site=site))
    # The offline store is read here, in a process that has no plugin: no connection needed.
    config = ProjectConfig(project="ledger_demo", root=project)
    table = open_offline_store(config).dataset("account_daily").to_table()
    table = table.drop_columns(["_seq", "event_date"])
    end = datetime(2024, 1, 2, tzinfo=UTC)
    assert sorted_rows(table) == [
        {"account": "a", "amount_sum": 33.0, "entries": 3, "event_timestamp": end},
        {"account": "b", "amount_sum": 63.0, "entries": 3, "event_timestamp": end},
    ]


@pytest.mark.slow
def test_a_misspelt_type_lists_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    project = ledger_project(tmp_path / "project", connection_type="ledgr")
    line = one_error_line(headwater(project, "apply", site=site))
    assert "connections.books.type: unknown type 'ledgr', did you mean 'ledger'?" in line
    assert "(valid: 'postgres', 'kafka', 'redshift', 'ledger')" in line
    assert API_KEY not in line
    # Without the plugin installed, the list holds the built-ins only.
    line = one_error_line(headwater(project, "apply"))
    assert "connections.books.type: unknown type 'ledgr'" in line
    assert "(valid: 'postgres', 'kafka', 'redshift')" in line
