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
