"""``headwater run`` at its edges, as a user runs it (real processes): views run independently,
unapplied definitions are refused, one run per view at a time (a lease in the registry), Ctrl-C
and SIGKILL leave the registry right, and piped output is plain lines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from headwater.config import load_config
from headwater.stores.registry import Registry
from tests.cli.test_cli import HEADWATER, fails, ok
from tests.cli.test_cli import environment as base_environment
from tests.helpers import TS, write_parquet

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SLOW = "amount + (SELECT sum(hash(i)) FROM range(100000000000) t(i))"
"""A feature expression that computes for minutes: a run of it is interrupted or killed."""

DEFS = """
from headwater import Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
events = FileSource("events", path="data/events.parquet", timestamp_field="ts")
a_spend = FeatureView("a_spend", entity=user, source=events, features={{"amount": "amount"}})
b_broken = FeatureView(
    "b_broken", entity=user, source=events, features={{"x": "CAST('x' || amount AS INTEGER)"}}
)
c_daily = FeatureView(
    "c_daily", entity=user, source=events, features=[Sum("amount")], window=Tumbling("1d")
)
slow = FeatureView("slow", entity=user, source=events, features={{"x": "{slow}"}})
"""


def environment() -> dict[str, str]:
    """The console script's environment, importing this checkout of headwater."""
    checkout = str(Path(__file__).resolve().parents[2])
    return {**base_environment(), "PYTHONPATH": checkout}


def headwater(*args: str | Path, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *map(str, args)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def project(root: Path, registry: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"project": "t"}
    if registry is not None:
        config["registry"] = registry
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    (root / "defs.py").write_text(textwrap.dedent(DEFS.format(slow=SLOW)).lstrip())
    table = pa.table(
        {
            "user_id": pa.array([1, 2, None, 3], pa.int64()),
            "ts": pa.array([BASE + timedelta(hours=h) for h in range(4)], TS),
            "amount": pa.array([1.0, 2.0, 3.0, 4.0]),
        }
    )
    write_parquet(root, "data/events.parquet", table)
    return root


def registry_of(root: Path) -> Registry:
    return Registry.open(load_config(root))


def runs(root: Path, view: str) -> list[Any]:
    with registry_of(root) as registry:
        return registry.runs(view)


def default_sigint() -> None:
    """In a child before exec: Ctrl-C as a terminal gives it. A job started in the background by
    a shell without job control (as CI may run the tests) inherits SIGINT *ignored*, and an
    ignored signal stays ignored across exec — headwater rightly leaves it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HEADWATER, *map(str, args)],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )


def wait_for_running(root: Path, view: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in runs(root, view) if r.status == "running"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no running run of {view}")


# ---------------------------------------------------------------------- independent views
def test_a_failing_view_does_not_stop_the_others(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    result = headwater("run", "a_spend", "b_broken", "c_daily", "--repo", root)
    line = fails(result)
    assert line.startswith("error: view 'b_broken': run ") and "ConversionException" in line
    lines = result.stdout.splitlines()
    assert [x.split(":")[0] for x in lines[:3]] == ["✓ a_spend", "✗ b_broken", "✓ c_daily"]
    assert "a_spend: 4 rows in, 3 inserted" in lines[0]
    assert "1 quarantined → " in lines[0] and "a_spend__quarantine" in lines[0]
    assert lines[3].startswith("3 views: 2 succeeded, 1 failed (b_broken) in ")
    assert len(lines) == 4
    assert [r.status for r in runs(root, "c_daily")] == ["success"]
    assert [r.status for r in runs(root, "b_broken")] == ["failed"]


def test_two_failing_views_end_in_one_error_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    (root / "data" / "events.parquet").write_bytes(b"not a parquet file")
    result = headwater("run", "a_spend", "c_daily", "--repo", root)
    line = fails(result)
    assert line.startswith("error: 2 of 2 views failed: a_spend, c_daily")
    lines = result.stdout.splitlines()
    assert [x.split(":")[0] for x in lines] == ["✗ a_spend", "✗ c_daily", "2 views"]
    assert lines[-1].startswith("2 views: 0 succeeded, 2 failed (a_spend, c_daily) in ")


def test_materialize_goes_on_past_a_failing_view(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("run", "a_spend", "c_daily", "--apply", "--repo", root))
    # a_spend's offline table is damaged: its materialization fails, c_daily's still runs.
    (damaged,) = (root / "data" / "offline" / "a_spend").rglob("*.parquet")
    damaged.write_bytes(b"not a parquet file")
    result = headwater("materialize", "a_spend", "c_daily", "--repo", root)
    line = fails(result)
    assert line.startswith("error: view 'a_spend': unexpected InvalidInputException: ")
    assert "Parquet magic bytes not found" in line
    lines = result.stdout.splitlines()
    assert [x.split(":")[0] for x in lines] == ["✗ a_spend", "✓ c_daily", "2 views"]
    assert lines[1].startswith("✓ c_daily: 3 entities (")
    assert lines[2].startswith("2 views: 1 succeeded, 1 failed (a_spend) in ")
    assert [r.status for r in runs(root, "c_daily") if r.kind == "materialize"] == ["success"]
    assert [r.status for r in runs(root, "a_spend") if r.kind == "materialize"] == ["failed"]


def test_materialize_of_views_not_served_online_says_so(tmp_path: Path) -> None:
    root = project(tmp_path)
    defs = root / "defs.py"
    text = defs.read_text()
    defs.write_text(text.replace('{"amount": "amount"})', '{"amount": "amount"}, online=False)'))
    ok(headwater("run", "a_spend", "--apply", "--repo", root))
    out = ok(headwater("materialize", "a_spend", "--repo", root))
    assert out == "no view to materialize: none of them is served online\n"


# ---------------------------------------------------------------------- applied definitions
def test_run_refuses_definitions_never_applied(tmp_path: Path) -> None:
    root = project(tmp_path)
    line = fails(headwater("run", "a_spend", "--repo", root))
    assert "view 'a_spend' was never applied" in line
    assert "headwater apply" in line and "headwater run --apply" in line
    assert runs(root, "a_spend") == []
    out = ok(headwater("run", "a_spend", "--apply", "--repo", root))
    assert "+ feature_view a_spend" in out and "✓ a_spend: 4 rows in" in out


def test_run_refuses_a_definition_changed_since_apply(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    defs = root / "defs.py"
    defs.write_text(defs.read_text().replace('{"amount": "amount"}', '{"amount": "amount * 2"}'))
    line = fails(headwater("run", "a_spend", "--repo", root))
    assert "view 'a_spend' changed since it was last applied (its definition)" in line
    # An apply that fails records nothing: the run is still refused.
    defs.write_text(defs.read_text().replace('"amount * 2"', '"no_such_column"'))
    fails(headwater("apply", "--repo", root))
    line = fails(headwater("run", "a_spend", "--repo", root))
    assert "changed since it was last applied" in line
    assert [r.status for r in runs(root, "a_spend")] == []
    # run --apply shows apply's field-level report, then builds the new table version.
    defs.write_text(defs.read_text().replace('"no_such_column"', '"amount * 3"'))
    out = ok(headwater("run", "a_spend", "--apply", "--repo", root))
    assert "~ feature_view a_spend" in out and "→" in out and "[rows]" in out, out
    assert "✓ a_spend: 4 rows in" in out


# ---------------------------------------------------------------------- one run per view
HOLDER = """
import sys, time
from headwater.config import load_config
from headwater.orchestration.runs import RecordedRun
from headwater.stores.registry import Registry

with Registry.open(load_config(sys.argv[1])) as registry:
    with RecordedRun(registry, "a_spend", "run"):
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
"""


def hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(seconds)],
        env=environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_config(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    if request.param == "sqlite":
        return None
    return {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn")}


def test_a_second_run_of_a_view_exits_naming_the_holder(
    tmp_path: Path, registry_config: dict[str, Any] | None
) -> None:
    root = project(tmp_path, registry_config)
    ok(headwater("apply", "--repo", root))
    holder = hold(root, 60)
    try:
        result = headwater("run", "a_spend", "--repo", root)
        line = fails(result)
        assert "view 'a_spend' is busy: run " in line
        assert f"by {socket.gethostname()}:{holder.pid}, started at " in line
        assert "--wait SECONDS" in line
        assert "✗ a_spend: view 'a_spend' is busy" in result.stdout
    finally:
        holder.kill()
        holder.communicate()
    # The holder died without finishing: its hold ends with it, and its run is aborted.
    out = ok(headwater("run", "a_spend", "--repo", root))
    assert "✓ a_spend" in out
    statuses = sorted(r.status for r in runs(root, "a_spend"))
    assert statuses == ["aborted", "success"]


def test_wait_waits_for_the_holder(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    holder = hold(root, 2)
    began = time.monotonic()
    out = ok(headwater("run", "a_spend", "--wait", "30", "--repo", root))
    assert "✓ a_spend" in out
    assert time.monotonic() - began > 1
    holder.communicate()
    assert sorted(r.status for r in runs(root, "a_spend")) == ["success", "success"]


def test_two_concurrent_runs_of_one_view(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    first = start("run", "slow", "--repo", root)
    try:
        wait_for_running(root, "slow")
        line = fails(headwater("run", "slow", "--repo", root))
        assert "view 'slow' is busy: run " in line and f":{first.pid}, started at" in line
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130


# ---------------------------------------------------------------------- interrupts
def test_ctrl_c_during_a_duckdb_query_is_recorded_interrupted(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    process = start("run", "a_spend", "slow", "--repo", root)
    wait_for_running(root, "slow")
    time.sleep(0.5)  # inside the query
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err == "interrupted\n"
    assert "✓ a_spend" in out
    (record,) = runs(root, "slow")
    assert record.status == "interrupted"
    assert record.error == "interrupted (KeyboardInterrupt)"


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0])
def test_ctrl_c_at_start_up_is_one_line(tmp_path: Path, delay: float) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    process = start("run", "slow", "--repo", root)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert err == "interrupted\n"
    assert "Traceback" not in out
    assert all(r.status != "running" for r in runs(root, "slow"))


def test_a_killed_run_shows_aborted_in_status(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    process = start("run", "slow", "--repo", root)
    wait_for_running(root, "slow")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    out = ok(headwater("status", "--repo", root))
    assert "aborted" in out
    (record,) = runs(root, "slow")
    assert record.status == "aborted"
    assert f"its process ({socket.gethostname()}:{process.pid}:" in (record.error or "")


# ---------------------------------------------------------------------- output
def test_piped_output_is_plain_lines(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    result = headwater("run", "a_spend", "c_daily", "--repo", root)
    out = ok(result)
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text and "\r" not in text
    assert out.splitlines()[0].startswith("✓ a_spend: 4 rows in, 3 inserted, 0 updated")
    assert out.splitlines()[-1].startswith("2 views succeeded in ")
    assert result.stderr == ""


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_a_terminal_shows_the_step_under_way(tmp_path: Path) -> None:
    import pty

    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a terminal
        default_sigint()
        env = {**environment(), "TERM": "xterm"}
        os.execve(HEADWATER, [HEADWATER, "run", "slow", "--repo", str(root)], env)
    seen = b""
    deadline = time.monotonic() + 30
    while b"slow" not in seen.split(b"running", 1)[-1] and time.monotonic() < deadline:
        seen += os.read(fd, 4096)
    os.kill(pid, signal.SIGINT)
    try:
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:  # the terminal closed
        pass
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130
    text = seen.decode(errors="replace")
    assert "computing slow" in text or "running slow" in text
    assert "interrupted" in text and "Traceback" not in text


def in_terminal(*args: str | Path, timeout: float = 120) -> tuple[int, str]:
    """Run the command on a pseudo-terminal: its exit status and everything it showed."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a terminal
        default_sigint()
        env = {**environment(), "TERM": "xterm"}
        os.execve(HEADWATER, [HEADWATER, *map(str, args)], env)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:  # the terminal closed
        pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_quickstart_shows_progress_on_a_terminal_and_plain_lines_when_piped(
    tmp_path: Path,
) -> None:
    code, text = in_terminal("quickstart", tmp_path / "tty", "--users", "50", "--days", "2")
    assert code == 0, text
    assert "running user_orders_daily" in text  # the spinner of a view's run
    assert "\x1b[" in text  # drawn and cleared with control sequences
    result = headwater("quickstart", tmp_path / "piped", "--users", "50", "--days", "2")
    out = ok(result)
    assert "\x1b" not in out + result.stderr and "\r" not in out + result.stderr
    assert "running user_orders_daily" not in out
    assert "  ran user_orders_daily: " in out


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_history_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("run", "a_spend", "--apply", "--repo", root))
    entities = tmp_path / "entities.csv"
    entities.write_text("user_id,event_timestamp\n1,2024-01-02T00:00:00Z\n")
    args = ["history", "--entities", entities, "-f", "a_spend:amount", "--repo", root]
    code, text = in_terminal(*args, "--output", tmp_path / "t.parquet")
    assert code == 0, text
    assert "joining 1 entity rows with 1 features" in text
    assert "wrote 1 rows to" in text
    result = headwater(*args, "--output", tmp_path / "u.parquet")
    assert ok(result) == f"wrote 1 rows to {tmp_path / 'u.parquet'}\n"
    assert result.stderr == ""


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_a_terminal_shows_how_far_a_file_read_has_come(tmp_path: Path) -> None:
    import re

    import duckdb

    root = project(tmp_path)
    # A file source large enough to take about a second: read inside DuckDB queries.
    duckdb.sql(
        "COPY (SELECT i % 1000 AS user_id, TIMESTAMPTZ '2024-01-01 00:00:00+00' "
        "+ to_seconds(i % 8640000) AS ts, (i % 97)::DOUBLE AS amount "
        f"FROM range(8000000) t(i)) TO '{root / 'data' / 'events.parquet'}' (FORMAT parquet)"
    )
    ok(headwater("apply", "--repo", root))
    code, text = in_terminal("run", "c_daily", "--repo", root)
    assert code == 0, text
    shown = re.findall(r"(reading events|computing c_daily|writing c_daily) · (\d+)%", text)
    assert shown, text
    assert all(0 <= int(percent) <= 100 for _, percent in shown), shown
    assert "c_daily: 8000000 rows in, " in text
    # Piped: the same run prints its lines only.
    result = headwater("run", "c_daily", "--full-refresh", "--repo", root)
    assert "%" not in ok(result) + result.stderr
