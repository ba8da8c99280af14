"""File sources whose files disagree or hold no rows: one line naming the file, the column and
the fix, through `headwater apply` and `headwater run`; an empty source is a run of 0 rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from headwater.cli.main import app
from tests.helpers import TS, write_parquet, write_project

DEFS = """
from headwater import Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="{path}", timestamp_field="ts"{extra})
spend = FeatureView("spend", entity=user, source=orders, features=[Sum("amount")],
                    window=Tumbling("1d"))
"""
CSV_HEADER = "user_id,ts,amount\n"


def project(root: Path, path: str, extra: str = "") -> Path:
    return write_project(root, DEFS.format(path=path, extra=extra))


def headwater(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})
    return result.exit_code, result.output


def error_line(code: int, output: str) -> str:
    """The one ``error:`` line of a failed command (a run also prints its views' ✗ lines and a
    summary before it), with no traceback."""
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def orders(amount: pa.Array) -> pa.Table:
    ts = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * len(amount), TS)
    return pa.table({"user_id": list(range(1, len(amount) + 1)), "ts": ts, "amount": amount})


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    write_parquet(tmp_path, "data/a.parquet", orders(pa.array([1.0, 2.0])))
    write_parquet(tmp_path, "data/b.parquet", orders(pa.array(["3", "4.5"])))
    return tmp_path


def test_mixed_column_types_name_both_files_and_the_fix(mixed: Path) -> None:
    project(mixed, "data/*.parquet")
    line = error_line(*headwater("apply", "--repo", mixed))
    assert "column 'amount' is DOUBLE in data/a.parquet but VARCHAR in data/b.parquet" in line
    assert "columns={'amount': 'DOUBLE'}" in line
    # A file of another type that arrives after apply is named by the run the same way.
    b = mixed / "data" / "b.parquet"
    b.rename(mixed / "b.parquet.later")
    assert headwater("apply", "--repo", mixed)[0] == 0
    (mixed / "b.parquet.later").rename(b)
    line = error_line(*headwater("run", "--repo", mixed))
    assert "column 'amount' is DOUBLE in data/a.parquet but VARCHAR in data/b.parquet" in line
    assert "columns={'amount': 'DOUBLE'}" in line


def test_declared_column_types_read_every_file_as_one_type(mixed: Path) -> None:
    project(mixed, "data/*.parquet", extra=', columns={"amount": "DOUBLE"}')
    code, output = headwater("apply", "--repo", mixed)
    assert code == 0, output
    code, output = headwater("run", "--repo", mixed)
    assert code == 0, output
    assert "4 rows in, 2 inserted" in output  # 2 users, 1 day


def test_a_ragged_csv_names_the_line_and_null_padding(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o.csv").write_text(
        CSV_HEADER + "1,2024-01-01 00:00:00,1.5\n2,2024-01-01 00:00:00,2.5,x\n3,2024-01-01\n"
    )
    project(tmp_path, "data/o.csv")
    line = error_line(*headwater("apply", "--repo", tmp_path))
    assert "data/o.csv was read as one column 'user_id,ts,amount'" in line
    assert "line 3 has 4 fields, the header 3" in line
    assert "options={'null_padding': True}" in line
    project(tmp_path, "data/o.csv", extra=', options={"null_padding": True}')
    assert headwater("apply", "--repo", tmp_path)[0] == 0
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0 and "3 rows in" in output, output


def test_a_header_only_csv_needs_its_types_then_runs_0_rows(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o.csv").write_text(CSV_HEADER)
    project(tmp_path, "data/o.csv")
    line = error_line(*headwater("apply", "--repo", tmp_path))
    assert "data/o.csv has a header and no rows" in line and "'amount'" in line
    assert "columns={" in line
    typed = ', columns={"user_id": "BIGINT", "ts": "TIMESTAMPTZ", "amount": "DOUBLE"}'
    project(tmp_path, "data/o.csv", extra=typed)
    code, output = headwater("apply", "--repo", tmp_path)
    assert code == 0, output
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0, output
    assert "spend: 0 rows in, 0 inserted" in output


def test_a_source_that_became_empty_is_a_run_of_0_rows(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "o.csv"
    csv.write_text(CSV_HEADER + "1,2024-01-01 00:00:00,1.5\n")
    project(tmp_path, "data/*.csv")
    assert headwater("apply", "--repo", tmp_path)[0] == 0
    csv.write_text(CSV_HEADER)  # today's drop: a header, no rows
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0, output
    assert "spend: 0 rows in" in output
    csv.unlink()  # and then no file at all
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0, output
    assert "spend: 0 rows in" in output


def test_empty_files_are_left_out_of_a_glob(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text(CSV_HEADER + "1,2024-01-01 00:00:00,1.5\n")
    (tmp_path / "data" / "b.csv").write_text(CSV_HEADER)
    project(tmp_path, "data/*.csv")
    assert headwater("apply", "--repo", tmp_path)[0] == 0
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0, output
    assert "spend: 1 rows in, 1 inserted" in output


def test_a_type_changed_since_apply_names_the_file(tmp_path: Path) -> None:
    defs = """
    from headwater import Entity, FeatureView, FileSource

    user = Entity("user", join_keys=["user_id"])
    orders = FileSource("orders", path="data/*.parquet", timestamp_field="ts")
    spend = FeatureView("spend", entity=user, source=orders, features={"amount": "amount"})
    """
    write_parquet(tmp_path, "data/a.parquet", orders(pa.array([1.0, 2.0])))
    write_project(tmp_path, defs)
    assert headwater("apply", "--repo", tmp_path)[0] == 0
    assert headwater("run", "--repo", tmp_path)[0] == 0
    write_parquet(tmp_path, "data/a.parquet", orders(pa.array(["x", "3"])))  # was a Delta error
    line = error_line(*headwater("run", "--repo", tmp_path))
    assert "column 'amount' was double at apply, but data/a.parquet has 'x'" in line
    assert "repair the file" in line
    write_parquet(tmp_path, "data/a.parquet", orders(pa.array([4.0, 3.0])))  # repaired
    code, output = headwater("run", "--repo", tmp_path)
    assert code == 0, output


def test_declared_column_types_are_type_names_only() -> None:
    from headwater import FileSource
    from headwater.errors import DefinitionError

    FileSource("ok", path="x.csv", timestamp_field="ts", columns={"a": "DECIMAL(10, 2)"})
    with pytest.raises(DefinitionError, match=r"columns\['a'\] = 'DOUBLE\) AS a; COPY"):
        FileSource("bad", path="x.csv", timestamp_field="ts", columns={"a": "DOUBLE) AS a; COPY"})
