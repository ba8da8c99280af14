"""The one table of type names: checks (``type``, ``schema``) and transforms (``cast``) read a
type the same way, every alias names a DuckDB type, and Arrow's names mean what DuckDB reads an
Arrow column of that type as."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

from headwater import checks, transforms
from headwater.definitions.types import TYPE_ALIASES, normalise_type
from headwater.errors import DefinitionError

ARROW_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    # pa.float32() prints as `float`, which is Python's float here: see test_float_is_pythons_float
    pa.float64(),
    pa.string(),
    pa.large_string(),
    pa.bool_(),
    pa.binary(),
    pa.large_binary(),
    pa.date32(),
    pa.date64(),
    pa.timestamp("s"),
    pa.timestamp("ms"),
    pa.timestamp("us"),
    pa.timestamp("ns"),
    pa.timestamp("s", tz="UTC"),
    pa.timestamp("ms", tz="UTC"),
    pa.timestamp("us", tz="UTC"),
]
"""Arrow types whose printed name (``str(pa.int64())`` is ``int64``) names their DuckDB type."""


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def duckdb_type(con: duckdb.DuckDBPyConnection, type_name: str) -> str:
    return str(con.execute(f"SELECT typeof(CAST(NULL AS {type_name}))").fetchall()[0][0])


def read_by_checks_and_transforms(type_name: str) -> set[str]:
    return {
        checks.type("c", type_name).type_name,
        checks.schema({"c": type_name}).types[0][1],
        transforms.cast("c", type_name).types[0][1],
        transforms.cast({"c": type_name}).types[0][1],
    }


@pytest.mark.parametrize(("alias", "target"), sorted(TYPE_ALIASES.items()))
def test_every_alias_names_a_duckdb_type(
    con: duckdb.DuckDBPyConnection, alias: str, target: str
) -> None:
    assert alias == "".join(alias.lower().split())  # how the table is looked up
    duckdb_type(con, target)  # raises for a type DuckDB does not know
    if target != "FLOAT":  # FLOAT reads as Python's float: see the test below
        assert normalise_type(target, "t") == target  # a stored type reads back as itself


def test_float_is_pythons_float() -> None:
    # Aliases are matched ignoring case, so the one DuckDB name that is also an alias with
    # another meaning is FLOAT (DuckDB: 4 bytes; Python: a double). REAL is DuckDB's 4 bytes.
    clashes = {t for t in TYPE_ALIASES.values() if TYPE_ALIASES.get(t.lower(), t) != t}
    assert clashes == {"FLOAT"}
    assert normalise_type("FLOAT", "t") == "DOUBLE"
    assert normalise_type("float32", "t") == "FLOAT"
    assert normalise_type("REAL", "t") == "REAL"


@pytest.mark.parametrize("alias", sorted(TYPE_ALIASES))
def test_checks_and_transforms_read_every_alias_alike(alias: str) -> None:
    assert read_by_checks_and_transforms(alias) == {TYPE_ALIASES[alias]}
    spelled = alias.upper().replace(",", ", ")  # case and spaces do not matter
    assert read_by_checks_and_transforms(spelled) == {TYPE_ALIASES[alias]}


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("double", "DOUBLE"),
        (" decimal(12, 2) ", "DECIMAL(12, 2)"),
        ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE"),
        ("varchar[]", "VARCHAR[]"),
        ("float", "DOUBLE"),  # Python's float (Arrow's `float` is float32: write float32)
    ],
)
def test_duckdb_names_are_kept_in_upper_case(written: str, stored: str) -> None:
    assert read_by_checks_and_transforms(written) == {stored}


@pytest.mark.parametrize("arrow_type", ARROW_TYPES, ids=str)
def test_arrow_names_mean_what_duckdb_reads_arrow_as(
    con: duckdb.DuckDBPyConnection, arrow_type: pa.DataType
) -> None:
    arrow_rows = pa.table({"c": pa.array([None], arrow_type)})  # noqa: F841  # read below
    read_as = str(con.execute("SELECT typeof(c) FROM arrow_rows").fetchall()[0][0])
    assert read_as == duckdb_type(con, normalise_type(str(arrow_type), "t"))


@pytest.mark.parametrize(
    "bad", ["DOUBLE; DROP TABLE x", "not a type!", "", "timestamp[us, cet]", 3]
)
def test_what_is_not_a_type_name_is_refused_alike(bad: object) -> None:
    with pytest.raises(DefinitionError, match="is not a type name"):
        checks.type("c", bad)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="is not a type name"):
        transforms.cast("c", bad)  # type: ignore[arg-type]
