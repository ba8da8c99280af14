"""Field-level diffs of definition specs, and which changes alter computed rows."""

from __future__ import annotations

from headwater import Count, Entity, FeatureView, FileSource, Sum, Tumbling, checks
from headwater.definitions.changes import field_changes, rows_fingerprint

USER = Entity("user", join_keys=["user_id"])
ORDERS = FileSource("orders", path="data/orders.parquet", timestamp_field="ts")


def view(**changes: object) -> FeatureView:
    fields: dict[str, object] = {
        "entity": USER,
        "source": ORDERS,
        "window": Tumbling("1d"),
        "features": [Sum("amount", name="amount_sum")],
    }
    fields.update(changes)
    return FeatureView("user_orders", **fields)  # type: ignore[arg-type]


def fp(item: FeatureView) -> str:
    return rows_fingerprint(item.to_spec(), item.source.to_spec())


def classify(old: FeatureView, new: FeatureView) -> list[tuple[str, bool]]:
    return [(c.path, c.changes_rows) for c in field_changes(old.to_spec(), new.to_spec())]


def test_metadata_changes_keep_the_rows() -> None:
    base = view()
    for changed in (
        view(ttl="2d"),
        view(description="per day"),
        view(tags={"team": "growth"}),
        view(online=False),
        view(checks=[checks.not_null("amount_sum", severity="warn")]),
        view(checks=[checks.not_null("amount_sum", severity="fail")]),
    ):
        assert all(not rows for _, rows in classify(base, changed)), classify(base, changed)
        assert fp(changed) == fp(base)


def test_row_changes_are_named_and_change_the_fingerprint() -> None:
    base = view()
    assert classify(base, view(window=Tumbling("1h"))) == [("window.size_ms", True)]
    more = view(features=[Sum("amount", name="amount_sum"), Count(name="n")])
    assert classify(base, more) == [("features.n", True)]
    quarantine = view(checks=[checks.not_null("amount_sum", severity="quarantine")])
    assert classify(base, quarantine) == [("checks", True)]
    warned = view(checks=[checks.not_null("amount_sum", severity="warn")])
    assert [rows for _, rows in classify(warned, quarantine)] == [True]
    assert [rows for _, rows in classify(quarantine, warned)] == [True]
    moved = view(source=FileSource("orders", path="data/other.parquet", timestamp_field="ts"))
    retimed = view(source=FileSource("orders", path="data/orders.parquet", timestamp_field="t2"))
    for changed in (view(window=Tumbling("1h")), more, quarantine, moved, retimed):
        assert fp(changed) != fp(base)


def test_a_source_description_keeps_the_rows_and_its_path_does_not() -> None:
    old = ORDERS.to_spec()
    described = FileSource(
        "orders", path="data/orders.parquet", timestamp_field="ts", description="all orders"
    ).to_spec()
    assert [(c.path, c.changes_rows) for c in field_changes(old, described)] == [
        ("description", False)
    ]
    changes = field_changes(old, {**old, "path": "data/b.parquet"})
    assert [(c.path, c.changes_rows) for c in changes] == [("path", True)]
    assert changes[0].describe() == 'path: "data/orders.parquet" → "data/b.parquet"'


def test_an_unknown_field_is_taken_to_change_rows() -> None:
    old = view().to_spec()
    assert [c.changes_rows for c in field_changes(old, {**old, "novel": 1})] == [True]
