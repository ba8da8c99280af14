"""Kafka: the connection model, client settings and offsets, message decoding, dead letters, and
the batch read of a topic (the streaming engine lives in :mod:`headwater.engines.streaming`).

=================  ==========================================================================
``config``         :class:`KafkaConnection`, ``connections.<name>`` of ``type: kafka``
``client``         librdkafka settings, a source's connection, a topic's offsets
``decode``         messages to Arrow rows (JSON in bulk, Avro, raw), dead letters for the rest
``avro``           Avro payloads: inline writer schemas or the Confluent wire format
``schema``         declared Arrow type text, Avro schemas as Arrow, per-value checks
``letters``        :class:`DeadLetter` and the dead-letter topic
``source``         :class:`KafkaConnector`: ``headwater run`` over a topic, bounded
=================  ==========================================================================
"""
