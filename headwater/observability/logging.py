"""Structured logging: human-readable by default, JSON lines with ``HEADWATER_LOG_FORMAT=json``.

Every record may carry a ``run_id`` and other fields passed through ``extra={"fields": {...}}``;
messages and fields are redacted before they are written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from headwater.observability.redact import redact

_CONFIGURED = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update({k: redact(v) if isinstance(v, str) else v for k, v in fields.items()})
        if record.exc_info:
            payload["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        suffix = ""
        if isinstance(fields, dict) and fields:
            suffix = " " + " ".join(f"{k}={v}" for k, v in fields.items())
        text = f"{record.levelname.lower():7s} {record.name}: {record.getMessage()}{suffix}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Install headwater's handler on the ``headwater`` logger (idempotent)."""
    global _CONFIGURED
    logger = logging.getLogger("headwater")
    level = level or os.environ.get("HEADWATER_LOG_LEVEL", "WARNING")
    fmt = fmt or os.environ.get("HEADWATER_LOG_FORMAT", "text")
    if not _CONFIGURED:
        handler = logging.StreamHandler(sys.stderr)
        logger.addHandler(handler)
        logger.propagate = False
        _CONFIGURED = True
    for existing in logger.handlers:
        existing.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    logger.setLevel(level.upper())


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``headwater`` namespace."""
    return logging.getLogger(name if name.startswith("headwater") else f"headwater.{name}")
