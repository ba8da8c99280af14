"""Reading commands at 80 columns, piped and on a terminal: no value is ever cut; every one
takes --json; views, describe, runs and quarantine; a global --repo; completion; metavars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import headwater as package
from headwater.cli.main import app
from tests.helpers import TS, write_project

VIEW = "user_orders_lifetime_totals"
AMOUNT = 925_123_456.789012
DEFS = f"""
from headwater import Entity, FeatureView, FileSource, checks

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders_landing_zone", path="data/orders.parquet", timestamp_field="ts",
                    checks=[checks.between("amount", 0, {{limit}}, severity="quarantine")])
{VIEW} = FeatureView("{VIEW}", entity=user, source=orders,
                     features={{{{"amount_paid_in_cents": "amount"}}}})
"""
TERMINAL = {"TTY_COMPATIBLE": "1", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with one long-named view, applied and run: a row with a long number, and a
    row its check set aside (amount above the limit)."""
    root = tmp_path_factory.mktemp("reading")
    ts = pa.array([datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)], TS)
    data = pa.table({"user_id": [1, 2], "ts": ts, "amount": [AMOUNT, 2e12]})
    write_project(root, DEFS.format(limit=10**12), data={"data/orders.parquet": data})
    for command in ("apply", "run", "materialize"):
        code, output = headwater(command, "--repo", root)
        assert code == 0, output
    return root


def headwater(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})})
    return result.exit_code, result.output


def ok(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """Standard output of a command that succeeded (logs go to standard error)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})})
    assert result.exit_code == 0, result.output
    return result.stdout


def run_id(repo: Path) -> str:
    runs = json.loads(ok("runs", "--repo", repo, "--json", "--view", VIEW))
    return str(next(r["run_id"] for r in runs if r["kind"] == "run"))


# ---------------------------------------------------------------------- never cut a value
@pytest.mark.parametrize("env", [{}, TERMINAL], ids=["piped", "terminal"])
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["views"],
        ["describe", VIEW],
        ["runs"],
        ["quarantine", VIEW],
        ["quality"],
        ["get", f"{VIEW}:amount_paid_in_cents", "-e", "user_id=1"],
    ],
)
def test_values_appear_whole_at_80_columns(
    repo: Path, command: list[str], env: dict[str, str]
) -> None:
    output = ok(*command, "--repo", repo, env=env)
    assert "…" not in output
    wanted = {
        "status": [VIEW, "orders_landing_zone", "1 rows set aside"],
        "views": [VIEW, "orders_landing_zone", "amount_paid_in_cents"],
        "describe": [VIEW, "orders_landing_zone", "amount_paid_in_cents", "double"],
        "runs": [VIEW, run_id(repo)],
        "quarantine": ["2000000000000.0", "between(amount)", run_id(repo)],
        "quality": [VIEW, "between(amount)", run_id(repo)],
        "get": ["amount_paid_in_cents", "925123456.789012"],
    }[command[0]]
    for value in wanted:
        assert value in output, output


def test_piped_output_is_tsv(repo: Path) -> None:
    lines = ok("runs", "--repo", repo, "--view", VIEW).splitlines()
    assert lines[0].split("\t") == [
        "run", "view", "kind", "state", "in", "out", "started", "duration"
    ]  # fmt: skip
    assert [run_id(repo), VIEW, "run", "success"] in [line.split("\t")[:4] for line in lines]


def test_a_subprocess_piped_at_80_columns_shows_whole_values(repo: Path) -> None:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(Path(package.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "headwater.cli.main", "status", "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    row = next(line for line in result.stdout.splitlines() if line.startswith(VIEW))
    assert row.split("\t")[:4] == [VIEW, "projection", "user", "orders_landing_zone"]


# ---------------------------------------------------------------------- --json everywhere
def test_every_reading_command_prints_json(repo: Path) -> None:
    status = json.loads(ok("status", "--repo", repo, "--json"))
    assert status["views"][0]["view"] == VIEW
    assert status["views"][0]["last_run"]["status"] == "success"
    views = json.loads(ok("views", "--repo", repo, "--json"))
    assert [(v["name"], v["version"]) for v in views] == [(VIEW, 1)]
    described = json.loads(ok("describe", VIEW, "--repo", repo, "--json"))
    assert described["spec"]["features"] == {"amount_paid_in_cents": "amount"}
    assert {"name": "amount_paid_in_cents", "type": "double"} in described["columns"]
    runs = json.loads(ok("runs", "--repo", repo, "--json"))
    assert {(r["view"], r["kind"], r["status"]) for r in runs} == {
        (VIEW, "run", "success"),
        (VIEW, "materialize", "success"),
    }
    assert json.loads(ok("runs", "--repo", repo, "--json", "--limit", "1"))[0] == runs[0]
    quarantined = json.loads(ok("quarantine", VIEW, "--repo", repo, "--json"))
    assert [(r["amount"], r["_check"]) for r in quarantined["rows"]] == [(2e12, "between(amount)")]
    quality = json.loads(ok("quality", "--repo", repo, "--json"))
    assert [(r["check"], r["rows_failed"]) for r in quality] == [("between(amount)", 1)]
    checked = json.loads(ok("check", "--repo", repo, "--json"))
    assert checked[0]["view"] == VIEW and checked[0]["results"][0]["action"] == "quarantined"
    got = json.loads(ok("get", f"{VIEW}:amount_paid_in_cents", "-e", "user_id=1", "--repo",
                        repo, "--json"))  # fmt: skip
    assert got == {"user_id": [1], "amount_paid_in_cents": [AMOUNT]}


# ---------------------------------------------------------------------- the commands
def test_quarantine_replay_pushes_rows_back_through_the_checks(tmp_path: Path, repo: Path) -> None:
    ts = pa.array([datetime(2024, 1, 2, tzinfo=UTC)], TS)
    data = pa.table({"user_id": [2], "ts": ts, "amount": [2e12]})
    root = write_project(tmp_path, DEFS.format(limit=10), data={"data/orders.parquet": data})
    ok("apply", "--repo", root)
    assert "1 quarantined" in " ".join(ok("run", "--repo", root).split())
    (root / "defs.py").write_text(DEFS.format(limit=10**13))  # the limit was wrong
    ok("apply", "--repo", root)
    output = ok("quarantine", VIEW, "--repo", root, "--replay")
    assert f"{VIEW}: replayed 1 rows in, 1 inserted" in output, output
    assert "0 set aside again" in output
    got = json.loads(ok("get", f"{VIEW}:amount_paid_in_cents", "-e", "user_id=2", "--repo",
                        root, "--json"))  # fmt: skip
    assert got["amount_paid_in_cents"] == [None]  # not materialized yet
    ok("materialize", "--repo", root)
    got = json.loads(ok("get", f"{VIEW}:amount_paid_in_cents", "-e", "user_id=2", "--repo",
                        root, "--json"))  # fmt: skip
    assert got["amount_paid_in_cents"] == [2e12]


def test_an_unknown_view_is_one_line(repo: Path) -> None:
    for command in (["describe", "nope"], ["quarantine", "nope"], ["runs", "--view", "nope"]):
        code, output = headwater(*command, "--repo", repo)
        assert code == 1, output
        assert output.startswith("error: ") and "nope" in output
        assert len(output.strip().splitlines()) == 1, output


def test_repo_before_the_command(repo: Path) -> None:
    assert VIEW in ok("--repo", repo, "status")
    assert VIEW in ok("-r", repo, "views", "--json")
    code, output = headwater("--repo", repo / "nowhere", "status", "--repo", repo)
    assert code == 0 and VIEW in output, output  # the command's own --repo wins


def test_completion_is_offered() -> None:
    output = ok("--help")
    assert "--install-completion" in output and "--show-completion" in output


@pytest.mark.parametrize(
    ("command", "metavars"),
    [
        (["get"], ["VIEW:FEATURE", "KEY=VALUE", "DIR"]),
        (["history"], ["PATH", "VIEW:FEATURE"]),
        (["quarantine"], ["VIEW", "N"]),
        (["runs"], ["VIEW", "N"]),
        (["serve"], ["HOST", "PORT", "VAR"]),
        (["quickstart"], ["DIR", "DSN", "N"]),
    ],
)
def test_help_shows_conventional_metavars(command: list[str], metavars: list[str]) -> None:
    output = ok(*command, "--help", env={"COLUMNS": "200"})
    for metavar in metavars:
        assert metavar in output, output
    options = [line for line in output.splitlines() if " --" in line]
    assert not [line for line in options if any(t in line for t in ("<str>", "<int>", "<path>"))]
    assert "TEXT" not in output
