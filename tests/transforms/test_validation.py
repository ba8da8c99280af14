"""Bad definitions: refused when the step or view is built, or when the steps meet the
source's columns (at ``apply`` — :func:`headwater.transforms.runtime.validate` — and at every
run), with messages naming the view, the step and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater import Count, Entity, FeatureView, FileSource, KafkaSource, Sum, transforms
from headwater.errors import DefinitionError
from headwater.transforms.runtime import validate
from tests.helpers import TS
from tests.transforms.support import project

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="updated_at")
SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("user_id", pa.int64()),
        ("updated_at", TS),
        ("amount", pa.float64()),
        ("email", pa.string()),
        ("ssn", pa.string()),
    ]
)


def view(steps: list[Any], features: Any = None, **extra: Any) -> FeatureView:
    return FeatureView(
        "v",
        entity=user,
        source=extra.pop("source", orders),
        features=features or {"amount": "amount"},
        transforms=steps,
        **extra,
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: transforms.standardize("a", fit=None), r"needs fit=\(start, end\)"),
        (lambda: transforms.normalize("a", fit=("2024-02-01", "2024-01-01")), "is empty"),
        (lambda: transforms.normalize("a", fit=("soon", "later")), "not a date"),
        (lambda: transforms.clip("a"), "needs a lower or an upper bound"),
        (lambda: transforms.clip("a", 10, 1), "lower 10 is above upper 1"),
        (lambda: transforms.clip("a", 1, "z"), "not comparable"),
        (lambda: transforms.mask("a", keep_last=-1), "keep_last=-1"),
        (lambda: transforms.mask("a", char="**"), "not one character"),
        (lambda: transforms.hash("a", salt_env="not a name"), "not an environment variable"),
        (lambda: transforms.fill_null("a", None), "needs a value"),
        (lambda: transforms.fill_null("a", 0, fit=("2024-01-01", "2024-02-01")), "fit= applies"),
        (lambda: transforms.fill_null("a", "mean", by="k"), "by= and order_by= apply"),
        (lambda: transforms.outliers("a", "mad"), "unknown method 'mad'"),
        (lambda: transforms.outliers("a", action="drop"), "unknown action 'drop'"),
        (lambda: transforms.cast("a", "not a type!"), "is not a type name"),
        (lambda: transforms.cast("a"), "needs a type"),
        (lambda: transforms.rename({"a": "c", "b": "c"}), "one distinct new name"),
        (lambda: transforms.pivot("k", "v", ["x"], agg="median"), "unknown agg 'median'"),
        (lambda: transforms.dedupe([]), "at least one column"),
        (lambda: transforms.drop(""), "is not a column name"),
        (lambda: transforms.python(frame="spark"), "unknown frame 'spark'"),
    ],
)
def test_bad_steps_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        build()


def test_views_refuse_steps_that_remove_what_they_need() -> None:
    with pytest.raises(DefinitionError, match=r"transform 2 \(drop\(updated_at\)\) removes column"):
        view([transforms.fill_null("amount", 0), transforms.drop("updated_at")])
    with pytest.raises(DefinitionError, match="which the view needs as a join key of its entity"):
        view([transforms.rename({"user_id": "uid"})])
    with pytest.raises(DefinitionError, match="as its source's primary_key"):
        view(
            [transforms.pivot("id", "amount", ["a"])],
            source=FileSource(
                "o", path="x.parquet", timestamp_field="updated_at", primary_key="id"
            ),
        )
    clicks = KafkaSource("clicks", connection="events", topic="t", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="the message's place in its topic"):
        view([transforms.drop("kafka_offset")], source=clicks)
    with pytest.raises(DefinitionError, match=r"decorate loose with @transforms\.python"):

        def loose(table: Any) -> Any:
            return table

        view([loose])
    with pytest.raises(DefinitionError, match="transforms must be a list of steps"):
        view("drop ssn")  # type: ignore[arg-type]


def test_specs_record_the_steps_but_no_secret() -> None:
    plain = view([])
    assert "transforms" not in plain.to_spec()  # views without steps keep their spec
    spec = view(
        [
            transforms.hash("email", salt_env="PII_SALT"),
            transforms.standardize("amount", fit=("2024-01-01", "2024-07-01")),
        ]
    ).to_spec()
    assert spec["transforms"] == [
        {"kind": "hash", "column": "email", "salt_env": "PII_SALT"},
        {
            "kind": "standardize",
            "column": "amount",
            "fit": ["2024-01-01T00:00:00Z", "2024-07-01T00:00:00Z"],
        },
    ]


def test_validate_returns_the_columns_the_view_computes_from() -> None:
    found = validate(
        view(
            [
                transforms.rename({"amount": "total"}),
                transforms.cast("total", "DECIMAL(12,2)"),
                transforms.drop("ssn"),
                transforms.unpivot(["email"], name="field", value="text"),
            ],
            features={"total": "total", "text": "text"},
        ),
        SCHEMA,
    )
    assert found.names == ["order_id", "user_id", "updated_at", "total", "field", "text"]
    assert str(found.field("total").type) == "decimal128(12, 2)"


def test_unknown_columns_name_the_view_the_step_and_the_column() -> None:
    with pytest.raises(DefinitionError) as err:
        validate(view([transforms.drop("ssn"), transforms.mask("ssn")]), SCHEMA)
    assert err.value.message.startswith(
        "view 'v': transform 2 (mask(ssn)): column 'ssn' does not exist at this step "
        "(transform 1 (drop(ssn)) removed it)"
    )
    assert err.value.fix
    with pytest.raises(DefinitionError, match=r"transform 1 \(clip\(amout\)\): column 'amout'"):
        validate(view([transforms.clip("amout", 0, 1)]), SCHEMA)
    # The view's own columns: features and aggregations read what the steps leave.
    with pytest.raises(DefinitionError) as err:
        validate(view([transforms.drop("ssn")], features={"s": "upper(ssn)"}), SCHEMA)
    assert err.value.message.startswith(
        "view 'v': feature 's' ('upper(ssn)') reads column 'ssn', which the rows do not have "
        "after the transforms (transform 1 (drop(ssn)) removed it"
    )
    renamed = view(
        [transforms.rename("amount", "total")], features=[Sum("amount"), Count()], window=None
    )
    with pytest.raises(DefinitionError, match="input of aggregation 'amount_sum' reads column"):
        validate(renamed, SCHEMA)


def test_types_and_salts_are_checked_at_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DefinitionError, match="column 'email' is VARCHAR, not a number") as err:
        validate(view([transforms.standardize("email", fit=("2024-01-01", "2024-02-01"))]), SCHEMA)
    assert 'transforms.cast("email", "DOUBLE")' in (err.value.fix or "")
    with pytest.raises(DefinitionError, match="'lots' does not convert to DOUBLE, the type of"):
        validate(view([transforms.fill_null("amount", "lots")]), SCHEMA)
    with pytest.raises(DefinitionError, match=r"transform 1 \(clip\(updated_at\)\): 'noon'"):
        validate(view([transforms.clip("updated_at", "noon")]), SCHEMA)
    with pytest.raises(DefinitionError, match=r"transform 1 \(cast\(email\)\) cannot run"):
        validate(view([transforms.cast("email", "NOSUCHTYPE")]), SCHEMA)
    hashed = view([transforms.hash("email", salt_env="HW_TEST_UNSET_SALT")])
    monkeypatch.delenv("HW_TEST_UNSET_SALT", raising=False)
    with pytest.raises(DefinitionError, match="variable HW_TEST_UNSET_SALT, which is not set"):
        validate(hashed, SCHEMA)
    monkeypatch.setenv("HW_TEST_UNSET_SALT", "")
    with pytest.raises(DefinitionError, match="HW_TEST_UNSET_SALT"):
        validate(hashed, SCHEMA)
    monkeypatch.setenv("HW_TEST_UNSET_SALT", "s")
    assert validate(hashed, SCHEMA).field("email").type == pa.string()


def test_a_python_step_must_take_an_empty_table() -> None:
    @transforms.python
    def needs_rows(table: pa.Table) -> pa.Table:
        return table.slice(0, table.column("amount")[0].as_py())

    with pytest.raises(DefinitionError, match=r"transform 1 \(python\(needs_rows\)\) raised") as e:
        validate(view([needs_rows]), SCHEMA)
    assert "on an empty table" in e.value.message


def test_a_run_refuses_what_apply_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HW_TEST_UNSET_SALT", raising=False)
    store = project(
        tmp_path,
        """
        hashed = FeatureView("hashed", entity=user, source=orders, features={"e": "email"},
            transforms=[transforms.hash("email", salt_env="HW_TEST_UNSET_SALT")])
        dropped = FeatureView("dropped", entity=user, source=orders, features={"s": "ssn"},
            transforms=[transforms.drop("ssn")])
        """,
        [{"order_id": 1, "day": 0, "email": "a@b", "ssn": "x"}],
    )
    with pytest.raises(DefinitionError, match="HW_TEST_UNSET_SALT, which is not set"):
        store.run(["hashed"])
    with pytest.raises(DefinitionError, match=r"transform 1 \(drop\(ssn\)\) removed it"):
        store.run(["dropped"])
    assert store.registry.last_run("dropped", status="failed") is not None
    store.close()


def test_apply_validates_the_features_against_the_columns_the_steps_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
    totals = FeatureView(
        "totals", entity=user, source=orders,
        features={"total_cents": "CAST(total * 100 AS BIGINT)", "who": "email"},
        transforms=[transforms.rename({"amount": "total"}),
                    transforms.hash("email", salt_env="HW_TEST_SALT")],
    )
    """
    store = project(tmp_path, body, [{"order_id": 1, "day": 1, "amount": 2.5, "email": "a@b"}])
    monkeypatch.delenv("HW_TEST_SALT", raising=False)
    with pytest.raises(DefinitionError, match="HW_TEST_SALT"):
        store.apply()
    monkeypatch.setenv("HW_TEST_SALT", "pepper-pepper-pepper")
    report = store.apply()  # `total` exists only after the rename
    assert report.views == ["totals"]
    assert store.registry.schema("totals").field("total_cents").type == pa.int64()
