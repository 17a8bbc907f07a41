"""Logging that cannot flood: the rate limit per kind of line, the summaries of what it held
back, and no tracebacks for errors of the environment (a full disk, a reset connection)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from streams.telemetry import JsonFormatter, LogSetup, RateLimit, setup_logging


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record(msg: str, level: int = logging.WARNING, listener: str | None = None, exc: BaseException | None = None,
           **extra) -> logging.LogRecord:
    rec = logging.LogRecord("streams.ingest", level, __file__, 1, msg, ("x",) if "%s" in msg else (),
                            (type(exc), exc, exc.__traceback__) if exc else None)
    if listener:
        rec.listener = listener
    rec.__dict__.update(extra)
    return rec


def test_a_burst_passes_then_the_rest_is_counted_and_reported_with_the_next_line():
    clock = Clock()
    limit = RateLimit(interval=60, burst=3, clock=clock)
    passed = [limit.filter(record("bad frame: %s", listener="riemann_tcp")) for _ in range(1000)]
    assert passed.count(True) == 3 and limit.suppressed == 997
    # another kind (another listener, another message) has its own budget
    assert limit.filter(record("bad frame: %s", listener="riemann_udp"))
    assert limit.filter(record("connection refused: %s", listener="riemann_tcp"))
    clock.t = 61
    nxt = record("bad frame: %s", listener="riemann_tcp")
    assert limit.filter(nxt) and nxt.suppressed == 997


def test_flush_reports_what_was_held_back_once_the_interval_ended():
    clock = Clock()
    limit = RateLimit(interval=10, burst=1, clock=clock)
    for _ in range(50):
        limit.filter(record("disk full: %s"))
    assert limit.flush() == []          # the interval has not ended
    clock.t = 10
    (summary,) = limit.flush()
    assert summary.suppressed == 49 and summary.getMessage() == "disk full: x"
    assert limit.flush() == []          # said once
    for _ in range(3):
        limit.filter(record("disk full: %s"))
    (last,) = limit.flush(final=True)   # at exit, whether or not the interval ended
    assert last.suppressed == 2


def test_debug_and_unlimited_lines_always_pass():
    limit = RateLimit(interval=60, burst=1, clock=Clock())
    assert all(limit.filter(record("trace", logging.DEBUG)) for _ in range(10))
    assert all(limit.filter(record("ready", logging.INFO, unlimited=True)) for _ in range(10))


def test_an_os_error_is_logged_without_its_traceback_a_bug_with_it():
    limit = RateLimit(clock=Clock())
    fmt = JsonFormatter()
    try:
        raise OSError(28, "No space left on device")
    except OSError as e:
        disk = record("write failed", exc=e)
    try:
        raise KeyError("bug")
    except KeyError as e:
        bug = record("handler failed", exc=e)
    assert limit.filter(disk) and limit.filter(bug)
    d, b = json.loads(fmt.format(disk)), json.loads(fmt.format(bug))
    assert "exc" not in d and d["errno"] == 28 and "No space left" in d["error"]
    assert "Traceback" in b["exc"]


@pytest.fixture
def restore_logging():
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in ("streams", "asyncio")}
    yield
    for n, (handlers, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.propagate = propagate
    LogSetup.handler = LogSetup.limit = None


def test_asyncio_lines_go_through_the_same_json_handler_and_limit(restore_logging, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    setup_logging("INFO", interval=60, burst=2)
    for _ in range(100):   # asyncio's accept loop on EMFILE: one line per failed accept
        logging.getLogger("asyncio").error("socket.accept() out of system resource",
                                           exc_info=OSError(24, "Too many open files"))
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == 2 and all(x["logger"] == "asyncio" and "exc" not in x for x in lines)
    assert LogSetup.limit is not None and LogSetup.limit.suppressed == 98


def test_the_count_held_back_is_said_at_exit(restore_logging, monkeypatch, tmp_path):
    """A command that ends within the interval still says how many lines it held back."""
    from streams.cli import main
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    missing = [str(tmp_path / f"gone{i}.log") for i in range(12)]
    main(["parse", *missing])
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    about = [x for x in lines if "gone" in x["msg"]]
    assert len(about) == 6 and about[-1]["suppressed"] == 7, about
