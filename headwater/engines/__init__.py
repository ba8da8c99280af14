"""Engines: batch engines (DuckDB today) and the streaming engine (:mod:`.streaming`).

Batch engines implement :class:`headwater.engines.base.BatchEngine` and are registered by
``engine.type`` in :data:`headwater.plugins.ENGINES` (third parties: the ``headwater.engines``
entry-point group); :func:`open_engine` opens the configured one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.engines.base import BatchEngine


def open_engine(project: ProjectConfig) -> BatchEngine:
    """The batch engine named by ``project.engine.type``, built for ``project``."""
    cls: Any = load_plugin("headwater.engines", project.engine.type)
    engine: BatchEngine = cls(project)
    return engine
