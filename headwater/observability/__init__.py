"""Logs, metrics and redaction shared by every layer."""

from headwater.observability.logging import configure_logging, get_logger
from headwater.observability.redact import redact

__all__ = ["configure_logging", "get_logger", "redact"]
