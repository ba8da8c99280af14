"""Feature views: an entity, a source and the features computed from it.

Two shapes exist today:

* *projection* — ``features`` is a mapping ``name -> SQL expression`` over the source's columns;
  one output row per source row.
* *aggregation* — ``features`` is a list of :class:`~headwater.definitions.aggregations.Aggregation`
  and ``window`` is a :class:`Tumbling`, a :class:`Hopping` or ``None`` (lifetime: one row per
  entity and distinct event time, holding the aggregate of every event up to it).

Every output row has the entity's join keys, ``event_timestamp`` and the feature columns
(projections whose source has a created timestamp also carry ``created_timestamp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from headwater.definitions.aggregations import Aggregation
from headwater.definitions.checks import Check, check_list
from headwater.definitions.durations import Duration, to_millis
from headwater.definitions.entity import Entity
from headwater.definitions.naming import check_name
from headwater.definitions.sinks import Sink
from headwater.definitions.sources import Source
from headwater.definitions.steps import Step, step_list
from headwater.definitions.windows import Window
from headwater.errors import DefinitionError
from headwater.sql import not_one_expression

RESERVED_COLUMNS = frozenset({"event_timestamp", "created_timestamp", "event_date"})


@dataclass(frozen=True, kw_only=True, eq=False)
class FeatureView:
    """A set of features of one entity computed from one source.

    Args:
        name: unique view name; it names the offline table and prefixes full feature names.
        entity: the entity whose join keys the rows are keyed by.
        source: where the rows come from.
        features: ``{"name": "sql expression"}`` for a projection, or a list of aggregations
            (read them back as ``projections`` or ``aggregations``).
        window: for aggregations: ``Tumbling("1d")``, ``Hopping(size="1h", every="5m")``, or
            ``None`` for lifetime aggregates.
        ttl: how long a value stays valid; older values read as null online and do not join
            in training sets. ``None`` means forever. A duration (``"2d"``, a ``timedelta`` or
            an int of milliseconds), kept as a ``timedelta``.
        online: write the latest row per entity to the online store on ``materialize``.
        offline: keep history in the offline store (always true today).
        description: free text.
        tags: free key/value labels.
        sinks: warehouse tables each run also loads (``PostgresSink``, ``RedshiftSink``).
        emit: for views computed by ``headwater stream``: ``"final"`` writes a window's row once
            the watermark closes it; ``"update"`` also writes the running value of every window
            a micro-batch touched.
        checks: data-quality checks on the computed rows, run before they are written
            (:mod:`headwater.checks`).
        transforms: cleaning steps run in order on the source rows (after the source's
            checks, before the features are computed; :mod:`headwater.transforms`).
    """

    name: str = field(kw_only=False)
    entity: Entity
    source: Source
    features: dict[str, str] | list[Aggregation]
    window: Window | None = None
    ttl: Duration | None = None
    online: bool = True
    offline: bool = True
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    sinks: list[Sink] = field(default_factory=list)
    emit: str = "final"
    checks: Sequence[Check] = ()
    transforms: Sequence[Step] = ()

    def __post_init__(self) -> None:
        name = check_name(self.name, "feature view")
        if not isinstance(self.entity, Entity):
            raise DefinitionError(
                f"view {name!r}: entity must be an Entity, not {type(self.entity).__name__}",
                fix='entity=Entity("user", join_keys=["user_id"])',
            )
        if not isinstance(self.source, Source):
            raise DefinitionError(
                f"view {name!r}: source must be a source (FileSource, PostgresSource, ...), "
                f"not {type(self.source).__name__}",
                fix="pass the source object itself, not its name",
            )
        set_ = object.__setattr__
        set_(self, "features", self._check_features())
        window = self.window
        if window is not None and not isinstance(window, Window):
            raise DefinitionError(
                f"view {name!r}: window must be Tumbling(...) or Hopping(...), not {window!r}",
                fix='window=Tumbling("1d")',
            )
        if window is not None:
            window.validate(name)
        if self.ttl is not None:
            ttl_ms = to_millis(self.ttl, what=f"view {name!r}: ttl")
            set_(self, "ttl", timedelta(milliseconds=ttl_ms))
        set_(self, "tags", dict(self.tags or {}))
        set_(self, "sinks", self._check_sinks())
        if self.emit not in ("final", "update"):
            raise DefinitionError(
                f"view {name!r}: emit={self.emit!r} is not a streaming emit mode",
                fix='emit="final" (a window\'s row once it closes) or "update" (running values)',
            )
        set_(self, "checks", check_list(self.checks, f"view {name!r}"))
        keys = self.entity.join_keys
        set_(self, "transforms", step_list(self.transforms, name, self.source, keys))

    def _check_features(self) -> dict[str, str] | list[Aggregation]:
        name, features = self.name, self.features
        found: dict[str, str] | list[Aggregation]
        if isinstance(features, dict):
            if self.window is not None:
                raise DefinitionError(
                    f"view {name!r}: a window needs aggregations, but features is a mapping "
                    "of expressions",
                    fix="pass features=[Sum('amount'), Count()] or drop window=",
                )
            for feature, expression in features.items():
                check_name(feature, f"view {name!r}: feature")
                if not isinstance(expression, str) or not expression.strip():
                    raise DefinitionError(
                        f"view {name!r}: feature {feature!r} needs a SQL expression string",
                        fix=f'features={{"{feature}": "column_name"}}',
                    )
                problem = not_one_expression(expression)
                if problem:
                    raise DefinitionError(
                        f"view {name!r}: feature {feature!r}: {problem}",
                        fix="write one SQL expression over the source's columns (no `;`, no "
                        "clause of its own)",
                    )
            found = dict(features)
        elif isinstance(features, list | tuple):
            for item in features:
                if not isinstance(item, Aggregation):
                    raise DefinitionError(
                        f"view {name!r}: {item!r} is not an aggregation",
                        fix="use Sum, Count, Avg, Min, Max, CountDistinct or Last; for "
                        "expressions pass a mapping instead of a list",
                    )
            found = list(features)
        else:
            raise DefinitionError(
                f"view {name!r}: features must be a mapping name -> SQL expression or a list of "
                "aggregations",
                fix='features={"age": "age"} or features=[Count()]',
            )
        names = list(found) if isinstance(found, dict) else [agg.name for agg in found]
        if not names:
            raise DefinitionError(f"view {name!r} has no features", fix="declare at least one")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DefinitionError(
                f"view {name!r}: feature name {duplicates[0]!r} is declared twice",
                fix="give each aggregation a distinct name=",
            )
        clash = set(names) & (RESERVED_COLUMNS | set(self.entity.join_keys))
        if clash:
            raise DefinitionError(
                f"view {name!r}: feature name {sorted(clash)[0]!r} collides with a join key or "
                "a reserved column (event_timestamp, created_timestamp, event_date)",
                fix="rename the feature",
            )
        return found

    def _check_sinks(self) -> list[Sink]:
        sinks = list(self.sinks or [])
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise DefinitionError(
                    f"view {self.name!r}: {sink!r} is not a sink",
                    fix='sinks=[PostgresSink(connection="warehouse", table="analytics.t")]',
                )
        targets = [(s.kind, s.connection, s.table) for s in sinks]
        if len(set(targets)) != len(targets):
            raise DefinitionError(
                f"view {self.name!r}: two sinks load the same table", fix="declare each table once"
            )
        return sinks

    # ----------------------------------------------------------------- derived facts
    @property
    def projections(self) -> dict[str, str]:
        """The features of a projection: name -> SQL expression (empty for aggregations)."""
        return self.features if isinstance(self.features, dict) else {}

    @property
    def aggregations(self) -> list[Aggregation]:
        """The features of an aggregation view (empty for projections)."""
        return self.features if isinstance(self.features, list) else []

    @property
    def kind(self) -> Literal["projection", "aggregation"]:
        return "projection" if self.projections else "aggregation"

    @property
    def join_keys(self) -> list[str]:
        return self.entity.join_keys

    @property
    def feature_names(self) -> list[str]:
        return list(self.projections) or [agg.name for agg in self.aggregations]

    @property
    def has_created_timestamp(self) -> bool:
        return self.kind == "projection" and self.source.created_timestamp_field is not None

    @property
    def ttl_ms(self) -> int | None:
        return None if self.ttl is None else to_millis(self.ttl)

    @property
    def window_ms(self) -> tuple[int, int] | None:
        """``(size_ms, hop_ms)`` of the window, or None for projections and lifetime views."""
        return None if self.window is None else self.window.validate(self.name)

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description used for registry versions and diffs."""
        spec: dict[str, Any] = {
            "kind": "feature_view",
            "name": self.name,
            "shape": self.kind,
            "entity": self.entity.name,
            "join_keys": self.join_keys,
            "source": self.source.name,
            "features": dict(self.projections) or [agg.to_spec() for agg in self.aggregations],
            "window": None if self.window is None else self.window.to_spec(),
            "ttl_ms": self.ttl_ms,
            "online": self.online,
            "offline": self.offline,
            "description": self.description,
            "tags": self.tags,
            "sinks": [sink.to_spec() for sink in self.sinks],
            "emit": self.emit,
        } | ({"checks": [c.to_spec() for c in self.checks]} if self.checks else {})
        if self.transforms:  # absent otherwise, so specs of views without steps do not change
            spec["transforms"] = [t.to_spec() for t in self.transforms]
        return spec

    def __repr__(self) -> str:
        return (
            f"FeatureView({self.name!r}, entity={self.entity.name!r}, source={self.source.name!r})"
        )
