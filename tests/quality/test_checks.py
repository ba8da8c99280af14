"""Check declarations: the public spelling, every source kind, and clear errors for bad ones."""

from __future__ import annotations

from typing import Any

import pytest

import headwater
from headwater import Count, Entity, FeatureView, FileSource, PostgresSource, SqliteSource, checks
from headwater.definitions import RedshiftSource
from headwater.errors import DefinitionError

USER = Entity("user", join_keys=["user_id"])


def test_the_issue_spelling() -> None:
    rules = [
        checks.not_null("user_id", severity="quarantine"),
        checks.between("amount", 0, 100_000, severity="quarantine"),
        checks.in_set("status", ["new", "paid"], severity="warn", mostly=0.99),
    ]
    source = FileSource("orders", path="o.parquet", timestamp_field="ts", checks=rules)
    view = FeatureView(
        "v", entity=USER, source=source, features=[Count()], checks=[checks.row_count(min=1)]
    )
    assert [c.name for c in source.checks] == [
        "not_null(user_id)",
        "between(amount)",
        "in_set(status)",
    ]
    assert view.checks[0].kind == "row_count"
    assert headwater.checks is checks
    assert source.to_spec()["checks"][2] == {
        "kind": "in_set",
        "name": "in_set(status)",
        "severity": "warn",
        "mostly": 0.99,
        "column": "status",
        "values": ["new", "paid"],
    }
    assert view.to_spec()["checks"] == [
        {"kind": "row_count", "name": "row_count", "severity": "fail", "min": 1, "max": None}
    ]


def test_every_source_kind_takes_checks_and_a_schema_mode() -> None:
    rule = [checks.not_null("id")]
    kinds: list[Any] = [
        FileSource("f", path="x.csv", timestamp_field="ts", checks=rule, schema_mode="freeze"),
        PostgresSource(
            "p", connection="db", table="t", timestamp_field="ts", checks=rule, schema_mode="freeze"
        ),
        SqliteSource(
            "s", path="x.db", table="t", timestamp_field="ts", checks=rule, schema_mode="freeze"
        ),
        # A kind whose constructor does not list them still accepts them.
        RedshiftSource(
            "r", connection="wh", table="t", timestamp_field="ts", checks=rule, schema_mode="freeze"
        ),
    ]
    for source in kinds:
        assert source.checks == tuple(rule)
        assert source.schema_mode == "freeze"
        assert source.to_spec()["schema_mode"] == "freeze"


def test_defaults_leave_specs_unchanged() -> None:
    spec = FileSource("f", path="x.csv", timestamp_field="ts").to_spec()
    assert "checks" not in spec
    assert "schema_mode" not in spec
    view = FeatureView(
        "v",
        entity=USER,
        source=FileSource("f", path="x.csv", timestamp_field="ts"),
        features=[Count()],
    )
    assert "checks" not in view.to_spec()


def test_default_names_and_descriptions() -> None:
    assert checks.unique("a", "b").name == "unique(a,b)"
    assert checks.unique(["a", "b"]).keys == ("a", "b")
    assert checks.matches("email", r"^\S+@\S+$").name == "matches(email)"
    assert checks.max_length("name", 10).describe() == "length(name) <= 10"
    assert checks.type("amount", "float64").type_name == "DOUBLE"
    assert checks.type("amount", "decimal(12, 2)").type_name == "DECIMAL(12, 2)"
    assert checks.expression("amount >= 0").name == "expression(amount >= 0)"
    assert checks.freshness("2h").max_age_ms == 7_200_000
    assert checks.schema({"id": "int64"}).types == (("id", "BIGINT"),)

    @checks.python(severity="warn")
    def positive(batch: Any) -> Any:
        return True

    assert positive.name == "python(positive)"
    assert positive.severity == "warn"
    assert checks.python(positive.function, name="p").name == "p"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: checks.not_null("a", severity="error"), "unknown severity 'error'"),
        (lambda: checks.not_null("a", mostly=0), r"mostly=0 is outside \(0, 1\]"),
        (lambda: checks.not_null("a", mostly=1.5), r"mostly=1.5 is outside \(0, 1\]"),
        (lambda: checks.not_null("a", mostly=float("nan")), r"is outside \(0, 1\]"),
        (lambda: checks.not_null("a", mostly="most"), "is not a number"),
        (lambda: checks.matches("a", "(unclosed"), "does not compile"),
        (lambda: checks.between("a"), "give min_value, max_value or both"),
        (lambda: checks.between("a", 10, 1), "is not <= max_value"),
        (lambda: checks.in_set("a", []), "the set of values is empty"),
        (lambda: checks.in_set("a", "new"), "must be a list"),
        (lambda: checks.max_length("a", -1), "not a non-negative int"),
        (lambda: checks.type("a", "DOUBLE; DROP TABLE x"), "is not a type name"),
        (lambda: checks.row_count(), "give min, max or both"),
        (lambda: checks.row_count(min=5, max=1), "min 5 is above max 1"),
        (lambda: checks.freshness("soon"), "is not a duration"),
        (lambda: checks.sql("SELECT 1", name="s"), "must select from {rows}"),
        (lambda: checks.python(42), "needs a function"),
        (lambda: checks.not_null(""), "needs a column name"),
        (lambda: checks.row_count(min=1, severity="quarantine"), "judges the whole batch"),
        (lambda: checks.Freshness(name="f", max_age_ms=1, mostly=0.5), "mostly= applies to row"),
    ],
)
def test_bad_checks_are_refused_clearly(build: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        build()
    assert info.value.fix


def test_bad_check_lists_are_refused() -> None:
    with pytest.raises(DefinitionError, match="two checks are named 'not_null"):
        FileSource(
            "f",
            path="x.csv",
            timestamp_field="ts",
            checks=[checks.not_null("a"), checks.not_null("a", severity="warn")],
        )
    with pytest.raises(DefinitionError, match="view 'v': 'not_null' is not a check"):
        FeatureView(
            "v",
            entity=USER,
            source=FileSource("f", path="x.csv", timestamp_field="ts"),
            features=[Count()],
            checks=["not_null"],
        )
    with pytest.raises(DefinitionError, match="unknown schema_mode 'strict'"):
        FileSource("f", path="x.csv", timestamp_field="ts", schema_mode="strict")
