"""The asyncio listeners of `streams.ingest`, in process, over real sockets on 127.0.0.1:
shutdown hand-over, connection limits, HTTP errors."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess

import pytest

from streams.clock import ManualClock
from streams.config import ListenerConfig, TlsListenerConfig
from streams.ingest.syslog import SyslogTcpListener
from streams.ingest.tls import SyslogTlsListener
from streams.telemetry import Telemetry


class BlockingPipeline:
    """A live pipeline stand-in whose put() waits while `gate` is clear (a full queue)."""

    index = None

    def __init__(self) -> None:
        self.records: list = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def put(self, records: list) -> None:
        if records:
            self.entered.set()
            await self.gate.wait()
            self.records += records

    def offer(self, records: list) -> bool:
        self.records += records
        return True


def listener(cls, pipeline, cfg=None):
    return cls("t", cfg or ListenerConfig(), pipeline, Telemetry(), ManualClock(0.0))


def test_stop_reading_hands_over_bytes_read_while_the_queue_was_full():
    """At shutdown a syslog TCP reader blocked on a full queue must still hand over what
    the socket already delivered to it: the sender took those bytes as sent."""

    async def scenario() -> list[str]:
        p = BlockingPipeline()
        lst = listener(SyslogTcpListener, p)
        await lst.start()
        _, w = await asyncio.open_connection(lst.host, lst.port)
        w.write(b"<13>first\n")
        await w.drain()
        await asyncio.wait_for(p.entered.wait(), 5)   # the reader now waits for room
        w.write(b"<13>second\n<13>third\n")
        await w.drain()
        await asyncio.sleep(0.2)                       # read by the stream, not yet by serve()
        lst.close()
        stopping = asyncio.ensure_future(lst.stop_reading(5))
        await asyncio.sleep(0.05)
        p.gate.set()                                   # the worker makes room
        await stopping
        await lst.finish(2)
        w.close()
        return [r.text for r in p.records]

    assert asyncio.run(scenario()) == ["<13>first", "<13>second", "<13>third"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = "the `openssl` command is not installed (Debian package openssl)"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI is set, so this is a failure", pytrace=False)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("tls-cert")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    return crt, key


def test_tls_handshakes_count_against_max_connections_and_a_stalled_one_makes_room(cert):
    """max_connections bounds the sockets a TLS listener holds, handshakes included; when it
    is reached a new connection replaces the oldest one stalled in its handshake (refusing
    the newcomer locked real senders out while silent sockets held every slot)."""
    cfg = TlsListenerConfig(max_connections=2, cert_file=cert[0], key_file=cert[1])

    async def scenario() -> tuple[dict, bytes, int]:
        lst = listener(SyslogTlsListener, BlockingPipeline(), cfg)
        await lst.start()
        loop = asyncio.get_running_loop()
        silent = []
        for _ in range(3):   # plain TCP, no ClientHello: stuck in the handshake
            s = socket.create_connection((lst.host, lst.port))
            s.setblocking(False)
            silent.append(s)
            await asyncio.sleep(0.05)
        # the first one is the oldest stalled handshake: closed to make room for the third
        got = await asyncio.wait_for(loop.sock_recv(silent[0], 10), 2)
        held = len(lst.handshaking)
        stats = dict(lst.stats)
        for s in silent:
            s.close()
        lst.close()
        await lst.finish(1)
        return stats, got, held

    stats, got, held = asyncio.run(scenario())
    assert got == b"" and stats["handshakes_evicted"] == 1 and stats["rejected"] == 0
    assert held == 2   # the second and the third are still in their handshake


def test_tls_handshakes_beyond_max_handshakes_replace_the_oldest(cert):
    cfg = TlsListenerConfig(max_handshakes=2, cert_file=cert[0], key_file=cert[1])

    async def scenario() -> tuple[dict, list[bytes]]:
        lst = listener(SyslogTlsListener, BlockingPipeline(), cfg)
        await lst.start()
        loop = asyncio.get_running_loop()
        silent = []
        for _ in range(4):
            s = socket.create_connection((lst.host, lst.port))
            s.setblocking(False)
            silent.append(s)
            await asyncio.sleep(0.05)
        gone = [await asyncio.wait_for(loop.sock_recv(s, 10), 2) for s in silent[:2]]
        stats = dict(lst.stats) | {"handshaking": len(lst.handshaking)}
        for s in silent:
            s.close()
        lst.close()
        await lst.finish(1)
        return stats, gone

    stats, gone = asyncio.run(scenario())
    assert gone == [b"", b""] and stats["handshakes_evicted"] == 2 and stats["handshaking"] == 2


def test_http_handler_bug_answers_500():
    """A route that fails answers 500 to its client (as the module promises), not an empty reply."""
    from streams.ingest import http

    def broken(params):
        raise RuntimeError("boom")

    async def scenario() -> bytes:
        lst = http.HttpListener("http", ListenerConfig(), None, Telemetry(), ManualClock(0.0),
                                routes={"/health": broken})
        await lst.start()
        r, w = await asyncio.open_connection(lst.host, lst.port)
        w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await w.drain()
        got = await asyncio.wait_for(r.read(), 5)
        w.close()
        lst.close()
        await lst.finish(1)
        assert lst.stats["errors"] == 1
        return got

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_a_relp_client_waiting_for_its_acks_is_not_closed_as_idle():
    """rsyslog stops sending when its window is full of unacked messages; while our worker
    or sink is slow that silence is ours, not the client's: closing the session as idle
    would make it resend the whole window."""
    from streams.ingest.relp import RelpListener
    from streams.protocols.relp import build_frame

    offers = b"relp_version=0\nrelp_software=test\ncommands=syslog"

    async def scenario() -> tuple[bytes, int]:
        p = BlockingPipeline()
        p.gate.set()   # queued at once; the acks are what we hold back
        lst = listener(RelpListener, p, ListenerConfig(idle_timeout=0.2))
        await lst.start()
        r, w = await asyncio.open_connection(lst.host, lst.port)
        w.write(build_frame(1, "open", offers) + build_frame(2, "syslog", b"<13>hello"))
        await w.drain()
        await asyncio.sleep(0.6)                         # three idle timeouts, the ack owed
        idle_closed = lst.stats.get("idle_closed", 0)   # (once the ack is out, the client is idle)
        for rec in p.records:
            rec.ack(True)
        got = b""
        while not got.startswith(b"2 "):                 # after the open's (multi-line) answer
            got = await asyncio.wait_for(r.readuntil(b"\n"), 5)
        w.close()
        lst.close()
        await lst.finish(1)
        return got, idle_closed

    got, idle_closed = asyncio.run(scenario())
    assert got == b"2 rsp 6 200 OK\n" and idle_closed == 0


def test_every_udp_datagram_is_counted_empty_ones_too():
    from streams.ingest.syslog import SyslogUdpListener

    async def scenario() -> dict:
        p = BlockingPipeline()
        lst = listener(SyslogUdpListener, p)
        await lst.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for data in (b"", b"\n", b"  ", b"<13>hello"):
                s.sendto(data, (lst.host, lst.port))
        for _ in range(100):
            if lst.stats["received"] == 4:
                break
            await asyncio.sleep(0.01)
        lst.close()
        return dict(lst.stats) | {"records": len(p.records)}

    stats = asyncio.run(scenario())
    assert (stats["received"], stats["empty"], stats["records"]) == (4, 3, 1)


def test_riemann_events_sent_with_a_query_are_taken_as_riemann_does():
    """Riemann indexes the events of a message and answers its query; they used to be dropped."""
    from streams.event import Event
    from streams.ingest.riemann import NO_INDEX, RiemannTcpListener, RiemannUdpListener
    from streams.protocols.riemann import encode_msg, error_reply, frame

    msg = encode_msg(events=[Event(host="h1", service="cpu", metric=1.0, time=1.0)], query='service = "cpu"')

    async def scenario() -> tuple[bytes, list, list]:
        p = BlockingPipeline()
        p.gate.set()
        tcp = listener(RiemannTcpListener, p)
        udp = listener(RiemannUdpListener, p)
        await tcp.start()
        await udp.start()
        r, w = await asyncio.open_connection(tcp.host, tcp.port)
        w.write(frame(msg))
        await w.drain()
        reply = await asyncio.wait_for(r.readexactly(len(error_reply(NO_INDEX))), 5)
        tcp_records = list(p.records)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(msg, (udp.host, udp.port))
        for _ in range(100):
            if len(p.records) > len(tcp_records):
                break
            await asyncio.sleep(0.01)
        w.close()
        for lst in (tcp, udp):
            lst.close()
        await tcp.finish(1)
        return reply, tcp_records, p.records[len(tcp_records):]

    reply, by_tcp, by_udp = asyncio.run(scenario())
    assert reply == error_reply(NO_INDEX)   # the query's answer (no index in this test), not a bare ok
    assert [(r.event.host, r.event.service) for r in by_tcp] == [("h1", "cpu")]
    assert [(r.event.host, r.event.service) for r in by_udp] == [("h1", "cpu")]
