"""The Carbon sink against a real carbon-cache (the session's `carbon` fixture): points over TCP
and UDP read back from the whisper files, a Graphite 1.1 tagged series, and a carbon restart in
the middle of a stream with nothing missing afterwards.

Timestamps are distinct seconds of the last minutes: `streams.*` keeps 1-second points."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import whisper

from streams.sinks.carbon import CarbonSettings, CarbonSink

from .servers import CarbonServer


def _metric(kind: str) -> str:
    return f"streams.test.carbon_sink.{kind}_{uuid.uuid4().hex[:8]}"


def _sink(carbon: CarbonServer, **kw) -> CarbonSink:
    base = {"host": carbon.host, "port": carbon.port, "backoff_initial": 0.05, "backoff_max": 0.5,
            "flush_seconds": 0.1}
    return CarbonSink(CarbonSettings(**{**base, **kw}))


def _balanced(st: dict[str, int]) -> bool:
    return st["received"] == st["sent"] + st["dropped"] + st["failed"] + st["buffered"]


def test_points_over_tcp_land_in_whisper(carbon: CarbonServer) -> None:
    base = int(time.time()) - 300
    metrics = [_metric("tcp") for _ in range(3)]
    sink = _sink(carbon, batch_size=25)
    for i in range(40):
        sink.send([(m, k * 1000 + i + 0.5, base + i) for k, m in enumerate(metrics)])
    assert sink.close(10)
    assert sink.stats["sent"] == 120 and sink.stats["failed"] == 0 and _balanced(sink.stats)
    for k, m in enumerate(metrics):
        got = carbon.wait_points(m, base - 1, base + 40, count=40)
        assert got == [(base + i, k * 1000 + i + 0.5) for i in range(40)]


def test_points_over_udp_land_in_whisper(carbon: CarbonServer) -> None:
    base = int(time.time()) - 200
    m = _metric("udp")
    sink = _sink(carbon, protocol="udp")
    sink.send([(m, float(i), base + i) for i in range(100)])   # ~4 datagrams of <= 1400 bytes
    assert sink.close(10)
    assert sink.stats["sent"] == 100 and sink.stats["batches"] >= 3
    got = carbon.wait_points(m, base - 1, base + 100, count=100)
    assert got == [(base + i, float(i)) for i in range(100)]


def test_a_tagged_series_is_stored_by_carbon(carbon: CarbonServer) -> None:
    """Graphite 1.1 tags: carbon stores `name;tag=value` under `_tagged/` by the sha256 of the
    series with its tags sorted (even with ENABLE_TAGS off, which only skips graphite-web's TagDB)."""
    ts = int(time.time()) - 100
    name = _metric("tagged")
    sink = _sink(carbon, tags=True)
    sink.send([(f"{name};host=mx1.example.org;dataset=postfix.log", 3.0, ts)])
    assert sink.close(10)
    series = f"{name};dataset=postfix.log;host=mx1.example.org"
    h = hashlib.sha256(series.encode()).hexdigest()
    f = carbon.data_dir / "_tagged" / h[:3] / h[3:6] / f"{h}.wsp"
    deadline = time.monotonic() + 15
    values: list = []
    while time.monotonic() < deadline:
        if f.exists():
            (start, _end, step), values = whisper.fetch(str(f), ts - 1, ts + 1)
            if 3.0 in values:
                break
        time.sleep(0.2)
    assert 3.0 in values


def test_carbon_restart_mid_stream_loses_nothing(carbon: CarbonServer) -> None:
    """One point every 100 ms for ~6 s; carbon stops and starts again after the first second.
    Every point is in whisper afterwards, and the stats show the reconnect and the resends."""
    n = 60
    base = int(time.time()) - 2 * n
    m = _metric("restart")
    sink = _sink(carbon)                      # confirm_seconds: 2 s
    restarter = threading.Thread(target=carbon.restart, name="carbon-restart")
    t0 = time.monotonic()
    for i in range(n):
        if i == 10:
            restarter.start()
        sink.send([(m, float(i), base + i)])
        time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
    restarter.join(60)
    assert not restarter.is_alive() and carbon.is_running()
    assert sink.close(30)
    st = sink.stats
    assert st["reconnects"] >= 1 and st["errors"] >= 1 and st["retried"] >= 1, st
    assert st["sent"] == n and st["dropped"] == 0 and st["failed"] == 0 and _balanced(st)
    got = carbon.wait_points(m, base - 1, base + n, count=n, timeout=30)
    assert got == [(base + i, float(i)) for i in range(n)]
