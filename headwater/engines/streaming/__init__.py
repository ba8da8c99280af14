"""The streaming engine: window state of partial aggregates, per Kafka partition, folded one
micro-batch at a time and finalised exactly as the batch engine computes a window."""
