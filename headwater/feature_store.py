"""``FeatureStore``: the Python SDK, a thin facade over the layers below.

Example:
    >>> store = FeatureStore(".")
    >>> store.apply()
    >>> store.run()
    >>> store.materialize()
    >>> store.get_online_features(["user_orders_daily:amount_sum"], [{"user_id": 1}]).to_dict()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.config import load_config
from headwater.errors import DefinitionError, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.definitions.changes import FieldChange
    from headwater.definitions.discovery import Definitions
    from headwater.engines.base import BatchEngine
    from headwater.engines.retrieval import OnlineResponse, RetrievalJob
    from headwater.orchestration.materialize import MaterializeResult
    from headwater.orchestration.runner import RunResult
    from headwater.orchestration.workers import StreamOptions, StreamStats
    from headwater.quality.gate import QualityReport
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.online.base import OnlineStore
    from headwater.stores.registry import ApplyDiff, CheckRecord, Registry, TableVersion


@dataclass
class ApplyReport:
    """What ``apply`` found and changed.

    ``fields`` holds the changed fields of each changed definition (``(kind, name)``), each
    classified by whether it changes computed rows; ``diff.versions`` what that means for the
    views' offline table versions.
    """

    diff: ApplyDiff
    views: list[str]
    dry_run: bool
    fields: dict[tuple[str, str], list[FieldChange]] = field(default_factory=dict)


@dataclass
class ViewStatus:
    """One line of ``headwater status``."""

    name: str
    shape: str
    entity: str
    source: str
    offline_rows: int
    latest_event: Any
    last_run: Any
    materialized_seq: int | None
    quality: list[CheckRecord] = field(default_factory=list)
    """Check results of the last run."""


class FeatureStore:
    """Entry point of the SDK.

    Args:
        path: the project folder holding ``headwater.yaml`` and definition modules.
        config: an already-loaded configuration (for tests and embedding).
    """

    def __init__(self, path: str | Path = ".", *, config: ProjectConfig | None = None) -> None:
        self.path = Path(path).resolve()
        self.config = config or load_config(self.path)

    # ------------------------------------------------------------------ lazily built parts
    @cached_property
    def definitions(self) -> Definitions:
        from headwater.definitions.discovery import discover

        return discover(self.path)

    @cached_property
    def registry(self) -> Registry:
        from headwater.stores.registry import Registry

        return Registry.open(self.config)

    @cached_property
    def offline(self) -> OfflineStore:
        from headwater.stores.offline import open_offline_store

        return open_offline_store(self.config)

    @cached_property
    def online(self) -> OnlineStore:
        from headwater.stores.online import open_online_store

        return open_online_store(self.config)

    @cached_property
    def engine(self) -> BatchEngine:
        from headwater.engines import open_engine

        return open_engine(self.config)

    def view(self, name: str) -> FeatureView:
        return self.definitions.view(name)

    def _select(self, views: Sequence[str] | None) -> list[FeatureView]:
        if not views:
            return [self.definitions.views[n] for n in sorted(self.definitions.views)]
        return [self.view(name) for name in views]

    # ------------------------------------------------------------------ apply
    def apply(self, *, dry_run: bool = False) -> ApplyReport:
        """Validate every definition against its source and record new versions.

        Raises:
            DefinitionError: a view does not fit its source (names the view and field).
            ConnectionFailed: a source's server cannot be reached.
        """
        from headwater.connectors import open_connector
        from headwater.quality.validate import validate_view
        from headwater.transforms.runtime import validate as validate_transforms

        defs = self.definitions
        schemas: dict[str, pa.Schema] = {}
        source_schemas: dict[str, pa.Schema] = {}
        for view in self._select(None):
            source = view.source
            if source.name not in source_schemas:
                source_schemas[source.name] = open_connector(source, self.config).schema()
            # The features read the columns the view's cleaning steps leave.
            computed_from = validate_transforms(view, source_schemas[source.name])
            schemas[view.name] = self.engine.validate(view, computed_from)
            validate_view(view, source_schemas[source.name], schemas[view.name])
        specs = [e.to_spec() for e in defs.entities.values()]
        specs += [s.to_spec() for s in defs.sources.values()]
        specs += [v.to_spec() for v in defs.views.values()]
        fields, rows = self._changes(specs)
        if dry_run:
            return ApplyReport(self.registry.plan(specs, rows), sorted(schemas), True, fields)
        diff = self.registry.apply(specs, rows)
        for name, schema in schemas.items():
            self.registry.set_schema(name, schema)
        for name, schema in source_schemas.items():
            self.registry.set_source_schema(name, schema)  # the schema contracts' reference
        return ApplyReport(diff, sorted(schemas), False, fields)

    def _changes(
        self, specs: list[dict[str, Any]]
    ) -> tuple[dict[tuple[str, str], list[FieldChange]], dict[str, tuple[str | None, str]]]:
        """The field-level changes of ``specs`` against the applied definitions, and per view
        the rows fingerprints of its applied and its new definition."""
        import json

        from headwater.definitions.changes import field_changes, rows_fingerprint

        applied = {(d.kind, d.name): d.spec for d in self.registry.definitions()}
        fields: dict[tuple[str, str], list[FieldChange]] = {}
        for spec in specs:
            spec = json.loads(json.dumps(spec, default=str))  # as the registry gives it back
            old = applied.get((spec["kind"], spec["name"]))
            if old is not None and old != spec:
                fields[(spec["kind"], spec["name"])] = field_changes(old, spec)
        rows: dict[str, tuple[str | None, str]] = {}
        for view in self.definitions.views.values():
            old = applied.get(("feature_view", view.name))
            old_source = None if old is None else applied.get((view.source.kind, old["source"]))
            rows[view.name] = (
                None if old is None else rows_fingerprint(old, old_source),
                rows_fingerprint(view.to_spec(), view.source.to_spec()),
            )
        return fields, rows

    def unapplied(self, views: Sequence[str] | None = None) -> list[str]:
        """What of ``views`` (all by default) differs from the applied definitions: one phrase
        per view, e.g. ``view 'spend' was never applied`` or ``view 'spend' changed since it
        was applied (its source 'events')``; empty when everything is applied."""
        from headwater.stores.registry._records import canonical

        latest = {
            (record.kind, record.name): canonical(record.spec)
            for record in self.registry.definitions()
        }
        found = []
        for view in self._select(views):
            if ("feature_view", view.name) not in latest:
                found.append(f"view {view.name!r} was never applied")
                continue
            parts = [
                ("its definition", view.to_spec()),
                (f"its source {view.source.name!r}", view.source.to_spec()),
                (f"its entity {view.entity.name!r}", view.entity.to_spec()),
            ]
            changed = [
                label
                for label, spec in parts
                if latest.get((spec["kind"], spec["name"])) != canonical(spec)
            ]
            if changed:
                found.append(
                    f"view {view.name!r} changed since it was last applied ({', '.join(changed)})"
                )
        return found

    # ------------------------------------------------------------------ run / materialize
    def run(
        self,
        views: Sequence[str] | None = None,
        *,
        full_refresh: bool = False,
        on_step: Callable[[str], None] | None = None,
        on_rows: Callable[[int], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
        require_applied: bool = False,
    ) -> list[RunResult]:
        """Compute views from their sources into the offline store (all views by default).

        With ``require_applied`` a view whose definition differs from the applied one (or was
        never applied) is refused before anything runs (``headwater run`` does this).
        ``on_step``, ``on_rows`` and ``on_progress`` follow a run as it goes
        (:meth:`Runner.run <headwater.orchestration.runner.Runner.run>`)."""
        from headwater.orchestration.runner import Runner

        if require_applied:
            self.require_applied(views)
        runner = Runner(self.config, self.registry, self.offline, self.engine)
        return [
            runner.run(
                view,
                full_refresh=full_refresh,
                on_step=on_step,
                on_rows=on_rows,
                on_progress=on_progress,
            )
            for view in self._select(views)
        ]

    def require_applied(self, views: Sequence[str] | None = None) -> None:
        """Raise :class:`DefinitionError` when a view of ``views`` is not applied as declared.

        Raises:
            DefinitionError: names the first such view and what changed.
        """
        found = self.unapplied(views)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise DefinitionError(
                f"{found[0]}{more}: runs compute applied definitions only",
                fix="run `headwater apply` first, or `headwater run --apply`",
            )

    def quarantine_location(self, view: str) -> str:
        """Where the rows ``view``'s runs set aside are kept (a path or URL)."""
        from headwater.quality.quarantine import quarantine_location

        return quarantine_location(self.offline, self.view(view).name)

    def backfill(
        self,
        views: Sequence[str] | None = None,
        *,
        start: datetime,
        end: datetime,
        on_step: Callable[[str], None] | None = None,
        on_rows: Callable[[int], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> list[RunResult]:
        """Recompute the rows of ``views`` whose event_timestamp is in ``[start, end)``.

        Sources are read in full for the period (cursors are neither read nor moved), and the
        results merge into the offline store like any run: rows that did not change stay.
        """
        from headwater.orchestration.runner import Runner

        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        if end <= start:
            raise DefinitionError(
                f"backfill period is empty: end {end.isoformat()} is not after start "
                f"{start.isoformat()}",
                fix="pass --start before --end",
            )
        period = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        runner = Runner(self.config, self.registry, self.offline, self.engine)
        return [
            runner.run(
                view, time_range=period, on_step=on_step, on_rows=on_rows, on_progress=on_progress
            )
            for view in self._select(views)
        ]

    def materialize(
        self, views: Sequence[str] | None = None, *, full_refresh: bool = False
    ) -> list[MaterializeResult]:
        """Copy the latest row per entity of each online view from offline to online."""
        from headwater.orchestration.materialize import materialize_view

        return [
            materialize_view(
                view,
                registry=self.registry,
                offline=self.offline,
                online=self.online,
                engine=self.engine,
                full_refresh=full_refresh,
            )
            for view in self._select(views)
            if view.online
        ]

    def stream(
        self,
        views: Sequence[str] | None = None,
        *,
        until_caught_up: bool = False,
        options: StreamOptions | None = None,
    ) -> list[StreamStats]:
        """Compute streaming views from their Kafka topics into the offline and online stores.

        Runs until ``options.stop`` is set, or with ``until_caught_up`` until every partition
        reached the end offset it had at start (windows the watermark closed are written and
        committed; windows still open stay in the saved state for the next run).
        """
        from headwater.orchestration.workers import StreamOptions, run_streams

        selected = [v for v in self._select(views) if v.source.kind == "kafka"]
        if views:
            batch = [v.name for v in self._select(views) if v.source.kind != "kafka"]
            if batch:
                raise DefinitionError(
                    f"view {batch[0]!r} reads a batch source, not a stream",
                    fix="`headwater stream` runs views whose source is a KafkaSource; use "
                    "`headwater run` for the others",
                )
        if not selected:
            raise DefinitionError(
                "no feature view in this project reads a streaming source",
                fix="declare a view over a KafkaSource, or use `headwater run` for batch sources",
            )
        options = options or StreamOptions()
        if until_caught_up:
            options.until_caught_up = True
        return run_streams(self.config, selected, options)

    def reset_stream(self, views: Sequence[str]) -> dict[str, int]:
        """Forget the saved offsets and window state of streaming ``views`` (the next
        ``stream`` starts them from the beginning of their topics)."""
        from headwater.engines.streaming.checkpoint import schema_checkpoint

        forgotten = {}
        for view in self._select(views):
            forgotten[view.name] = self.registry.reset_stream(view.name)
            self.registry.delete_checkpoint(schema_checkpoint(view.name))
        return forgotten

    # ------------------------------------------------------------------ retrieval
    def _schema(self, view: str) -> pa.Schema:
        schema = self.registry.schema(view)
        if schema is None:
            raise NotFound(f"view {view!r} has not been applied", fix="run `headwater apply`")
        return schema

    def get_online_features(
        self,
        features: list[str],
        entity_rows: list[dict[str, Any]],
        *,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """Latest feature values for each entity row (null past the view's ttl)."""
        import pyarrow as pa

        from headwater.engines.keys import online_entity_rows
        from headwater.engines.retrieval import OnlineResponse, parse_refs

        grouped = parse_refs(features, self.definitions.views)
        schemas = {name: self._schema(name) for name in grouped}
        entity_rows, types = online_entity_rows(
            entity_rows, [(self.view(name), schemas[name]) for name in grouped]
        )
        key_names: list[str] = []
        for row in entity_rows:
            key_names += [k for k in row if k not in key_names]
        now_ms = int(time.time() * 1000)
        columns: dict[str, pa.Array] = {}
        for key in key_names:
            columns[key] = pa.array(
                [row.get(key) for row in entity_rows], type=types.get(key, (None, ""))[0]
            )
        for view_name, names in grouped.items():
            view = self.view(view_name)
            schema = schemas[view_name]
            keys = [tuple(row.get(k) for k in view.join_keys) for row in entity_rows]
            stored = self.online.read(view, keys)
            ttl = view.ttl_ms
            for name in names:
                values = []
                for item in stored:
                    fresh = item is not None and (ttl is None or item.event_ts_ms >= now_ms - ttl)
                    values.append(item.values.get(name) if fresh and item else None)
                out = f"{view_name}__{name}" if full_feature_names else name
                if out in columns:
                    raise DefinitionError(
                        f"feature name {out!r} appears twice in the result",
                        fix="pass full_feature_names=True",
                    )
                columns[out] = pa.array(values, type=schema.field(name).type)
        return OnlineResponse(pa.table(columns))

    def get_historical_features(
        self,
        entity_df: Any,
        features: list[str],
        *,
        full_feature_names: bool = False,
        versions: Mapping[str, int] | None = None,
    ) -> RetrievalJob:
        """A point-in-time correct training set for ``entity_df`` (keys + event_timestamp).

        Rows come from each view's active table version; ``versions`` (``{"view": 1}``) picks
        a kept earlier one instead, to reproduce a training set made before a definition
        change (the features asked must exist in that version).
        """
        from headwater.engines.base import FeatureRequest
        from headwater.engines.keys import coerce_table, key_types
        from headwater.engines.retrieval import RetrievalJob, resolve_refs, to_arrow_table
        from headwater.orchestration.versions import version_table

        order = resolve_refs(features, self.definitions.views)
        grouped: dict[str, list[str]] = {}
        for view_name, feature in order:
            grouped.setdefault(view_name, []).append(feature)
        pinned = dict(versions or {})
        for name in pinned:
            self.view(name)  # a known view
        requests = [
            FeatureRequest(
                self.view(name),
                names,
                self.offline.dataset(version_table(self.registry, name, pinned.get(name))),
                self._schema(name),
            )
            for name, names in grouped.items()
        ]
        entities = coerce_table(
            to_arrow_table(entity_df), key_types((r.view, r.schema) for r in requests)
        )
        table = self.engine.point_in_time_join(
            entities,
            requests,
            full_feature_names=full_feature_names,
            order=order,
        )
        return RetrievalJob(table)

    # ------------------------------------------------------------------ table versions
    def table_versions(self, view: str | None = None) -> list[TableVersion]:
        """The recorded offline table versions (of one view), by view and version."""
        return self.registry.table_versions(None if view is None else self.view(view).name)

    def prune(self, *, keep: int = 0, dry_run: bool = False) -> list[TableVersion]:
        """Remove old offline table versions: per view every retired version but the newest
        ``keep``, and every abandoned one (their tables, then their records). The active
        version and one being built are never removed. Returns what was (or, with
        ``dry_run``, would be) removed."""
        from headwater.errors import DefinitionError
        from headwater.orchestration.versions import remove

        if keep < 0:
            raise DefinitionError(f"prune --keep {keep}: a count of versions cannot be negative")
        chosen: list[TableVersion] = []
        by_view: dict[str, list[TableVersion]] = {}
        for version in self.registry.table_versions():
            by_view.setdefault(version.view, []).append(version)
        for versions in by_view.values():
            retired = [v for v in versions if v.status == "retired"]
            kept = retired[len(retired) - keep :] if keep else []
            chosen += [v for v in versions if v.status == "abandoned"]
            chosen += [v for v in retired if v not in kept]
        chosen.sort(key=lambda v: (v.view, v.version))
        if not dry_run:
            for version in chosen:
                remove(self.offline, self.registry, version)
        return chosen

    # ------------------------------------------------------------------ data quality
    def check(
        self,
        views: Sequence[str] | None = None,
        *,
        full: bool = False,
        on_step: Callable[[str], None] | None = None,
    ) -> list[QualityReport]:
        """Run the data-quality checks of ``views`` (all by default) on the rows their next run
        would read, writing nothing: a dry run for a new source. ``full`` reads sources from
        the start instead of from their cursors."""
        from headwater.orchestration.runner import Runner

        runner = Runner(self.config, self.registry, self.offline, self.engine)
        return [runner.check(view, full=full, on_step=on_step) for view in self._select(views)]

    def quality(
        self, view: str | None = None, *, run_id: str | None = None, runs: int = 1
    ) -> list[CheckRecord]:
        """Recorded check results: of the last ``runs`` runs of ``view`` (of every view when
        ``None``), or of one run by ``run_id``."""
        if run_id is not None:
            found_ids = self.registry.match_run_ids(run_id) if run_id else []
            if len(found_ids) != 1:
                raise NotFound(
                    f"--run {run_id!r}: "
                    + ("no run has this id" if not found_ids else "more than one run id starts so"),
                    fix="pass a run id shown by `headwater quality` or the dashboard "
                    "(a unique prefix of one is enough)",
                )
            return self.registry.check_results(run_id=found_ids[0])
        names = [self.view(view).name] if view else sorted(self.definitions.views)
        found: list[CheckRecord] = []
        for name in names:
            records = self.registry.check_results(name)
            latest = list(dict.fromkeys(r.run_id for r in records))[:runs]
            found += [r for r in records if r.run_id in latest]
        return found

    # ------------------------------------------------------------------ status
    def status(self) -> list[ViewStatus]:
        """Views with their last run, offline row count, newest event and materialization."""
        from headwater.orchestration.materialize import mark_checkpoint

        self.registry.abort_dead_runs()  # a run whose process died shows as aborted, not running
        result = []
        con = self.engine.connect()
        try:
            for view in self._select(None):
                rows, latest = 0, None
                dataset = self.offline.dataset(self.registry.serving_table(view.name))
                if dataset is not None:
                    con.register("__hw_status", dataset)
                    table = con.sql(
                        # Newest row already due: a window still open is not yet a value.
                        "SELECT count(*) AS n, max(event_timestamp) FILTER "
                        "(WHERE event_timestamp <= now()) AS latest FROM __hw_status"
                    ).to_arrow_table()
                    rows, latest = table["n"][0].as_py(), table["latest"][0].as_py()
                mark = self.registry.get_checkpoint(mark_checkpoint(view.name))
                last_run = self.registry.last_run(view.name, "run", status=None)
                result.append(
                    ViewStatus(
                        name=view.name,
                        shape=view.kind,
                        entity=view.entity.name,
                        source=view.source.name,
                        offline_rows=rows,
                        latest_event=latest,
                        last_run=last_run,
                        materialized_seq=None if mark is None else int(mark["seq"]),
                        quality=[]
                        if last_run is None
                        else self.registry.check_results(run_id=last_run.run_id),
                    )
                )
        finally:
            con.close()
        return result

    def close(self) -> None:
        """Release connections held by the stores and the PostgreSQL connection pools."""
        for name in ("online", "registry"):
            if name in self.__dict__:
                self.__dict__[name].close()
        if any(c.type == "postgres" for c in self.config.connections.values()):
            from headwater.connectors.postgres.pool import close_pools

            close_pools(self.config)

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
