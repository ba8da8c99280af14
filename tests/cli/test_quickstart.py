"""``headwater quickstart`` at its edges: the user's PostgreSQL tables, the project's name, a
failed run's leftovers and bad flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import fails, headwater, ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script imports headwater from this checkout (not another editable one)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_postgres_demo_never_touches_user_tables(tmp_path: Path, pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO public.orders VALUES (1, 'a real order')")
    demo = tmp_path / "shop"
    text = ok(
        headwater(
            "quickstart", demo, "--users", "40", "--days", "2", "--postgres", pg_dsn, timeout=180
        )
    )
    assert "headwater_demo_shop" in text
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT id, note FROM public.orders").fetchall() == [
            (1, "a real order")
        ]
        assert conn.execute("SELECT count(*) FROM headwater_demo_shop.orders").fetchone()[0] > 0
    assert "headwater_demo_shop.orders" in (demo / "shop.py").read_text()

    # A second demo of the same name would replace the schema: refused unless --force.
    again = tmp_path / "other" / "shop"
    line = fails(
        headwater("quickstart", again, "--users", "40", "--days", "2", "--postgres", pg_dsn)
    )
    assert "schema headwater_demo_shop already exists" in line
    assert "--force" in line
    assert not again.exists()
    ok(
        headwater(
            "quickstart",
            again,
            "--users",
            "40",
            "--days",
            "2",
            "--postgres",
            pg_dsn,
            "--force",
            timeout=180,
        )
    )
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM public.orders").fetchone()[0] == 1


def test_project_named_after_folder(tmp_path: Path) -> None:
    demo = tmp_path / "my shop.2"
    ok(headwater("quickstart", demo, "--users", "30", "--days", "1", timeout=180))
    assert (demo / "headwater.yaml").read_text().splitlines()[0] == "project: my_shop_2"


def test_failed_quickstart_leaves_nothing_behind(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    # Nothing listens on port 1: the run fails after the folder was started.
    line = fails(
        headwater(
            "quickstart",
            demo,
            "--users",
            "30",
            "--days",
            "1",
            "--postgres",
            "postgresql://postgres@127.0.0.1:1/postgres",
        )
    )
    assert "cannot connect to PostgreSQL" in line
    assert not demo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(
        headwater(
            "quickstart",
            empty,
            "--users",
            "30",
            "--days",
            "1",
            "--postgres",
            "postgresql://postgres@127.0.0.1:1/postgres",
        )
    )
    assert empty.exists() and not any(empty.iterdir())
    # The rerun is not blocked.
    ok(headwater("quickstart", demo, "--users", "30", "--days", "1", timeout=180))
    assert (demo / "data" / "training_set.parquet").exists()


@pytest.mark.parametrize(("flag", "value"), [("--days", "-1"), ("--users", "0")])
def test_bad_sizes(tmp_path: Path, flag: str, value: str) -> None:
    line = fails(headwater("quickstart", tmp_path / "demo", flag, value))
    assert f"{flag} {value}: must be at least 1" in line
    assert not (tmp_path / "demo").exists()
