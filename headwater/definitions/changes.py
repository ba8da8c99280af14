"""What a definition change changes: a field-level diff of two specs, each field classified by
whether it alters the rows a view computes.

A view's computed rows depend on its features, window, transforms, entity and keys, and on its
source (what is read, its timestamp field, its options). They do not depend on its ``ttl``
(applied when values are read), its description, tags or owner, whether it is served online,
or its warehouse sinks (loaded from the computed rows). Checks change rows only when their
severity is ``quarantine`` (rows set aside); ``warn`` and ``fail`` checks never alter a row.
Any field not named here is taken to change rows: a safe default for fields added later.

The *rows fingerprint* of a view hashes only the row-changing parts of its spec and of its
source's spec: two definitions with the same fingerprint compute the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

ROW_NEUTRAL = frozenset(
    {"description", "tags", "owner", "ttl_ms", "online", "offline", "sinks", "version"}
)
"""Spec fields whose change leaves the computed rows as they are."""


@dataclass(frozen=True, kw_only=True)
class FieldChange:
    """One changed field of a definition: ``path`` (``window``, ``features.amount_sum``),
    the old and new values (``None`` when absent) and whether it changes computed rows."""

    path: str
    old: Any
    new: Any
    changes_rows: bool

    def describe(self) -> str:
        """``path: old → new`` with compact JSON values."""
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The fields that differ between two specs of one definition, in key order (a mapping
    value, or a list of named items, is compared item by item, so ``features.x`` names the
    feature)."""
    found: list[FieldChange] = []
    for key in sorted(set(old) | set(new)):
        before, after = _by_name(old.get(key)), _by_name(new.get(key))
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            for sub in sorted(set(before) | set(after)):
                if before.get(sub) != after.get(sub):
                    changes = _changes_rows(key, before.get(sub), after.get(sub))
                    found.append(
                        FieldChange(
                            path=f"{key}.{sub}",
                            old=before.get(sub),
                            new=after.get(sub),
                            changes_rows=changes,
                        )
                    )
            continue
        found.append(
            FieldChange(
                path=key, old=before, new=after, changes_rows=_changes_rows(key, before, after)
            )
        )
    return found


def _by_name(value: Any) -> Any:
    """A list of named items (aggregations, checks, steps) as ``{name: item}``, so that a diff
    names the item that changed; other values as they are."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in value)
    ):
        names = [v["name"] for v in value]
        if len(set(names)) == len(names):
            return {v["name"]: v for v in value}
    return value


def rows_part(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a spec that decides the rows computed from it."""
    part = {k: v for k, v in spec.items() if k not in ROW_NEUTRAL}
    if "checks" in part:
        part["checks"] = _row_checks(part["checks"])
        if not part["checks"]:  # no checks that set rows aside: as if there were none
            del part["checks"]
    return part


def rows_fingerprint(view_spec: dict[str, Any], source_spec: dict[str, Any] | None) -> str:
    """A short hash of what decides a view's rows: its spec's and its source's row parts."""
    text = json.dumps(
        {"view": rows_part(view_spec), "source": rows_part(source_spec or {})},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _changes_rows(key: str, before: Any, after: Any) -> bool:
    if key in ROW_NEUTRAL:
        return False
    if key == "checks":
        return _row_checks(_as_list(before)) != _row_checks(_as_list(after))
    return True


def _as_list(value: Any) -> list[Any]:
    """Checks as a list, whether given as one, by name (:func:`_by_name`), one alone or none."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return list(value.values())
    return [value]


def _row_checks(checks: Any) -> list[Any]:
    """The checks that set rows aside (``quarantine``): the only ones that alter rows."""
    if not isinstance(checks, list):
        return []
    return [c for c in checks if not isinstance(c, dict) or c.get("severity") == "quarantine"]


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= 120 else text[:117] + "..."
