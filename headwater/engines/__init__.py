"""Engines: batch (DuckDB) today; Spark and streaming slot in beside it.

Batch engines are registered by ``engine.type`` in :data:`headwater.plugins.ENGINES` (third
parties: the ``headwater.engines`` entry-point group); :func:`open_engine` opens the configured
one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.engines.duckdb import DuckDBEngine


def open_engine(project: ProjectConfig) -> DuckDBEngine:
    """The batch engine named by ``project.engine.type``, built for ``project``."""
    cls: Any = load_plugin("headwater.engines", project.engine.type)
    engine: DuckDBEngine = cls(project)
    return engine
