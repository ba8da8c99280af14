"""A view's privacy steps applied to what its source checks keep: quarantined rows, samples,
messages and logs.

Source checks run before the view's cleaning steps, on the rows as the source gave them. Rows
they set aside, and the values they quote, would otherwise keep what the view's
``transforms.hash``, ``transforms.mask`` and ``transforms.drop`` remove: the quarantine table
(and Delta's column statistics in ``_delta_log``), check results in the registry, ``headwater
quality`` and warning logs. :class:`Privacy` names the source columns those steps act on
(followed back through ``rename`` steps) and gives the SQL that protects them as the view does:
hashed with the same salt (so a quarantined row can still be matched with the stored ones),
masked alike, and a dropped column left out of quarantined rows and quoted as ``<dropped>``.

The salt is bound once into a temporary table of the run's connection and read from there: it
never appears in SQL text, as in the steps themselves (decision 16).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.definitions.steps import Drop, Hash, Mask, Rename
from headwater.errors import DefinitionError
from headwater.sql import hash_sql, mask_sql, sql_literal
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb

    from headwater.definitions import FeatureView

DROPPED = "<dropped>"
"""How a sample or a quarantine reason quotes a value of a column the view drops."""

_ids = itertools.count()


@dataclass(kw_only=True)
class Privacy:
    """The privacy steps of one view, by the source column they act on.

    Attributes:
        view: the view's name.
        steps: source column -> its ``hash`` and ``mask`` steps, in order.
        dropped: source columns the view drops.
        salts: the temporary table holding the salts (``None`` until :meth:`bind`).
    """

    view: str
    steps: dict[str, list[Hash | Mask]] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    salts: str | None = None
    _salt_columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, view: FeatureView) -> Privacy | None:
        """The privacy of ``view``, or ``None`` when it neither hashes, masks nor drops."""
        privacy = cls(view=view.name)
        origin: dict[str, str] = {}  # column name now -> the source column it came from
        for step in view.transforms:
            if isinstance(step, Rename):
                renamed = {new: origin.get(old, old) for old, new in step.names}
                for old, _ in step.names:
                    origin[old] = ""  # no longer a source column under this name
                origin.update(renamed)
            elif isinstance(step, Hash | Mask):
                source = origin.get(step.column, step.column)
                if source and source not in privacy.dropped:
                    privacy.steps.setdefault(source, []).append(step)
            elif isinstance(step, Drop):
                for column in step.columns:
                    source = origin.get(column, column)
                    if source:
                        privacy.dropped.add(source)
                        privacy.steps.pop(source, None)
        return privacy if privacy.steps or privacy.dropped else None

    @property
    def columns(self) -> set[str]:
        """Every source column this protects."""
        return set(self.steps) | self.dropped

    def bind(self, con: duckdb.DuckDBPyConnection) -> str:
        """Create the temporary table of the salts on ``con`` (once); return its name.

        Raises:
            DefinitionError: a salt's environment variable is unset (naming the variable).
        """
        if self.salts is not None:
            return self.salts
        envs = sorted(
            {s.salt_env for steps in self.steps.values() for s in steps if isinstance(s, Hash)}
        )
        name = f"__hw_salts{next(_ids)}"
        values = []
        for index, env in enumerate(envs):
            value = os.environ.get(env, "")
            if not value:
                raise DefinitionError(
                    f"view {self.view!r} hashes a column with the salt of the environment "
                    f"variable {env}, which is not set",
                    fix=f"export {env}=<the view's secret salt>",
                )
            values.append(value)
            self._salt_columns[env] = f"s{index}"
        select = ", ".join(f"CAST(${i + 1} AS VARCHAR) AS s{i}" for i in range(len(values)))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select or '1 AS s'}", values)
        self.salts = name
        return name

    def expr(self, column: str) -> str:
        """SQL of ``column`` as the view's steps leave it (call :meth:`bind` first)."""
        if column in self.dropped:
            return sql_literal(DROPPED)
        value = q(column)
        for step in self.steps.get(column, []):
            if isinstance(step, Hash):
                salt = f"(SELECT {self._salt_columns[step.salt_env]} FROM {self.salts})"
                value = hash_sql(value, salt)
            else:
                value = mask_sql(value, str(step.keep_last), sql_literal(step.char))
        return value

    def protected(self, columns: list[str]) -> str:
        """The ``* REPLACE (...)`` clause (or ``*``) protecting ``columns``' private ones."""
        private = [c for c in columns if c in self.columns]
        if not private:
            return "*"
        return f"* REPLACE ({', '.join(f'{self.expr(c)} AS {q(c)}' for c in private)})"

    def kept(self, columns: list[str]) -> list[str]:
        """``columns`` without the dropped ones: what a quarantined row keeps."""
        return [c for c in columns if c not in self.dropped]
