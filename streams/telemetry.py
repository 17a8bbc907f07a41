"""Structured logs (one JSON object per line on stderr) and component counters.

Logging cannot flood: a hostile client or a full disk can make the same failure happen
thousands of times a second, and each log line would cost time and, on a full disk, space.
`RateLimit` lets through the first lines of each distinct failure (logger, level, message
template, listener) per interval and counts the rest; the next line of that kind, or
`flush()` at the end of the interval, says how many were held back (`suppressed`).
Tracebacks are for bugs: an `OSError` (a full disk, a reset connection, no descriptors
left) is an event of the environment, logged with its message and errno, no traceback.
asyncio's own logger (its accept loop logs every failed accept) goes through the same
handler.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

_STD = set(vars(logging.makeLogRecord({})))
LOGGERS = ("streams", "asyncio")   # the trees our handler serves
UNLIMITED = {"unlimited": True}   # `extra=` of a line the rate limit must let through (one per file...)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        doc.update({k: v for k, v in vars(record).items() if k not in _STD and k != "unlimited" and not k.startswith("_")})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class RateLimit(logging.Filter):
    """At most `burst` records per distinct kind per `interval` seconds; the others are
    counted and reported with the next record of their kind that passes, or by `flush()`.
    DEBUG records and records marked `extra={"unlimited": True}` always pass."""

    def __init__(self, interval: float = 60.0, burst: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._lock = threading.Lock()
        # kind -> [interval start, passed in it, held back since the last report, a sample record]
        self._kinds: dict[tuple, list] = {}
        self.suppressed = 0   # in all, for /metrics

    @staticmethod
    def kind(record: logging.LogRecord) -> tuple:
        return (record.name, record.levelno, str(record.msg), getattr(record, "listener", None))

    def filter(self, record: logging.LogRecord) -> bool:
        _plain_environment_error(record)
        if record.levelno <= logging.DEBUG or getattr(record, "unlimited", False):
            return True
        now = self.clock()
        key = self.kind(record)
        with self._lock:
            state = self._kinds.get(key)
            if state is None:
                if len(self._kinds) > 10_000:   # distinct kinds are few; never let the table grow
                    self._kinds.clear()
                state = self._kinds[key] = [now, 0, 0, None]
            elif now - state[0] >= self.interval:
                state[0], state[1] = now, 0
            if state[1] >= self.burst:
                state[2] += 1
                state[3] = record
                self.suppressed += 1
                return False
            state[1] += 1
            if state[2]:
                record.suppressed = state[2]   # held back since the last line of this kind
                state[2] = 0
        return True

    def flush(self, final: bool = False) -> list[logging.LogRecord]:
        """One record per kind with lines held back in an interval that has ended (every
        interval when `final`), saying how many (for the handler to emit)."""
        now = self.clock()
        out = []
        with self._lock:
            for state in self._kinds.values():
                if state[2] and (final or now - state[0] >= self.interval):
                    rec = logging.makeLogRecord(vars(state[3]))
                    rec.suppressed, rec.exc_info, rec.exc_text = state[2], None, None
                    rec.created = time.time()
                    out.append(rec)
                    state[0], state[1], state[2] = now, 0, 0
        return out


def _plain_environment_error(record: logging.LogRecord) -> None:
    """An OSError is reported with its message and errno, not a traceback."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError):
        record.exc_info, record.exc_text = None, None
        record.error = f"{type(exc).__name__}: {exc}"
        if exc.errno is not None:
            record.errno = exc.errno


class LogSetup:
    """The handler and rate limit `setup_logging()` installed (flushed periodically by `run`)."""

    handler: logging.Handler | None = None
    limit: RateLimit | None = None

    @classmethod
    def flush_suppressed(cls, final: bool = False) -> int:
        handler = cls.handler
        if handler is None or cls.limit is None:
            return 0
        held = cls.limit.flush(final)
        for rec in held:   # emitted past the filter: these are the summaries
            handler.acquire()
            try:
                handler.emit(rec)
            finally:
                handler.release()
        return len(held)


def setup_logging(level: str = "INFO", interval: float = 60.0, burst: int = 5) -> None:
    """Configure the `streams` and `asyncio` logger trees; called by the CLI, never at import time."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    limit = RateLimit(interval, burst)
    handler.addFilter(limit)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("streams").setLevel(level.upper())
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    LogSetup.handler, LogSetup.limit = handler, limit


def loop_exception_handler(loop, context: dict) -> None:
    """asyncio's unhandled errors (a failed accept, a callback that raised) as our log lines:
    rate limited, an OSError without its traceback."""
    exc = context.get("exception")
    extra = {k: str(v) for k, v in context.items() if k not in ("message", "exception")}
    logging.getLogger("asyncio").error("%s", context.get("message") or "unhandled error in the event loop",
                                       exc_info=exc, extra=extra)


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
