"""Source connectors, registered by source kind and imported lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.connectors.base import SourceConnector
    from headwater.definitions import Source

CONNECTORS: dict[str, str] = {
    "file": "headwater.connectors.files:FileConnector",
    "kafka": "headwater.connectors.kafka.source:KafkaConnector",
    "postgres": "headwater.connectors.postgres.reader:PostgresConnector",
    "redshift": "headwater.connectors.redshift.source:RedshiftConnector",
    "sqlite": "headwater.connectors.sqlite:SqliteConnector",
}


def open_connector(source: Source, project: ProjectConfig) -> SourceConnector:
    """The connector for ``source.kind`` (built-in, or from the ``headwater.connectors`` group)."""
    cls: Any = load_plugin("headwater.connectors", CONNECTORS, source.kind)
    connector: SourceConnector = cls(source, project)
    return connector
