"""The declarative objects users write: entities, sources, windows, aggregations, feature views,
sinks, checks and cleaning steps.

Every declaration is a frozen keyword-only dataclass that checks and normalises its fields in
``__post_init__``; this layer imports nothing of headwater but ``errors`` and ``sql``.
"""

from headwater.definitions.aggregations import (
    AGGREGATIONS,
    Aggregation,
    Avg,
    Count,
    CountDistinct,
    Last,
    Max,
    Min,
    Sum,
)
from headwater.definitions.entity import Entity
from headwater.definitions.feature_view import FeatureView
from headwater.definitions.kafka import KafkaSource
from headwater.definitions.redshift import RedshiftSource
from headwater.definitions.sinks import PostgresSink, RedshiftSink, Sink
from headwater.definitions.sources import FileSource, Source
from headwater.definitions.tables import PostgresSource, SqliteSource
from headwater.definitions.windows import Hopping, Tumbling, Window

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "Avg",
    "Count",
    "CountDistinct",
    "Entity",
    "FeatureView",
    "FileSource",
    "Hopping",
    "KafkaSource",
    "Last",
    "Max",
    "Min",
    "PostgresSink",
    "PostgresSource",
    "RedshiftSink",
    "RedshiftSource",
    "Sink",
    "Source",
    "SqliteSource",
    "Sum",
    "Tumbling",
    "Window",
]
