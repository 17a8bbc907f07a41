"""The listeners' resource budget, in process over real sockets: silent sockets cannot lock
real senders out, an established session is not closed for its silence (and a RELP one is
told `serverclose` when we do close it), incomplete messages are bounded over a listener,
connections over all listeners are bounded by the descriptor budget, and a subscriber that
falls behind is dropped, not waited for."""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager

from streams.clock import ManualClock
from streams.config import ListenerConfig
from streams.event import Event
from streams.index.subscriptions import Subscriptions, TooManySubscribers
from streams.ingest.descriptors import Descriptors
from streams.ingest.relp import RelpListener
from streams.ingest.riemann import RiemannTcpListener
from streams.ingest.syslog import SyslogTcpListener
from streams.protocols.relp import build_frame
from streams.telemetry import Telemetry

OFFERS = b"relp_version=0\nrelp_software=test\ncommands=syslog"


class Sink:
    """A pipeline stand-in that takes everything at once and acks it."""

    index = None

    def __init__(self) -> None:
        self.records: list = []

    async def put(self, records: list) -> None:
        self.records += records
        for r in records:
            if r.ack is not None:
                r.ack(True)

    def offer(self, records: list) -> bool:
        self.records += records
        return True


def listener(cls, cfg: ListenerConfig, pipeline=None):
    return cls("t", cfg, pipeline or Sink(), Telemetry(), ManualClock(0.0))


async def closed_by_peer(loop, s: socket.socket, timeout: float = 5.0) -> bytes:
    """What the server sent before closing (b"" when it only closed); times out if it did not."""
    got = b""
    while True:
        chunk = await asyncio.wait_for(loop.sock_recv(s, 4096), timeout)
        if not chunk:
            return got
        got += chunk


def connect(lst) -> socket.socket:
    s = socket.create_connection((lst.host, lst.port))
    s.setblocking(False)
    return s


async def stop(lst) -> None:
    lst.close()
    await lst.stop_reading(1)
    await lst.finish(1)


@asynccontextmanager
async def running(cls, cfg: ListenerConfig, pipeline=None):
    """A started listener, stopped at the end (also when the scenario fails)."""
    lst = listener(cls, cfg, pipeline)
    await lst.start()
    try:
        yield lst
    finally:
        await stop(lst)


def test_a_full_listener_replaces_a_connection_that_never_spoke():
    """1,000 idle sockets used to lock real senders out for the idle timeout: now a new
    connection takes the place of one that has not started a session."""
    cfg = ListenerConfig(max_connections=2)

    async def scenario():
        async with running(SyslogTcpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            silent = connect(lst)
            await asyncio.sleep(0.05)
            talker = connect(lst)
            await loop.sock_sendall(talker, b"<13>Nov 24 00:00:00 h app: hello\n")
            await asyncio.sleep(0.05)
            newcomer = connect(lst)   # the listener is full: the silent one goes
            assert await closed_by_peer(loop, silent) == b""
            await loop.sock_sendall(newcomer, b"<13>Nov 24 00:00:01 h app: newcomer\n")
            await asyncio.sleep(0.1)
            stats = dict(lst.stats)
            for s in (talker, newcomer, silent):
                s.close()
        return stats, [r.text for r in lst.pipeline.records]

    stats, texts = asyncio.run(scenario())
    assert stats["evicted"] == 1 and stats["rejected"] == 0
    assert any("newcomer" in t for t in texts) and any("hello" in t for t in texts)


def test_a_full_listener_refuses_when_every_session_is_recent():
    cfg = ListenerConfig(max_connections=1, evict_idle_after=60)

    async def scenario():
        async with running(SyslogTcpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            talker = connect(lst)
            await loop.sock_sendall(talker, b"<13>hello\n")
            await asyncio.sleep(0.05)
            late = connect(lst)
            got = await closed_by_peer(loop, late)
            stats = dict(lst.stats)
            talker.close()
        return got, stats

    got, stats = asyncio.run(scenario())
    assert got == b"" and stats["rejected"] == 1 and stats["evicted"] == 0


def test_a_connection_that_starts_no_session_is_closed_after_the_greeting_timeout():
    cfg = ListenerConfig(greeting_timeout=0.2)

    async def scenario():
        async with running(RelpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            s = connect(lst)
            got = await closed_by_peer(loop, s)
            stats = dict(lst.stats)
            s.close()
        return got, stats

    got, stats = asyncio.run(scenario())
    assert got == b"" and stats["greeting_timeouts"] == 1


def test_an_established_session_is_not_closed_for_its_silence_by_default():
    """rsyslog does not reconnect until its next message: closing a quiet session held that
    message back (3.5 minutes in the report)."""
    cfg = ListenerConfig(greeting_timeout=0.1)   # the greeting timeout does not apply once it spoke

    async def scenario():
        async with running(RelpListener, cfg) as lst:
            r, w = await asyncio.open_connection(lst.host, lst.port)
            w.write(build_frame(1, "open", OFFERS))
            await w.drain()
            await r.readuntil(b"\n")
            await asyncio.sleep(0.5)           # five greeting timeouts of silence
            w.write(build_frame(2, "syslog", b"<13>late"))
            await w.drain()
            got = b""
            while not got.startswith(b"2 "):
                got = await asyncio.wait_for(r.readuntil(b"\n"), 5)
            w.close()
        return got, dict(lst.stats)

    got, stats = asyncio.run(scenario())
    assert got == b"2 rsp 6 200 OK\n" and stats["idle_closed"] == 0


def test_a_relp_session_we_close_is_told_serverclose_first():
    """Without the hint librelp does not notice the close until its next message, which then
    waits; with it, rsyslog reconnects at once (measured with the real omrelp: >60 s vs 1 s)."""
    cfg = ListenerConfig(idle_timeout=0.2)

    async def scenario():
        async with running(RelpListener, cfg) as lst:
            r, w = await asyncio.open_connection(lst.host, lst.port)
            w.write(build_frame(1, "open", OFFERS))
            await w.drain()
            await r.readuntil(b"\n")
            rest = await asyncio.wait_for(r.read(), 5)
            w.close()
        return rest, dict(lst.stats)

    rest, stats = asyncio.run(scenario())
    assert b"0 serverclose 0\n" in rest and stats["idle_closed"] == 1


def test_incomplete_messages_stay_under_the_listeners_buffer_budget():
    """Riemann frames may be 16 MiB: a client that announces big frames and trickles them
    must not make the listener hold that much per connection."""
    cfg = ListenerConfig(max_buffered=256 * 1024)

    async def scenario():
        async with running(RiemannTcpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            hog = connect(lst)
            await loop.sock_sendall(hog, (8 << 20).to_bytes(4, "big") + b"\x00" * (300 * 1024))   # never finished
            got = await closed_by_peer(loop, hog)
            stats, held = dict(lst.stats), lst.held
            hog.close()
        return got, stats, held

    got, stats, held = asyncio.run(scenario())
    assert stats["over_budget"] == 1 and held == 0 and got == b""


def test_connections_over_all_listeners_stay_within_the_descriptor_budget():
    """Each TCP listener holds at most its share of what the descriptor limit leaves: a flood
    on one never takes the descriptors of another, of the outputs or of /health."""
    descriptors = Descriptors(limit=116 + 10, reserve=10)   # room for 16 connections
    assert descriptors.budget == 16

    async def scenario():
        a = listener(SyslogTcpListener, ListenerConfig(max_connections=1000))
        b = listener(RiemannTcpListener, ListenerConfig(max_connections=1000))
        descriptors.apportion([a, b])
        for lst in (a, b):
            await lst.start()
        socks = [connect(a) for _ in range(20)]   # a flood on one listener
        await asyncio.sleep(0.3)
        other = connect(b)
        await asyncio.sleep(0.1)
        held = (len(a.connections), len(b.connections))
        problem = descriptors.problem()
        for s in [*socks, other]:
            s.close()
        for lst in (a, b):
            await stop(lst)
        return held, a.stats["evicted"], problem, (a.max_connections, b.max_connections)

    held, evicted, problem, shares = asyncio.run(scenario())
    assert shares == (8, 8) and held == (8, 1) and evicted == 12
    assert problem is None


def test_a_budget_near_full_is_a_health_problem():
    d = Descriptors(limit=100 + 10 + 10, reserve=10)

    class Lst:
        name, cfg, connections = "x", ListenerConfig(max_connections=100), set(range(15))
    d.apportion([Lst()])
    assert "descriptor budget" in (d.problem() or "")


def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_go_on():
    subs = Subscriptions(max_pending=5, max_subscribers=2)

    async def scenario():
        slow = subs.subscribe(lambda ev: True)
        fast = subs.subscribe(lambda ev: True)
        got = []
        for i in range(20):
            subs.publish(Event(host="h", service=f"s{i}"))
            got.append(await anext(fast))
        rest = [x async for x in slow]   # its stream ends: dropped, its backlog thrown away
        return got, rest

    got, rest = asyncio.run(scenario())
    assert len(got) == 20 and rest == [] and subs.dropped == 1 and len(subs) == 1


def test_subscribers_beyond_the_maximum_are_refused():
    subs = Subscriptions(max_subscribers=1)
    subs.subscribe(lambda ev: True)
    try:
        subs.subscribe(lambda ev: True)
    except TooManySubscribers:
        pass
    else:
        raise AssertionError("a second subscriber was taken")


def test_bytes_without_a_whole_message_do_not_start_a_session():
    """A byte now and then keeps no slot: a session starts, and stays young, by whole
    messages; a client trickling a line without its end is closed at the greeting timeout."""
    cfg = ListenerConfig(greeting_timeout=0.3)

    async def scenario():
        async with running(SyslogTcpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            s = connect(lst)
            for _ in range(10):
                try:
                    await loop.sock_sendall(s, b"x")
                except OSError:
                    break
                await asyncio.sleep(0.1)
            got = await closed_by_peer(loop, s)
            stats = dict(lst.stats)
            s.close()
        return got, stats, [r.text for r in lst.pipeline.records]

    got, stats, texts = asyncio.run(scenario())
    assert stats["greeting_timeouts"] == 1 and got == b""
    assert texts and set(texts[0]) == {"x"}   # what it sent is kept, as a truncated line


def test_over_the_buffer_budget_only_the_hog_is_closed():
    """The connection closed for holding the most no longer counts: the next small ones are
    not closed one after another while it is being closed."""
    cfg = ListenerConfig(max_buffered=1000)

    async def scenario():
        async with running(RelpListener, cfg) as lst:
            loop = asyncio.get_running_loop()
            hog = connect(lst)
            await loop.sock_sendall(hog, b"1 syslog 5000 " + b"x" * 2000)   # a frame never finished
            await closed_by_peer(loop, hog)
            small = []
            for _ in range(5):
                s = connect(lst)
                await loop.sock_sendall(s, b"1 syslog 50 " + b"y" * 10)
                small.append(s)
                await asyncio.sleep(0.05)
            stats, held, live = dict(lst.stats), lst.held, lst.live
            for s in [hog, *small]:
                s.close()
        return stats, held, live

    stats, held, live = asyncio.run(scenario())
    assert stats["over_budget"] == 1 and held == 5 * 10 and live == 5   # 10 bytes of data each


def test_http_replaces_only_slow_request_heads_and_stays_within_its_limit(monkeypatch):
    from streams.ingest import http

    monkeypatch.setattr(http, "SLOW_HEAD", 0.1)

    async def scenario():
        lst = http.HttpListener("http", ListenerConfig(max_connections=2), None, Telemetry(), ManualClock(0.0),
                                routes={"/health": lambda params: (200, {"status": "ok"})})
        await lst.start()
        slow = [connect(lst) for _ in range(2)]   # never send their request head
        await asyncio.sleep(0.2)
        burst = [connect(lst) for _ in range(20)]
        await asyncio.sleep(0.2)
        stats = dict(lst.stats)
        for s in [*slow, *burst]:
            s.close()
        lst.close()
        await lst.finish(1)
        return stats

    stats = asyncio.run(scenario())
    assert stats["evicted"] == 2 and stats["rejected"] == 18 and stats["connections"] <= 2


def test_a_stream_whose_client_vanishes_at_once_gives_its_slot_back():
    subs = Subscriptions(max_subscribers=2)
    from streams.ingest import http

    async def scenario():
        lst = http.HttpListener("http", ListenerConfig(), None, Telemetry(), ManualClock(0.0), routes={},
                                streams={"/stream": lambda params: (200, subs.subscribe(lambda ev: True))})
        await lst.start()
        for _ in range(4):   # send the request and reset the connection at once
            s = socket.create_connection((lst.host, lst.port))
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
            await asyncio.sleep(0.1)
        n = len(subs)
        lst.close()
        await lst.finish(1)
        return n

    assert asyncio.run(scenario()) == 0
