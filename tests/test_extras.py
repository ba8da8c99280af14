"""Optional drivers: a missing one is one line naming the extra that installs it, and the extras
of ``pyproject.toml``, the error messages and the docs agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from headwater.errors import OPTIONAL_MODULES
from headwater.plugins import BUILTINS, load_plugin

ROOT = Path(__file__).resolve().parents[1]
HIDE = ROOT / "tests" / "resources" / "hide_modules"
EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]
META_EXTRAS = {"all", "dev"}
# Modules that come with another distribution of their extra.
TRANSITIVE = {"adbc_driver_manager": "adbc-driver-postgresql", "botocore": "boto3"}


def run(
    code: str, cwd: Path, hide: str, *args: str, module: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "headwater", *args] if module else [sys.executable, "-c", code]
    return subprocess.run(
        command,
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{HIDE}:{ROOT}",
            "HEADWATER_TEST_HIDE": hide,
            "HEADWATER_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _project(root: Path, config: str, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text("project: p\n" + config)
    (root / "features.py").write_text(
        "from headwater import *\n"
        'user = Entity("user", join_keys=["user_id"])\n'
        f"src = {source}\n"
        'v = FeatureView("v", entity=user, source=src, features={"a": "x"})\n'
    )
    return root


PG = 'connections:\n  db: {type: postgres, dsn: "postgresql://postgres@127.0.0.1:1/x"}\n'
PG_SOURCE = 'PostgresSource("o", connection="db", table="public.t", timestamp_field="ts")'
KAFKA = "connections:\n  bus: {type: kafka, bootstrap_servers: '127.0.0.1:1'}\n"
KAFKA_SOURCE = 'KafkaSource("k", connection="bus", topic="t", timestamp_field="ts")'
FILE_SOURCE = 'FileSource("f", path="data/f.parquet", timestamp_field="ts")'


@pytest.mark.parametrize(
    ("hide", "config", "source", "command", "extra"),
    [
        ("psycopg_pool", PG, PG_SOURCE, "apply", "postgres"),
        ("psycopg", PG, PG_SOURCE, "apply", "postgres"),
        ("adbc_driver_postgresql", PG, PG_SOURCE, "apply", "postgres"),
        ("confluent_kafka", KAFKA, KAFKA_SOURCE, "apply", "kafka"),
        ("redis", "online_store: {type: redis, url: 'redis://127.0.0.1:1'}\n", FILE_SOURCE,
         "get v:a --entity user_id=1", "redis"),
        ("psycopg", "registry: {type: postgres, dsn: 'postgresql://postgres@127.0.0.1:1/x'}\n",
         FILE_SOURCE, "status", "postgres"),
    ],
)  # fmt: skip
def test_a_missing_driver_names_its_extra(
    tmp_path: Path, hide: str, config: str, source: str, command: str, extra: str
) -> None:
    root = _project(tmp_path, config, source)
    if command.startswith("get"):  # a project that applies and runs; the driver is needed later
        import pyarrow as pa
        import pyarrow.parquet as pq

        (root / "data").mkdir()
        pq.write_table(
            pa.table({"user_id": [1], "x": [2.0], "ts": [0]}), root / "data" / "f.parquet"
        )
        for step in ("apply", "run"):
            assert run("", tmp_path, "", step, "--repo", str(root), module=True).returncode == 0
    result = run("", tmp_path, hide, *command.split(), "--repo", str(root), module=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert result.stderr.strip().splitlines() == [
        f"error: the optional package {hide!r} is not installed — fix: pip install "
        f"'headwater[{extra}]'"
    ]


def test_the_sdk_raises_missing_dependency(tmp_path: Path) -> None:
    root = _project(tmp_path, PG, PG_SOURCE)
    code = (
        "from headwater import FeatureStore\n"
        "from headwater.errors import MissingDependency\n"
        "try:\n"
        f"    FeatureStore({str(root)!r}).apply()\n"
        "except MissingDependency as exc:\n"
        "    print(exc.package, exc.extra)\n"
    )
    result = run(code, tmp_path, "psycopg_pool")
    assert result.stdout.strip() == "psycopg_pool postgres", result.stderr


def test_to_pandas_without_pandas_says_so(tmp_path: Path) -> None:
    code = (
        "import pyarrow as pa\n"
        "from headwater.engines.retrieval import RetrievalJob\n"
        "from headwater.errors import HeadwaterError\n"
        "job = RetrievalJob(pa.table({'a': [1]}))\n"
        "print(job.to_arrow().num_rows)\n"
        "try:\n"
        "    job.to_pandas()\n"
        "except HeadwaterError as exc:\n"
        "    print(exc)\n"
    )
    result = run(code, tmp_path, "pandas")
    assert result.stdout.splitlines() == [
        "1",
        "to_pandas() needs pandas, which is not installed — fix: pip install pandas, or use "
        ".to_arrow()",
    ], result.stderr


# ---------------------------------------------------------------------- consistency
def _distributions(extra: str) -> set[str]:
    names = set()
    for requirement in EXTRAS[extra]:
        found = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert found, requirement
        names.add(found.group(0).lower().replace("_", "-"))
    return names


def test_every_extra_named_by_an_error_exists_and_installs_the_module() -> None:
    for module, extra in OPTIONAL_MODULES.items():
        assert extra in EXTRAS, f"{module}: extra {extra!r} is not in pyproject.toml"
        wanted = TRANSITIVE.get(module, module.replace("_", "-"))
        assert wanted in _distributions(extra), (module, extra, EXTRAS[extra])


def test_every_extra_is_used() -> None:
    named = set(OPTIONAL_MODULES.values())
    for group in BUILTINS.values():
        for name in group:
            found = load_plugin_or_none(group, name)
            if found is not None and getattr(found, "EXTRA", None):
                named.add(found.EXTRA)
    unused = set(EXTRAS) - META_EXTRAS - named
    assert not unused, f"extras nothing uses (drop them until something does): {unused}"
    assert "airflow" not in EXTRAS
    members = re.findall(r"headwater\[([a-z,0-9]+)\]", " ".join(EXTRAS["all"]))
    assert set(",".join(members).split(",")) <= set(EXTRAS) - META_EXTRAS


def load_plugin_or_none(group: dict[str, str], name: str) -> object | None:
    for group_name, table in BUILTINS.items():
        if table is group:
            return load_plugin(group_name, name)
    return None


def test_the_docs_give_the_install_line_of_every_extra() -> None:
    text = (ROOT / "docs" / "production.md").read_text()
    for extra in set(EXTRAS) - META_EXTRAS:
        assert f"pip install 'headwater[{extra}]'" in text, extra
    assert "airflow" not in (ROOT / "docs" / "production.md").read_text().lower()
