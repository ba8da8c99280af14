"""Each cleaning step in a batch run, the order of steps, and Python transforms (Arrow,
pandas, polars) — run end to end: source file, run, offline rows."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from headwater.errors import RunFailed
from tests.transforms.support import SALT, project, rows_of


def test_dedupe_keeps_the_latest_row_per_key(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        latest = FeatureView("latest", entity=user, source=orders,
            features={"order_id": "order_id", "amount": "amount"},
            transforms=[transforms.dedupe(["order_id"], order_by="updated_at")])
        by_time = FeatureView("by_time", entity=user, source=orders,
            features={"order_id": "order_id", "amount": "amount"},
            transforms=[transforms.dedupe("order_id")])
        """,
        [
            {"order_id": 1, "day": 0, "amount": 10.0},
            {"order_id": 1, "day": 1, "amount": 20.0},  # the latest version of order 1
            {"order_id": 2, "day": 0.5, "amount": 5.0, "user_id": 2},
            {"order_id": 2, "day": 0.5, "amount": 7.0, "user_id": 2},  # a tie: the greater wins
        ],
    )
    result = store.run()[0]
    assert (result.rows_in, result.inserted) == (4, 2)
    expected = [(0.5, 2, 7.0), (1.0, 1, 20.0)]
    for view in ("latest", "by_time"):
        found = [(r["event_timestamp"], r["order_id"], r["amount"]) for r in rows_of(store, view)]
        assert found == expected, view


FILLS = [
    {"order_id": 1, "day": 0, "amount": 10.0},
    {"order_id": 6, "day": 0.5, "amount": None, "user_id": 2},  # nothing before it
    {"order_id": 2, "day": 1, "amount": None},
    {"order_id": 3, "day": 2, "amount": 30.0},
    {"order_id": 4, "day": 3, "amount": None},
    {"order_id": 5, "day": 4, "amount": 100.0},
]
MEAN = 140 / 3


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        ("0", [10.0, 0.0, 0.0, 30.0, 0.0, 100.0]),
        ('"mean"', [10.0, MEAN, MEAN, 30.0, MEAN, 100.0]),
        ('"median"', [10.0, 30.0, 30.0, 30.0, 30.0, 100.0]),
        # The last earlier value of the same user, in event-time order.
        ('"previous"', [10.0, None, 10.0, 30.0, 30.0, 100.0]),
    ],
)
def test_fill_null(tmp_path: Path, fill: str, expected: list[float | None]) -> None:
    store = project(
        tmp_path,
        f"""
        filled = FeatureView("filled", entity=user, source=orders, features={{"amount": "amount"}},
            transforms=[transforms.fill_null("amount", {fill})])
        """,
        FILLS,
    )
    store.run()
    assert [r["amount"] for r in rows_of(store, "filled")] == pytest.approx(expected)


def test_clip_and_outliers(tmp_path: Path) -> None:
    amounts = [-5.0, 1.0, 2.0, 3.0, 4.0, 100.0, None]
    store = project(
        tmp_path,
        """
        clipped = FeatureView("clipped", entity=user, source=orders, features={"amount": "amount"},
            transforms=[transforms.clip("amount", 0, 50)])
        iqr = FeatureView("iqr", entity=user, source=orders, features={"amount": "amount"},
            transforms=[transforms.outliers("amount", "iqr")])
        z = FeatureView("z", entity=user, source=orders, features={"amount": "amount"},
            transforms=[transforms.outliers("amount", "zscore", factor=1.5, action="null")])
        """,
        [{"order_id": i, "day": i, "amount": a} for i, a in enumerate(amounts)],
    )
    store.run()
    assert [r["amount"] for r in rows_of(store, "clipped")] == [0.0, 1.0, 2.0, 3.0, 4.0, 50.0, None]
    # q1 = 1.25, q3 = 3.75 over the six values: bounds [1.25 - 3.75, 3.75 + 3.75].
    assert [r["amount"] for r in rows_of(store, "iqr")] == [-2.5, 1.0, 2.0, 3.0, 4.0, 7.5, None]
    # mean 17.5, std 37.0: only 100 is more than 1.5 std away; it becomes null.
    assert [r["amount"] for r in rows_of(store, "z")] == [-5.0, 1.0, 2.0, 3.0, 4.0, None, None]


def test_cast_and_rename(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        typed = FeatureView("typed", entity=user, source=orders,
            features={"total": "total", "ref": "ref", "n": "try_number"},
            transforms=[
                transforms.rename({"amount": "total", "order_id": "ref"}),
                transforms.cast({"total": "int64", "ref": "string"}),
                transforms.rename("email", "try_number"),
                transforms.cast("try_number", "DOUBLE", on_error="null"),
            ])
        strict = FeatureView("strict", entity=user, source=orders, features={"email": "email"},
            transforms=[transforms.cast("email", "DOUBLE")])
        """,
        [
            {"order_id": 7, "day": 0, "amount": 10.4, "email": "12.5"},
            {"order_id": 8, "day": 1, "amount": 2.6, "email": "not a number"},
        ],
    )
    store.run(["typed"])
    assert [(r["total"], r["ref"], r["n"]) for r in rows_of(store, "typed")] == [
        (10, "7", 12.5),
        (3, "8", None),
    ]
    schema = store.offline.dataset("typed").schema
    assert str(schema.field("total").type) == "int64"
    assert str(schema.field("ref").type) == "string"
    with pytest.raises(RunFailed, match="view 'strict': the transforms failed") as failed:
        store.run(["strict"])
    assert "not a number" in failed.value.message
    assert "on_error='null'" in (failed.value.fix or "")


def test_pivot_and_unpivot(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        wide = FeatureView("wide", entity=user, source=orders,
            features={"home": "home", "cart": "cart_amount"},
            transforms=[
                transforms.drop("order_id", "card", "ssn"),
                transforms.pivot("email", "amount", {"home": "home", "cart": "cart_amount"},
                                 agg="sum"),
            ])
        long = FeatureView("long", entity=user, source=orders,
            features=[Count(), Max("text")], window=Tumbling("1d"),
            transforms=[transforms.unpivot(["email", "card"], name="field", value="text")])
        """,
        [
            {"order_id": 1, "day": 0, "email": "home", "amount": 1.0, "card": "a"},
            {"order_id": 2, "day": 0, "email": "cart", "amount": 2.0, "card": "b"},
            {"order_id": 3, "day": 0, "email": "cart", "amount": 3.0, "card": "c"},
            {"order_id": 4, "day": 1, "email": "home", "amount": 4.0, "card": None},
        ],
    )
    results = {r.view: r for r in store.run()}
    assert [(r["home"], r["cart"]) for r in rows_of(store, "wide")] == [(1.0, 5.0), (4.0, None)]
    assert results["wide"].rows_in == 4
    # Each order becomes two rows (nulls kept): 6 on day 0, 2 on day 1.
    assert [(r["count"], r["text_max"]) for r in rows_of(store, "long")] == [
        (6, "home"),
        (2, "home"),
    ]
    assert results["long"].rows_in == 4


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(f"{record.getMessage()} {record.__dict__}")


def test_pii_hash_mask_and_drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_SALT", SALT)
    records = _Records()
    logger = logging.getLogger("headwater")
    logger.addHandler(records)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    store = project(
        tmp_path,
        """
        private = FeatureView("private", entity=user, source=orders,
            features={"email": "email", "card": "card", "has_ssn": "list_contains(cols, 'ssn')"},
            transforms=[
                transforms.hash("email", salt_env="PII_SALT"),
                transforms.mask("card", keep_last=4),
                transforms.drop("ssn"),
                transforms.python(lambda t: t.append_column(
                    "cols", __import__("pyarrow").array([t.column_names] * t.num_rows))),
            ])
        """,
        [
            {"day": 0, "email": "ann@example.com", "card": "4111 1111 1111 1234", "ssn": "1"},
            {"day": 1, "email": "bob@example.com", "card": "123", "ssn": "2"},
            {"day": 2, "email": None, "card": None, "ssn": "3"},
        ],
    )
    store.run()
    found = rows_of(store, "private")
    expected = hashlib.sha256((SALT + "ann@example.com").encode()).hexdigest()
    assert found[0]["email"] == expected
    assert found[1]["email"] == hashlib.sha256((SALT + "bob@example.com").encode()).hexdigest()
    assert [r["card"] for r in found] == ["*" * 15 + "1234", "***", None]
    assert found[2]["email"] is None
    assert [r["has_ssn"] for r in found] == [False, False, False]
    assert "ssn" not in store.offline.dataset("private").schema.names
    # Stable across runs; another salt gives other hashes.
    store.run(full_refresh=True)
    assert rows_of(store, "private")[0]["email"] == expected
    monkeypatch.setenv("PII_SALT", "another-salt")
    store.run(full_refresh=True)
    assert rows_of(store, "private")[0]["email"] not in (expected, None)
    # The salt is never written down: not in specs, the registry, the offline files, the logs.
    spec = store.view("private").to_spec()
    assert spec["transforms"][0] == {"kind": "hash", "column": "email", "salt_env": "PII_SALT"}
    store.close()
    logger.removeHandler(records)
    logger.setLevel(level)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SALT.encode() not in path.read_bytes(), path
    assert any("transforms applied" in line for line in records.text)
    assert not any(SALT in line for line in records.text)


def test_steps_run_in_order_and_features_see_their_output(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        fill_then_clip = FeatureView("fill_then_clip", entity=user, source=orders,
            features={"amount": "amount"},
            transforms=[transforms.fill_null("amount", -1), transforms.clip("amount", 0, 10)])
        clip_then_fill = FeatureView("clip_then_fill", entity=user, source=orders,
            features={"amount": "amount"},
            transforms=[transforms.clip("amount", 0, 10), transforms.fill_null("amount", -1)])
        daily = FeatureView("daily", entity=user, source=orders,
            features=[Sum("amount"), Count("amount", name="n")], window=Tumbling("1d"),
            transforms=[transforms.fill_null("amount", 0), transforms.clip("amount", 0, 10)])
        """,
        [
            {"order_id": 1, "day": 0, "amount": None},
            {"order_id": 2, "day": 0.25, "amount": 50.0},
            {"order_id": 3, "day": 0.5, "amount": 3.0},
        ],
    )
    store.run()
    assert [r["amount"] for r in rows_of(store, "fill_then_clip")] == [0.0, 10.0, 3.0]
    assert [r["amount"] for r in rows_of(store, "clip_then_fill")] == [-1.0, 10.0, 3.0]
    assert [(r["amount_sum"], r["n"]) for r in rows_of(store, "daily")] == [(13.0, 3)]


ARROW_PANDAS_POLARS = """
import pyarrow.compute as pc

CALLS = []

@transforms.python
def with_fee(table):
    CALLS.append(table.num_rows)
    return table.append_column("fee", pc.multiply(table["amount"], 0.1))

@transforms.python(frame="pandas")
def rounded(df):
    df["amount"] = df["amount"].round(0)
    return df

@transforms.python(frame="polars", name="shout")
def shouted(frame):
    import polars as pl
    return frame.with_columns(pl.col("email").str.to_uppercase())

fees = FeatureView("fees", entity=user, source=orders,
    features={"amount": "amount", "fee": "fee", "email": "email"},
    transforms=[with_fee, rounded, shouted])
"""


def test_python_transforms_on_arrow_pandas_and_polars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import headwater.transforms.runtime as runtime

    monkeypatch.setattr(runtime, "CHUNK_ROWS", 2)  # chunks of two rows, to see the calls
    store = project(
        tmp_path,
        ARROW_PANDAS_POLARS,
        [{"order_id": i, "day": i, "amount": 10.0 * i + 0.4, "email": f"u{i}@x"} for i in range(5)],
    )
    store.run()
    found = rows_of(store, "fees")
    assert [(r["amount"], r["fee"], r["email"]) for r in found] == [
        (0.0, pytest.approx(0.04), "U0@X"),
        (10.0, pytest.approx(1.04), "U1@X"),
        (20.0, pytest.approx(2.04), "U2@X"),
        (30.0, pytest.approx(3.04), "U3@X"),
        (40.0, pytest.approx(4.04), "U4@X"),
    ]
    calls = store.view("fees").transforms[0].function.__globals__["CALLS"]
    assert sorted(calls) == [1, 2, 2]  # never more rows than a chunk
    assert store.view("fees").transforms[2].label == "python(shout)"
    store.close()


def test_a_failing_python_transform_names_the_view_and_step(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        @transforms.python
        def broken(table):
            if table.num_rows:
                raise ValueError("no good")
            return table

        @transforms.python
        def not_a_table(table):
            return table if not table.num_rows else 42

        failing = FeatureView("failing", entity=user, source=orders, features={"a": "amount"},
            transforms=[transforms.fill_null("amount", 0), broken])
        wrong = FeatureView("wrong", entity=user, source=orders, features={"a": "amount"},
            transforms=[not_a_table])
        """,
        [{"order_id": 1, "day": 0, "amount": 1.0}],
    )
    with pytest.raises(RunFailed, match=r"view 'failing': transform 2 \(python\(broken\)\) raised"):
        store.run(["failing"])
    with pytest.raises(Exception, match=r"transform 1 \(python\(not_a_table\)\) returned int"):
        store.run(["wrong"])
    assert store.registry.last_run("failing", status="failed") is not None
