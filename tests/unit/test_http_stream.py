"""The HTTP listener's server-sent event stream, in process: a quiet stream stays open
across keepalives and still delivers what comes later; closing the listener ends it."""

from __future__ import annotations

import asyncio

from streams.clock import ManualClock
from streams.config import ListenerConfig
from streams.event import Event
from streams.index.subscriptions import Subscriptions
from streams.ingest import http
from streams.telemetry import Telemetry


def test_a_quiet_stream_survives_keepalives_and_delivers_later_events(monkeypatch):
    monkeypatch.setattr(http, "KEEPALIVE", 0.02)
    subs = Subscriptions()

    async def scenario() -> bytes:
        listener = http.HttpListener("http", ListenerConfig(), None, Telemetry(), ManualClock(0.0), routes={},
                                     streams={"/stream": lambda params: (200, subs.subscribe(lambda ev: True))})
        await listener.start()
        reader, writer = await asyncio.open_connection(listener.host, listener.port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        got = await reader.readuntil(b"\r\n\r\n")
        got += await reader.readuntil(b": keepalive\n\n")
        await asyncio.sleep(0.15)  # several keepalives pass with nothing to send
        assert len(subs) == 1
        subs.publish(Event(host="db1", service="backup", state="ok"))
        got += await asyncio.wait_for(reader.readuntil(b"\n\ndata: "), 5)  # keepalives, then the event
        got += await reader.readuntil(b"\n\n")
        listener.close()
        await listener.finish(5)
        assert len(subs) == 0  # the stream ended and unsubscribed
        writer.close()
        return got

    out = asyncio.run(scenario())
    assert b"text/event-stream" in out and out.count(b": keepalive") >= 2
    assert b'data: {"host":"db1","service":"backup","state":"ok"}' in out


def test_a_subscription_misses_no_update_made_before_its_first_read():
    """The HTTP route subscribes, then writes the response head before it reads the first
    event: an index update in between must reach the client (as the current state or as an
    update), not fall between the snapshot of the current entries and the subscription."""
    from streams.index import TTLIndex
    from streams.index.feed import IndexFeed
    from streams.index.service import IndexService

    clock = ManualClock(100.0)
    service = IndexService(TTLIndex(clock), IndexFeed(), clock)
    service.observe(Event(host="db1", service="backup", state="ok", time=100.0), {}, 100.0)

    async def scenario() -> list[dict]:
        stream = service.subscribe('service = "backup"')
        service.observe(Event(host="db1", service="backup", state="critical", time=101.0), {}, 101.0)
        got = [await anext(stream)]
        while True:
            try:
                got.append(await asyncio.wait_for(anext(stream), 0.05))
            except TimeoutError:
                break
        await stream.aclose()
        assert len(service.subscriptions) == 0
        return got

    got = asyncio.run(scenario())
    assert got[-1]["state"] == "critical"


def test_a_query_sent_as_raw_utf8_reads_as_utf8():
    """curl sends `?q=host="münchen"` as raw UTF-8 bytes, not percent-encoded: the query
    must read as the client wrote it, as its percent-encoded form does."""
    seen = []
    listener = http.HttpListener("http", ListenerConfig(), None, Telemetry(), ManualClock(0.0),
                                 routes={"/query": lambda params: (seen.append(params["q"]), (200, {}))[1]})
    listener._route('GET /query?q=host="münchen" HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
    listener._route(b"GET /query?q=host=%22m%C3%BCnchen%22 HTTP/1.1\r\nHost: x\r\n\r\n")
    listener._route(b"GET /query?q=host=%22m\xfcnchen%22 HTTP/1.1\r\nHost: x\r\n\r\n")  # not UTF-8: as before
    assert seen == ['host="münchen"', 'host="münchen"', 'host="münchen"']
