"""Source connectors, registered by source kind in :mod:`headwater.plugins`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.connectors.base import SourceConnector
    from headwater.definitions import Source


def open_connector(source: Source, project: ProjectConfig) -> SourceConnector:
    """The connector for ``source.kind`` (built-in, or from the ``headwater.connectors`` group)."""
    cls: Any = load_plugin("headwater.connectors", source.kind)
    connector: SourceConnector = cls(source, project)
    return connector
