"""Logging setup shared by every command: JSON lines or plain text on stderr."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from streams.settings import Settings

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Chatty at INFO about every connection and rebalance: their warnings still show,
# and everything at DEBUG.
_QUIET_LOGGERS = ("aiokafka", "kafka")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the ``extra`` fields and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _RECORD_FIELDS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _stream: object) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Send the root logger to stderr at ``settings.log_level`` in ``settings.log_format``.

    Calling it again replaces its own handler and leaves other handlers alone.
    """
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    level = logging.getLevelName(settings.log_level)
    quiet_level = level if level == logging.DEBUG else max(logging.WARNING, level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet_level)
