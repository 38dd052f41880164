"""Structured logs: every session's lines carry its id; `json` gives one JSON object per line.

Only ids, counts, states and timings are logged: never an image, a crop or face data.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS}
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in sorted(fields.items()))
        return text


def configure_logging(log_format: str, level: str) -> None:
    """Root logging to stderr in the chosen format; aiortc/aioice stay at WARNING (they are chatty)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class SessionLogger(logging.LoggerAdapter):
    """A logger whose every line carries `session=<id>` (merged with the call's own `extra`)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def session_logger(name: str, session_id: str) -> SessionLogger:
    return SessionLogger(logging.getLogger(name), {"session": session_id})


class DropReport:
    """A warning about dropped items at most once per `interval` seconds, with the number dropped since
    the last one: during a long outage items are dropped one at a time, and a line each would flood the
    log. The first drop is always said at once."""

    def __init__(self, log: logging.Logger, message: str, interval: float = 60.0) -> None:
        """`message`: a %-format whose last placeholder is the number dropped since the last line."""
        self._log = log
        self._message = message
        self._interval = interval
        self._unsaid = 0
        self._said_at: float | None = None

    def add(self, number: int, *args: object) -> None:
        self._unsaid += number
        now = time.monotonic()
        if self._said_at is None or now - self._said_at >= self._interval:
            self._log.warning(self._message, *args, self._unsaid)
            self._unsaid = 0
            self._said_at = now
