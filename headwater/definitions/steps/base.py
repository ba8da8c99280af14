"""The base of every cleaning step, the fit range of fitted steps, and the rules for a view's
``transforms=``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION
from headwater.definitions.sources import Source
from headwater.definitions.specs import jsonable
from headwater.errors import DefinitionError

Value = int | float | str | bool | date | datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class FitRange:
    """A training period ``[start, end)`` of the source's event time, in epoch milliseconds."""

    start_ms: int
    end_ms: int

    @classmethod
    def parse(cls, fit: object, label: str) -> FitRange:
        """The range of ``fit=(start, end)``: dates, datetimes (naive = UTC), ISO text or ints
        of epoch milliseconds.

        Raises:
            DefinitionError: ``fit`` is missing, not a pair, not instants, or empty.
        """
        if fit is None:
            raise missing_fit(label)
        if isinstance(fit, str | bytes) or not isinstance(fit, Sequence) or len(fit) != 2:
            raise DefinitionError(
                f"{label}: fit={fit!r} is not a (start, end) pair",
                fix='fit=("2024-01-01", "2024-07-01")',
            )
        start, end = (_instant(v, label) for v in fit)
        if start >= end:
            raise DefinitionError(f"{label}: fit range {fit!r} is empty", fix="start before end")
        return cls(start_ms=start, end_ms=end)

    def to_spec(self) -> list[str]:
        return [_iso(self.start_ms), _iso(self.end_ms)]


def missing_fit(label: str) -> DefinitionError:
    """The error for a fitted step declared without its training range."""
    return DefinitionError(
        f"{label} needs fit=(start, end): the training range its statistics are computed on",
        fix='fit=("2024-01-01", "2024-07-01") — statistics from one batch would leak',
    )


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of every cleaning step.

    A kind sets ``kind`` (its name in specs and messages), declares its own fields, checks and
    normalises them in ``__post_init__`` (after calling this one) and returns them from
    ``params()``. Class attributes
    say how a step behaves: ``STREAMING`` — it gives the same rows when applied to each
    micro-batch as when applied to the whole batch (row-level steps).
    """

    kind: ClassVar[str] = ""
    STREAMING: ClassVar[bool] = True

    def __post_init__(self) -> None:
        """Nothing to check here; a kind checks its fields after calling this."""

    @property
    def label(self) -> str:
        """How messages name the step: ``clip(amount)``."""
        return f"{self.kind}({', '.join(self.inputs)})"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the step reads (they must exist when it runs)."""
        return ()

    @property
    def removes(self) -> tuple[str, ...]:
        """The columns the step takes away (renamed, dropped, pivoted or unpivoted)."""
        return ()

    @property
    def fit(self) -> FitRange | None:
        """The training range of a step whose statistics are fitted once and stored."""
        return None

    @property
    def per_run_statistics(self) -> bool:
        """True when the step computes statistics over the rows of each run (no ``fit=``)."""
        return False

    @property
    def streaming(self) -> bool:
        """Whether the step means the same applied per micro-batch (see ``STREAMING``)."""
        return self.STREAMING and not self.per_run_statistics

    def params(self) -> dict[str, Any]:
        return {}

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (recorded with the view; never holds a secret)."""
        return {"kind": self.kind} | {k: jsonable(v) for k, v in self.params().items()}


# ---------------------------------------------------------------------- field checks
def column_name(column: object, kind: str) -> str:
    """``column`` if it is a column name, else an error naming the step's kind."""
    if not isinstance(column, str) or not column.strip():
        raise DefinitionError(
            f"{kind}: {column!r} is not a column name", fix=f'{kind}("amount", ...)'
        )
    return column


def column_names(names: object, kind: str, required: str | None = None) -> tuple[str, ...]:
    """Distinct column names from a lone name, a list or None (empty); ``required`` names the
    argument that needs at least one."""
    if names is None:
        names = ()
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, Sequence):
        raise DefinitionError(f"{kind}: {names!r} is not a list of columns", fix='["order_id"]')
    found = tuple(column_name(n, kind) for n in names)
    if required and not found:
        raise DefinitionError(f"{kind} needs at least one column in {required}=", fix='["id"]')
    if len(set(found)) != len(found):
        raise DefinitionError(f"{kind}: a column is named twice in {list(found)}", fix="once")
    return found


def plain_value(value: object, label: str) -> Value:
    """``value`` if it is a number, text, boolean, date or datetime (not NaN)."""
    if isinstance(value, bool | int | float | str | date | datetime):
        if isinstance(value, float) and value != value:  # NaN
            raise DefinitionError(f"{label}: NaN is not a value to use", fix="use a number")
        return value
    raise DefinitionError(
        f"{label}: {value!r} is not a number, string, date or timestamp", fix="use a plain value"
    )


# ---------------------------------------------------------------------- views and steps
def step_list(
    steps: object, view: str, source: Source, join_keys: Sequence[str]
) -> tuple[Step, ...]:
    """Validate the ``transforms=`` of a view (at definition time): a list of steps that keep
    the columns the view's source needs (event time, created time, cursor, primary key, Kafka
    partition and offset) and its join keys."""
    if steps is None:
        return ()
    if isinstance(steps, Step):
        steps = [steps]
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise DefinitionError(
            f"view {view!r}: transforms must be a list of steps, not {type(steps).__name__}",
            fix='transforms=[transforms.fill_null("amount", 0), transforms.drop("ssn")]',
        )
    found: list[Step] = []
    for position, item in enumerate(steps, start=1):
        if not isinstance(item, Step):
            hint = (
                f"decorate {getattr(item, '__name__', 'the function')} with @transforms.python"
                if callable(item)
                else "build steps with headwater.transforms: dedupe, fill_null, clip, ..."
            )
            raise DefinitionError(
                f"view {view!r}: transform {position} ({item!r}) is not a cleaning step", fix=hint
            )
        found.append(item)
    kept: dict[str | None, str] = {
        source.timestamp_field: "its source's timestamp_field",
        source.created_timestamp_field: "its source's created_timestamp_field",
        getattr(source, "cursor_field", None): "its source's cursor_field",
        **{key: "its source's primary_key" for key in source.primary_key},
        **{key: "a join key of its entity" for key in join_keys},
    }
    kept.pop(None, None)
    if source.kind == "kafka":
        for column in (KAFKA_PARTITION, KAFKA_OFFSET):
            kept[column] = "the message's place in its topic (dead letters name it)"
    for position, step in enumerate(found, start=1):
        for column in step.removes:
            if column in kept:
                raise DefinitionError(
                    f"view {view!r}: transform {position} ({step.label}) removes column "
                    f"{column!r}, which the view needs as {kept[column]}",
                    fix="keep the column (cast, fill or hash it in place instead), or change "
                    "the view's source or entity",
                )
    return tuple(found)


def step_key(steps: Sequence[Step], index: int) -> str:
    """Identity of the fitted statistics of ``steps[index]``: a digest of its spec and of every
    step before it (they shape the rows it is fitted on)."""
    specs = [s.to_spec() for s in steps[: index + 1]]
    text = json.dumps(specs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _instant(value: object, label: str) -> int:
    """Epoch milliseconds of a date, a datetime (naive = UTC), an ISO string or an int (ms)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise DefinitionError(
            f"{label}: {value!r} is not a date or a timestamp", fix='e.g. "2024-01-01"'
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
