"""Which offline table a run writes and which one readers read: the view's table versions
(:mod:`headwater.stores.registry._versions`) seen from the pipeline.

A run writes the view's *building* version when there is one (``apply`` recorded a change that
alters rows, or the run is a ``--full-refresh``): the version's table is emptied first, the
source is read in full, and only once every write succeeded does the registry switch to it,
together with the source cursor. Otherwise the run writes the *active* version, as always.
Readers (training sets, ``materialize``, ``status``, sinks, streaming writes) use the active
version's table until the switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.definitions.changes import rows_fingerprint
from headwater.errors import DefinitionError, NotFound
from headwater.observability import get_logger
from headwater.stores.offline.tables import landing_table

log = get_logger("orchestration.versions")

if TYPE_CHECKING:
    from headwater.definitions import FeatureView
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.registry import Registry, TableVersion


@dataclass(frozen=True, kw_only=True)
class Target:
    """The table version a run writes.

    Attributes:
        view: the view under its table's name (what the offline store is handed).
        version: the table version.
        building: the version is built by this run (full read, switched to at the end).
    """

    view: FeatureView
    version: int
    building: bool


def fingerprint(view: FeatureView) -> str:
    """The rows fingerprint of ``view`` as defined in code."""
    return rows_fingerprint(view.to_spec(), view.source.to_spec())


def version_table(registry: Registry, view: str, version: int | None) -> str:
    """The table of ``view``'s ``version`` (``None``: the serving one).

    Raises:
        NotFound: no such version (never built, or pruned).
    """
    if version is None:
        return registry.serving_table(view)
    found = {v.version: v for v in registry.table_versions(view)}
    kept = sorted(n for n, v in found.items() if v.status in ("active", "retired"))
    if version not in kept:
        raise NotFound(
            f"view {view!r} has no table version {version} (kept: "
            f"{', '.join(map(str, kept)) or 'none'})",
            fix="pick a kept version (`headwater versions` lists them), or leave it out",
        )
    return found[version].table


def target(
    registry: Registry,
    offline: OfflineStore,
    view: FeatureView,
    *,
    full_refresh: bool,
    time_range: tuple[int, int] | None,
) -> Target:
    """The table version a run of ``view`` writes (see the module docstring); a version to
    build is emptied first, so a build never keeps rows of an earlier attempt. A backfill of a
    view whose new version is not built yet builds it whole (every period, hence its own):
    recomputing a period of the old definition would mix the two."""
    building = registry.building_version(view.name)
    if building is None and full_refresh and time_range is None:
        building = registry.start_version(view.name, fingerprint(view), "full refresh")
    if building is not None:
        if time_range is not None:
            log.warning(
                "the view's new table version is not built yet: the backfill builds it whole",
                extra={"fields": {"view": view.name, "version": building.version}},
            )
        offline.delete_view(building.table)
        offline.delete_view(landing_table(building.table))
        return Target(view=view.stored_as(building.table), version=building.version, building=True)
    active = registry.serving_version(view.name)
    if active is None:
        return Target(view=view, version=1, building=False)
    return Target(view=view.stored_as(active.table), version=active.version, building=False)


def finish(registry: Registry, run: Target, view: str, cursor: str, value: Any | None) -> None:
    """Commit a run's cursor ``value`` (``None``: nothing to commit); a built version is
    switched to in the same registry transaction (a build reads the source in full, so its
    cursor replaces the old version's, also when the source has none)."""
    if run.building:
        registry.activate_version(view, run.version, checkpoint=(cursor, value))
        log.info(
            "new table version built and switched to",
            extra={"fields": {"view": view, "version": run.version, "table": run.view.name}},
        )
    elif value is not None:
        registry.set_checkpoint(cursor, value)


def remove(offline: OfflineStore, registry: Registry, version: TableVersion) -> None:
    """Remove a retired or abandoned version: its tables first, then its record."""
    if version.status not in ("retired", "abandoned"):
        raise DefinitionError(
            f"view {version.view!r}: table version {version.version} is {version.status}",
            fix="only retired and abandoned versions are pruned",
        )
    offline.delete_view(version.table)
    offline.delete_view(landing_table(version.table))
    registry.forget_version(version.view, version.version)
