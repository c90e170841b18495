"""How every command logs: the one place that configures Python's logging.

``--log-level`` is what the command's own log (stderr) shows. The root logger itself is kept
at INFO at least, so that INFO records of any logger made while a run executes still reach the
handler that stores them with the run (``core.runlog``), DEBUG ones too at ``--log-level
DEBUG``; stderr shows only ``--log-level`` and above.

``--log-format json`` prints one JSON object per line for log pipelines: ``time``, ``level``,
``logger``, ``message``, the record's own attributes given through ``extra=`` (the worker's
``run_id``, ``workflow`` and ``action`` of a run's start and outcome; ``ctx.log``'s
``run_id``, ``workflow`` and ``step``), and ``exception`` with its traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from stepwise.core import runlog

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""The attributes every record has: anything else came through ``extra=``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str)


class _Settings:
    level = "WARNING"
    format = "text"
    handler: logging.Handler | None = None


def configure(*, level: str | None = None, log_format: str | None = None) -> None:
    """Apply ``level`` and/or ``log_format`` (the other one stays as last set)."""
    if level is not None:
        _Settings.level = level.upper()
    if log_format is not None:
        _Settings.format = log_format
    root = logging.getLogger()
    if _Settings.handler is not None:
        root.removeHandler(_Settings.handler)
    handler = logging.StreamHandler()
    handler.setLevel(_Settings.level)
    handler.setFormatter(JsonFormatter() if _Settings.format == "json" else _text())
    root.addHandler(handler)
    _Settings.handler = handler
    shown = logging.getLevelName(_Settings.level)
    root.setLevel(min(shown, logging.INFO))
    runlog.capture(min(shown, logging.INFO))


def _text() -> logging.Formatter:
    return logging.Formatter(TEXT_FORMAT)
