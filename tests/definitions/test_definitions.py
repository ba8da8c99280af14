"""Definitions: construction rules, discovery of project modules, and validation on apply."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import headwater
from headwater import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureStore,
    FeatureView,
    FileSource,
    Hopping,
    Last,
    Max,
    Min,
    PostgresSource,
    SqliteSource,
    Sum,
    Tumbling,
)
from headwater.definitions.discovery import discover
from headwater.definitions.durations import format_millis, to_millis
from headwater.errors import DefinitionError
from tests.helpers import TS, write_project

USER = Entity("user", join_keys=["user_id"])
EVENTS = FileSource("events", path="data/events.parquet", timestamp_field="event_timestamp")


def view(**kwargs: Any) -> FeatureView:
    args: dict[str, Any] = {"entity": USER, "source": EVENTS, "features": [Count()]}
    args.update(kwargs)
    return FeatureView(args.pop("name", "v"), **args)


# ---------------------------------------------------------------------- public API
def test_the_public_api_is_explicit() -> None:
    assert headwater.__all__ == [
        "Avg",
        "Count",
        "CountDistinct",
        "Entity",
        "FeatureStore",
        "FeatureView",
        "FileSource",
        "Hopping",
        "KafkaSource",
        "Last",
        "Max",
        "Min",
        "PostgresSink",
        "PostgresSource",
        "RedshiftSink",
        "RedshiftSource",
        "SqliteSource",
        "Sum",
        "Tumbling",
        "__version__",
        "checks",
        "transforms",
    ]
    for name in headwater.__all__:
        assert getattr(headwater, name) is not None
    assert headwater.FeatureStore is FeatureStore
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = headwater.Nope


# ---------------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("value", "millis"),
    [
        ("250ms", 250),
        ("90s", 90_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("2w", 1_209_600_000),
        (" 15 m ", 900_000),
        (timedelta(minutes=5), 300_000),
        (timedelta(days=2, hours=1), 176_400_000),
        (42, 42),
    ],
)
def test_durations(value: Any, millis: int) -> None:
    assert to_millis(value) == millis


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("h", "is not a duration"),
        ("-5m", "is not a duration"),
        ("", "is not a duration"),
        (None, "is not a duration"),
        (True, "is not a duration"),
        (1.5, "is not a duration"),
        ("0m", "must be positive"),
        (0, "must be positive"),
        (timedelta(0), "must be positive"),
        (timedelta(minutes=-5), "must be positive"),
        (timedelta(microseconds=1500), "finer than a millisecond"),
    ],
)
def test_bad_durations(value: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        to_millis(value, what="ttl of view 'v'")
    assert "ttl of view 'v'" in str(info.value)
    assert "fix:" in str(info.value)


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (3_600_000, "1h"),
        (5_400_000, "90m"),
        (86_400_000, "1d"),
        (1_500, "1500ms"),
        (604_800_000, "1w"),
    ],
)
def test_format_millis(millis: int, text: str) -> None:
    assert format_millis(millis) == text


def test_a_bad_window_size_names_the_view() -> None:
    with pytest.raises(DefinitionError, match=r"view 'v': window size: '1 hour' is not a duration"):
        view(window=Tumbling("1 hour"))
    with pytest.raises(DefinitionError, match=r"view 'v': ttl: '0d' must be positive"):
        view(ttl="0d")


# ---------------------------------------------------------------------- windows
def test_windows_convert_to_millis() -> None:
    assert view(window=Tumbling("1d")).window_ms == (86_400_000, 86_400_000)
    assert view(window=Hopping(size="1h", every="5m")).window_ms == (3_600_000, 300_000)
    assert view(window=Hopping(size=timedelta(hours=1), every="1h")).window_ms == (
        3_600_000,
        3_600_000,
    )
    assert view().window_ms is None
    assert view(ttl=timedelta(days=2)).ttl_ms == 172_800_000


@pytest.mark.parametrize(
    ("size", "every", "suggestion"),
    [("1h", "7m", "every='6m'"), ("1d", "7h", "every='6h'"), ("90s", "1m", "every='45s'")],
)
def test_a_hop_that_does_not_divide_the_size_suggests_one(
    size: str, every: str, suggestion: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        view(name="clicks_1h", window=Hopping(size=size, every=every))
    message = str(info.value)
    assert "view 'clicks_1h'" in message
    assert f"window hop {every} does not divide its size {size}" in message
    assert suggestion in message


def test_the_suggested_hop_is_found_quickly_for_awkward_sizes() -> None:
    with pytest.raises(DefinitionError, match=r"every='84h'"):
        view(window=Hopping(size="1w", every=604_799_999))


def test_a_hop_larger_than_the_size() -> None:
    with pytest.raises(
        DefinitionError, match=r"view 'v': window hop 2h is larger than its size 1h"
    ):
        view(window=Hopping(size="1h", every="2h"))


def test_a_window_must_be_a_window() -> None:
    with pytest.raises(DefinitionError, match=r"window must be Tumbling\(...\) or Hopping"):
        view(window="1d")


# ---------------------------------------------------------------------- feature views
def test_duplicate_feature_names() -> None:
    with pytest.raises(DefinitionError, match=r"view 'v': feature name 'n' is declared twice"):
        view(features=[Count(name="n"), Sum("amount", name="n")])
    with pytest.raises(DefinitionError, match=r"feature name 'count' is declared twice"):
        view(features=[Count(), Count()])


@pytest.mark.parametrize("name", ["event_timestamp", "created_timestamp", "event_date", "user_id"])
def test_reserved_feature_names(name: str) -> None:
    with pytest.raises(DefinitionError, match=rf"feature name '{name}' collides"):
        view(features=[Count(name=name)])
    with pytest.raises(DefinitionError, match=rf"feature name '{name}' collides"):
        view(features={name: "amount"})


@pytest.mark.parametrize("name", ["1abc", "has space", "a-b", "view__feature", ""])
def test_bad_names(name: str) -> None:
    with pytest.raises(DefinitionError, match="name"):
        view(name=name)
    with pytest.raises(DefinitionError, match="name"):
        view(features={name: "amount"})


def test_a_projection_cannot_have_a_window() -> None:
    with pytest.raises(DefinitionError, match=r"view 'v': a window needs aggregations") as info:
        view(features={"amount": "amount"}, window=Tumbling("1d"))
    assert "drop window=" in str(info.value)


def test_a_list_of_features_holds_aggregations_only() -> None:
    with pytest.raises(DefinitionError, match=r"view 'v': 'amount' is not an aggregation") as info:
        view(features=[Sum("amount"), "amount"])
    assert "pass a mapping" in str(info.value)


@pytest.mark.parametrize("features", [[], {}, "amount", {"a": ""}, {"a": 3}])
def test_features_must_be_declared(features: Any) -> None:
    with pytest.raises(DefinitionError, match="view 'v'"):
        view(features=features)


def test_entity_and_source_must_be_objects() -> None:
    with pytest.raises(DefinitionError, match="entity must be an Entity"):
        view(entity="user")
    with pytest.raises(DefinitionError, match="pass the source object itself"):
        view(source="events")


def test_aggregations() -> None:
    assert Sum("amount").name == "amount_sum"
    assert Count().name == "count"
    assert Count("x").name == "x_count"
    assert CountDistinct("page").name == "page_count_distinct"
    assert Last("status", name="last_status").column == "status"
    assert [Avg("a").function, Min("a").function, Max("a").function] == ["avg", "min", "max"]
    with pytest.raises(DefinitionError, match=r"Sum\(\) needs the column to aggregate"):
        Sum()


def test_the_shapes() -> None:
    projection = view(features={"amount": "amount * 2"}, name="p")
    assert (projection.kind, projection.feature_names) == ("projection", ["amount"])
    lifetime = view(features=[Sum("amount"), Count()])
    assert (lifetime.kind, lifetime.window) == ("aggregation", None)
    assert lifetime.to_spec()["features"][0] == {
        "function": "sum",
        "column": "amount",
        "name": "amount_sum",
    }


# ---------------------------------------------------------------------- entities and sources
def test_an_entity_needs_join_keys() -> None:
    with pytest.raises(DefinitionError, match="entity 'user' has no join keys") as info:
        Entity("user")
    assert 'join_keys=["user_id"]' in str(info.value)
    with pytest.raises(DefinitionError, match="repeats a join key"):
        Entity("user", join_keys=["id", "id"])
    lone = Entity("user", join_keys="user_id")  # type: ignore[arg-type]  # a lone key is accepted
    assert lone.join_keys == ["user_id"]


def test_an_incremental_source_needs_a_primary_key() -> None:
    with pytest.raises(DefinitionError) as info:
        PostgresSource(
            "orders",
            connection="app_db",
            table="public.orders",
            timestamp_field="created_at",
            cursor_field="updated_at",
        )
    message = str(info.value)
    assert "postgres source 'orders' has cursor_field='updated_at' but no primary_key" in message
    assert "primary_key=" in message
    with pytest.raises(DefinitionError, match="no primary_key"):
        SqliteSource("orders", path="x.db", table="orders", timestamp_field="t", cursor_field="u")


def test_table_sources_need_one_of_table_or_query() -> None:
    with pytest.raises(DefinitionError, match="exactly one of table= or query="):
        PostgresSource("o", connection="c", timestamp_field="t")
    with pytest.raises(DefinitionError, match="exactly one of table= or query="):
        PostgresSource("o", connection="c", timestamp_field="t", table="a", query="SELECT 1")


def test_file_sources() -> None:
    assert FileSource("c", path="data/clicks/*.parquet", timestamp_field="t").format == "parquet"
    assert FileSource("c", path="data/p.csv", timestamp_field="t").format == "csv"
    with pytest.raises(DefinitionError, match=r"cannot tell the format of 'data/clicks/'"):
        FileSource("c", path="data/clicks/", timestamp_field="t")
    with pytest.raises(DefinitionError, match="has no timestamp_field"):
        FileSource("c", path="x.csv", timestamp_field="")


# ---------------------------------------------------------------------- discovery
HEADER = "from headwater import Count, Entity, FeatureView, FileSource, Sum\n"
ENTITY = 'user = Entity("user", join_keys=["user_id"])\n'
SOURCE = (
    'src = FileSource("events", path="data/events.parquet", timestamp_field="event_timestamp")\n'
)


def module(*lines: str) -> str:
    return HEADER + ENTITY + SOURCE + "".join(textwrap.dedent(line) for line in lines)


def project(root: Path, modules: dict[str, str], ignore: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text("project: t\n")
    for name, text in modules.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if ignore is not None:
        (root / ".headwaterignore").write_text(ignore)
    return root


def test_discovery_collects_definitions_from_every_module(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "a.py": module('va = FeatureView("va", entity=user, source=src, features=[Count()])\n'),
            "pkg/b.py": module(
                'vb = FeatureView("vb", entity=user, source=src, features={"x": "x"})\n'
            ),
            "data/skipped.py": "raise SystemExit('data/ is not read')\n",
            ".hidden/skipped.py": "raise SystemExit('hidden folders are not read')\n",
        },
    )
    found = discover(root)
    assert sorted(found.views) == ["va", "vb"]
    assert list(found.entities) == ["user"]
    assert list(found.sources) == ["events"]
    with pytest.raises(
        DefinitionError, match=r"no feature view named 'vc' — fix: use one of: va, vb"
    ):
        found.view("vc")


def test_two_different_views_with_one_name_in_two_modules(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "a.py": module(
                'v = FeatureView("daily", entity=user, source=src, features=[Count()])\n'
            ),
            "b.py": module(
                'w = FeatureView("daily", entity=user, source=src, features=[Sum("amount")])\n'
            ),
        },
    )
    with pytest.raises(DefinitionError) as info:
        discover(root)
    message = str(info.value)
    assert "two different feature views are named 'daily' (in a.py and in b.py)" in message
    assert "rename one of them" in message


def test_two_different_entities_with_one_name(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "a.py": module(),
            "b.py": HEADER + 'user = Entity("user", join_keys=["uid"])\n',
        },
    )
    with pytest.raises(DefinitionError, match=r"two different entities are named 'user'"):
        discover(root)


@pytest.fixture
def plain_imports() -> Iterator[None]:
    """Forget the project modules a test imported by their plain names (``import helper``)."""
    yield
    for name in ("hw_daily", "hw_helper"):
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("plain_imports")
def test_one_view_imported_into_another_module_is_not_a_duplicate(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "hw_daily.py": module(
                'v = FeatureView("daily", entity=user, source=src, features=[Count()])\n'
            ),
            "reexport.py": "from hw_daily import v as again\n",
        },
    )
    assert list(discover(root).views) == ["daily"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = 1\n\ny = 1 / 0\n", "importing bad.py failed at line 3: ZeroDivisionError"),
        ('import json\n\njson.loads("{")\n', "importing bad.py failed at line 3: JSONDecodeError"),
        ("x = (\n\ny = 2\n", "importing bad.py failed at line 1: SyntaxError"),
        ("import no_such_module_hw\n", "importing bad.py failed at line 1: ModuleNotFoundError"),
    ],
)
def test_a_module_raising_on_import_names_the_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    root = project(tmp_path, {"ok.py": module(), "bad.py": text})
    with pytest.raises(DefinitionError) as info:
        discover(root)
    assert expected in str(info.value)


@pytest.mark.usefixtures("plain_imports")
def test_an_error_in_a_helper_module_names_the_helper(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "a.py": "import hw_helper\n\nhw_helper.boom()\n",
            "hw_helper.py": "def boom():\n    {}['k']\n",
        },
    )
    with pytest.raises(
        DefinitionError, match=r"importing a\.py failed at hw_helper\.py line 2: KeyError"
    ):
        discover(root)


def test_a_definition_error_names_the_module(tmp_path: Path) -> None:
    root = project(tmp_path, {"defs.py": HEADER + 'user = Entity("user")\n'})
    with pytest.raises(DefinitionError, match=r"^defs.py: entity 'user' has no join keys"):
        discover(root)


def test_headwaterignore_excludes_files(tmp_path: Path) -> None:
    modules = {
        "a.py": module('v = FeatureView("v", entity=user, source=src, features=[Count()])\n'),
        "scripts/train.py": "raise RuntimeError('not a definition module')\n",
        "notebook_export.py": "raise RuntimeError('not a definition module')\n",
    }
    root = project(tmp_path, modules, ignore="# helpers\nscripts/\nnotebook_*.py\n")
    assert list(discover(root).views) == ["v"]
    (root / ".headwaterignore").write_text("scripts/\n")
    with pytest.raises(DefinitionError, match=r"importing notebook_export\.py failed"):
        discover(root)


def test_a_script_that_opens_the_store_at_import_is_a_clear_error(tmp_path: Path) -> None:
    script = (
        "from pathlib import Path\n"
        "from headwater import FeatureStore\n\n"
        "FeatureStore(Path(__file__).parent).apply()\n"
    )
    root = project(tmp_path, {"a.py": module(), "train.py": script})
    with pytest.raises(DefinitionError) as info:
        FeatureStore(root).apply()
    message = str(info.value)
    assert message.startswith("train.py: ")
    assert "opened the project again while it was being imported" in message
    assert 'if __name__ == "__main__":' in message


# ---------------------------------------------------------------------- validation on apply
NOW = datetime.now(UTC).replace(microsecond=0)
EVENTS_TABLE = pa.table(
    {
        "user_id": pa.array([1, 2], pa.int64()),
        "amount": pa.array([1.5, 2.5]),
        "country": pa.array(["fr", "de"]),
        "event_timestamp": pa.array([NOW - timedelta(hours=2), NOW - timedelta(hours=1)], TS),
    }
)
COLUMNS = "user_id, amount, country, event_timestamp"


def apply(tmp_path: Path, definitions: str) -> FeatureStore:
    root = write_project(
        tmp_path / "p", HEADER + definitions, data={"data/events.parquet": EVENTS_TABLE}
    )
    store = FeatureStore(root)
    store.apply()
    return store


VIEW = 'FeatureView("{name}", entity={entity}, source={source}, features={features})\n'


def definitions(
    features: str,
    *,
    name: str = "user_stats",
    timestamp: str = "event_timestamp",
    keys: str = '["user_id"]',
) -> str:
    return (
        f'user = Entity("user", join_keys={keys})\n'
        f'src = FileSource("events", path="data/events.parquet", timestamp_field="{timestamp}")\n'
        + "v = "
        + VIEW.format(name=name, entity="user", source="src", features=features)
    )


def test_a_valid_project_applies(tmp_path: Path) -> None:
    store = apply(tmp_path, definitions('{"amount": "amount", "big": "amount > 2"}'))
    schema = store.registry.schema("user_stats")
    assert schema is not None
    assert schema.field("big").type == pa.bool_()
    store.close()


def test_an_unknown_column_in_a_feature_expression(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        apply(tmp_path, definitions('{"amount": "amount", "spend": "amount * quantity"}'))
    message = str(info.value)
    assert "view 'user_stats'" in message
    assert "feature 'spend'" in message
    assert "quantity" in message
    assert COLUMNS in message


@pytest.mark.parametrize("expression", ["upper(country", "amount +", "SELECT", "nosuchfn(amount)"])
def test_a_bad_sql_expression(tmp_path: Path, expression: str) -> None:
    with pytest.raises(DefinitionError) as info:
        apply(tmp_path, definitions(f'{{"x": "{expression}"}}'))
    message = str(info.value)
    assert f"view 'user_stats': feature 'x': expression '{expression}' is invalid" in message
    assert "\n" not in message


def test_a_missing_timestamp_field(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        apply(tmp_path, definitions("[Count()]", timestamp="ts"))
    message = str(info.value)
    assert (
        "view 'user_stats': timestamp_field names 'ts', which is not a column of source 'events'"
        in message
    )
    assert COLUMNS in message


def test_an_unknown_aggregation_column(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        apply(tmp_path, definitions('[Sum("price", name="spend")]'))
    message = str(info.value)
    assert (
        "view 'user_stats': input of aggregation 'spend' names 'price', which is not a column"
        in message
    )
    assert COLUMNS in message


def test_an_unknown_join_key(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        apply(tmp_path, definitions("[Count()]", keys='["customer_id"]'))
    message = str(info.value)
    assert (
        "view 'user_stats': join key of entity 'user' names 'customer_id', which is not a column"
        in message
    )
    assert COLUMNS in message


def test_an_aggregation_of_the_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"view 'user_stats': cannot be computed"):
        apply(tmp_path, definitions('[Sum("country")]'))


def test_every_source_kind_is_hashable_by_kind_and_name() -> None:
    from headwater import KafkaSource, PostgresSource, RedshiftSource, SqliteSource

    sources = [
        FileSource("f", path="x.parquet", timestamp_field="ts", primary_key=["id"]),
        PostgresSource("p", connection="db", table="t", timestamp_field="ts", primary_key="id"),
        SqliteSource("s", path="x.db", table="t", timestamp_field="ts", primary_key=["id"]),
        KafkaSource("k", connection="events", topic="t", primary_key=["id"]),
        RedshiftSource("r", connection="wh", table="t", timestamp_field="ts", primary_key=["id"]),
    ]
    assert len(set(sources)) == 5
    again = FileSource("f", path="x.parquet", timestamp_field="ts", primary_key=["id"])
    assert hash(again) == hash(sources[0]) and again == sources[0] and again in set(sources)
