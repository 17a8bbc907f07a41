"""Structured logs (one JSON object per line on stderr) and component counters."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from datetime import UTC, datetime

import orjson

_STD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        doc.update({k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(level: str = "INFO") -> None:
    """Configure the `streams` logger tree; called by the CLI, never at import time."""
    root = logging.getLogger("streams")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


class Telemetry:
    """received / sent / dropped / errors per component, the same words everywhere."""

    KINDS = ("received", "sent", "dropped", "errors")

    def __init__(self) -> None:
        self.counters: dict[str, Counter[str]] = {}

    def component(self, name: str) -> Counter[str]:
        c = self.counters.get(name)
        if c is None:
            c = self.counters[name] = Counter({k: 0 for k in self.KINDS})
        return c

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: dict(c) for name, c in self.counters.items()}
