"""What every listener shares: binding, the resource budget, clean stop.

A TCP listener owns an `asyncio` server; each accepted socket becomes a `Connection`
whose `serve()` (one per protocol) loops over `read()`. `read()` returns b"" at EOF, after
a timeout, on a socket error, when the connection is evicted and once the listener is
stopping, so every protocol loop ends the same way. A connection's exception is logged and
counted; it never reaches the other connections.

The budget (`ListenerConfig`; README "Limits and hardening"): connections per listener and,
through `Descriptors`, over all listeners; time to start a session (`greeting_timeout`);
no close of an established session for silence unless `idle_timeout` is set (TCP
keepalive finds dead peers); when full, a new connection replaces one that has not started
a session or one long silent, so idle sockets cannot lock real senders out; time a client
may leave our replies unread (`send_timeout`); bytes held in incomplete messages
(`max_buffered`, over the listener's connections).

Stopping (graceful shutdown) goes in two steps, so that nothing already read is lost:
`close()` stops accepting; `stop_reading()` pauses every socket and ends its reader with
EOF, so each protocol loop hands over what it had already read and returns; then the
caller drains the pipeline (RELP acks go out), and `finish()` lets the protocols say
goodbye (RELP `serverclose`) and closes the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from ..clock import Clock
from ..config import ListenerConfig
from ..pipeline.live import LivePipeline
from ..telemetry import Telemetry

log = logging.getLogger("streams.ingest")

READ_SIZE = 64 * 1024
# asyncio's reader pauses the socket beyond twice this: at most ~128 KiB read ahead per connection
STREAM_LIMIT = 64 * 1024
# dead peers of established sessions (which are never closed for silence) are found by the kernel
KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


def peer_text(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


def keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in KEEPALIVE:
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class Listener:
    """Common state: name, configuration, counters."""

    kind = "tcp"

    def __init__(self, name: str, cfg: ListenerConfig, pipeline: LivePipeline | None, telemetry: Telemetry,
                 clock: Clock) -> None:
        self.name = name
        self.cfg = cfg
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.clock = clock
        self.stats = telemetry.component(name)
        if pipeline is not None:
            self.stats.update(accepted=0, queued=0)
        self.host = cfg.host
        self.port: int | None = None
        # the configured limit, or this listener's share of the descriptors when smaller
        self.max_connections = cfg.max_connections

    def bound(self, sockname: Any) -> None:
        self.host, self.port = sockname[0], sockname[1]
        log.info("listening", extra={"listener": self.name, "transport": self.kind, "host": self.host,
                                     "port": self.port})

    async def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting (TCP) or receiving (UDP)."""

    async def stop_reading(self, timeout: float) -> None:
        """Let every connection hand over what it has read, and stop."""

    async def finish(self, timeout: float) -> None:
        """Say goodbye to the clients and close every connection."""


class Connection:
    """One accepted TCP socket. Its protocol calls `active()` for every read that completed
    a message: a session starts (RELP: its `open`) and stays young by whole messages, not by
    single bytes, which a client could trickle to keep an idle slot."""

    def __init__(self, listener: TcpListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.stats = listener.stats
        self.stopping = False
        self.done = asyncio.Event()       # serve() returned: everything read was handed over
        self.closed = asyncio.Event()     # the socket is closed
        self.detached = False             # the transport was given another protocol (RELP linger)
        self.opened = False               # the session started (see active())
        self.parting = False              # closed by us (idle, evicted, over budget): see part()
        self.held = 0                     # bytes of incomplete messages (the listener's budget)
        self.connected_at = self.last_active = asyncio.get_running_loop().time()

    @property
    def peer_text(self) -> str:
        return peer_text(self.peer)

    def active(self, opened: bool = True) -> None:
        """A read completed a message (and the session has started, unless the protocol
        starts it with something else: RELP's `open`)."""
        self.last_active = asyncio.get_running_loop().time()
        if opened:
            self.opened = True

    async def read(self) -> bytes:
        """The next bytes, or b"" at EOF / idle timeout / socket error / stop."""
        if self.stopping:
            # What the stream already holds was taken from the socket (the sender counts it
            # as sent): hand it over. EOF was fed, so this never waits; the read may resume
            # the transport (when the stream itself had paused it): pause it again at once.
            if self.reader.at_eof():
                return b""
            try:
                return await self.reader.read(READ_SIZE)
            except Exception:
                return b""
            finally:
                with contextlib.suppress(Exception):
                    self.writer.transport.pause_reading()
        cfg = self.listener.cfg
        loop = asyncio.get_running_loop()
        try:
            while True:
                timeout: float | None = cfg.idle_timeout or None   # silence, whether it started or not
                if not self.opened:
                    left = max(cfg.greeting_timeout - (loop.time() - self.connected_at), 0.0)
                    timeout = left if timeout is None else min(timeout, left)
                try:
                    async with asyncio.timeout(timeout):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    if not self.opened or not self.owes_replies():
                        raise
                    # the client is waiting for us (its window is full of unacked messages,
                    # our worker or sink is slow): it is not idle, and closing would make it
                    # resend the whole window
                    continue
                return data
        except TimeoutError:
            self.part()
            if self.opened:
                self.stats["idle_closed"] += 1
                log.warning("idle connection closed", extra={"listener": self.listener.name, "peer": self.peer_text,
                                                              "idle_timeout": cfg.idle_timeout})
            else:
                self.stats["greeting_timeouts"] += 1
                log.warning("connection closed: no session started in time", extra={
                    "listener": self.listener.name, "peer": self.peer_text, "greeting_timeout": cfg.greeting_timeout})
            return b""
        except (ConnectionError, OSError) as e:
            log.info("connection error: %s", e, extra={"listener": self.listener.name, "peer": self.peer_text})
            return b""

    def owes_replies(self) -> bool:
        """Replies the client waits for are still to come from us (then it is not idle)."""
        return False

    def hold(self, n: int) -> None:
        """The protocol now holds `n` bytes of incomplete messages for this connection."""
        if self.parting:
            return
        lst = self.listener
        lst.held += n - self.held
        self.held = n
        if lst.held > lst.cfg.max_buffered:
            lst.shed()

    def part(self) -> None:
        """We close this connection: it no longer counts against the listener's limit or its
        buffer budget (its incomplete bytes are dropped with it)."""
        if not self.parting:
            self.parting = True
            lst = self.listener
            lst.live -= 1
            lst.held -= self.held
            self.held = 0

    def evict(self, why: str, counter: str) -> None:
        """End the connection from our side. One that never started a session is reset at
        once (its descriptor is free now); a session hands over what was read, is told
        goodbye (RELP: `serverclose`) and closed."""
        if self.parting or self.stopping:
            return
        self.part()
        self.stats[counter] += 1
        log.warning("connection closed: %s", why, extra={"listener": self.listener.name, "peer": self.peer_text,
                                                         "idle_seconds": round(asyncio.get_running_loop().time()
                                                                               - self.last_active, 1)})
        if self.opened:
            self.stop_reading()
        else:
            self.writer.transport.abort()

    def stop_reading(self) -> None:
        """Pause the socket and end the reader: a pending read() returns what is buffered, then b""."""
        if self.stopping:
            return
        self.stopping = True
        with contextlib.suppress(Exception):
            self.writer.transport.pause_reading()
        with contextlib.suppress(Exception):
            if not self.reader.at_eof():
                self.reader.feed_eof()

    def write(self, data: bytes) -> None:
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the client to take our replies (bounded by `send_timeout`, or `timeout`)."""
        if self.writer.is_closing():
            return
        try:
            async with asyncio.timeout(timeout or self.listener.cfg.send_timeout):
                await self.writer.drain()
        except TimeoutError:
            self.stats["send_timeouts"] += 1
            log.warning("connection closed: the client does not read our replies", extra={
                "listener": self.listener.name, "peer": self.peer_text, "send_timeout": self.listener.cfg.send_timeout})
            self.writer.close()
        except (ConnectionError, OSError):
            self.writer.close()

    async def serve(self) -> None:
        """The protocol loop: read, decode, hand over, reply. Returns when reading ends."""
        raise NotImplementedError

    async def goodbye(self) -> None:
        """Shutdown: last words before the socket is closed (RELP: serverclose)."""

    async def wait_until_finished(self) -> None:
        """Before closing: wait for what this connection still owes the client."""

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        if self.detached:  # the stream's protocol was replaced: wait_closed() would never return
            self.closed.set()
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        self.closed.set()


class TcpListener(Listener):
    connection_class: type[Connection] = Connection

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.stats.update(connections=0, connections_total=0, rejected=0, evicted=0, greeting_timeouts=0,
                          idle_closed=0, over_budget=0, send_timeouts=0)
        self.stopping = False
        self.held = 0   # bytes of incomplete messages over all connections
        self.live = 0   # connections not being closed by us: what max_connections bounds

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, self.cfg.host, self.cfg.port, limit=STREAM_LIMIT)
        self.bound(self.server.sockets[0].getsockname())

    def _in_use(self) -> int:
        """The sockets held against `max_connections` (those we are closing do not count)."""
        return self.live

    def _make_room(self) -> bool:
        """At the limit: evict the oldest connection that has not started a session, else the
        one silent longest if silent `evict_idle_after`; False when none may go."""
        now = asyncio.get_running_loop().time()
        victim, best = None, None
        for c in self.connections:
            if c.parting or c.stopping or (c.opened and (c.owes_replies()
                                                         or now - c.last_active < self.cfg.evict_idle_after)):
                continue
            key = (c.opened, c.last_active)
            if best is None or key < best:
                victim, best = c, key
        if victim is None:
            return False
        victim.evict("replaced by a new connection: the listener is full", "evicted")
        return True

    def _refused(self, writer: asyncio.StreamWriter) -> bool:
        """Close and count a connection over the limit (when no other may make room for it)
        or during shutdown."""
        if not self.stopping and (self._in_use() < self.max_connections or self._make_room()):
            return False
        self.stats["rejected"] += 1
        log.warning("connection refused: %s", "stopping" if self.stopping else "limit reached", extra={
            "listener": self.name, "peer": str(writer.get_extra_info("peername")),
            "max_connections": self.max_connections})
        writer.transport.abort()   # no FIN handshake to wait for: the descriptor is free at once
        return True

    def shed(self) -> None:
        """Over `max_buffered`: close the connection holding the most incomplete bytes."""
        victim = max(self.connections, key=lambda c: (not c.parting, c.held), default=None)
        if victim is not None and not victim.parting and victim.held:
            self.stats["over_budget"] += 1
            victim.evict(f"over the listener's buffer budget ({self.held} bytes held in incomplete messages, "
                         f"{victim.held} by this connection)", "evicted")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._refused(writer):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        keepalive(writer)
        conn = self.connection_class(self, reader, writer)
        self.connections.add(conn)
        self.live += 1
        stats["connections"] += 1
        stats["connections_total"] += 1
        try:
            await conn.serve()
            conn.done.set()
            if not self.stopping:
                await conn.wait_until_finished()
                if conn.parting:
                    await conn.goodbye()
                await conn.close()
            else:
                await conn.closed.wait()   # finish() closes it, after the drain
        except Exception as e:
            stats["errors"] += 1
            log.exception("connection failed: %s", e, extra={"listener": self.name, "peer": conn.peer_text})
            await conn.close()
        finally:
            conn.done.set()
            conn.part()
            self.connections.discard(conn)
            stats["connections"] -= 1

    def close(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()

    async def stop_reading(self, timeout: float) -> None:
        conns = list(self.connections)
        for c in conns:
            c.stop_reading()
        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(c.done.wait() for c in conns))

    async def finish(self, timeout: float) -> None:
        conns = list(self.connections)

        async def bye(c: Connection) -> None:
            with contextlib.suppress(Exception):
                await c.wait_until_finished()
                await c.goodbye()
            await c.close()

        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(bye(c) for c in conns))
            for c in conns:  # whatever did not finish in time
                if not c.closed.is_set():
                    c.writer.close()
                    c.closed.set()
        if self.server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self.server.wait_closed()


def kernel_udp_drops(inode: int) -> int | None:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if len(cols) >= 13 and cols[9] == str(inode):
                        return int(cols[12])
        except (OSError, ValueError, StopIteration):
            continue
    return None


class UdpListener(Listener, asyncio.DatagramProtocol):
    kind = "udp"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.transport: asyncio.DatagramTransport | None = None
        self.stats.update(dropped=0)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.cfg.host, self.cfg.port))
        sock = self.transport.get_extra_info("socket")
        # bursts are absorbed by the kernel's buffer (the default ~200 KiB overflows at a few
        # thousand datagrams/s); the kernel caps the value at net.core.rmem_max
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.cfg.receive_buffer)
        self._inode = os.fstat(sock.fileno()).st_ino
        self.stats.update(kernel_dropped=0)
        self.bound(self.transport.get_extra_info("sockname"))

    def refresh(self) -> None:
        """Datagrams the kernel dropped because our receive buffer was full: they never
        reach us, so only the kernel can count them (Linux: the `drops` column of
        /proc/net/udp*, found by the socket's inode)."""
        inode = getattr(self, "_inode", None)
        if inode is None:
            return
        drops = kernel_udp_drops(inode)
        if drops is not None:
            self.stats["kernel_dropped"] = drops

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.handle(data, addr)
        except Exception as e:  # one bad datagram never stops the listener
            self.stats["errors"] += 1
            log.exception("datagram failed: %s", e, extra={"listener": self.name})

    def handle(self, data: bytes, addr: Any) -> None:
        raise NotImplementedError

    def error_received(self, exc: Exception) -> None:
        self.stats["errors"] += 1
        log.warning("socket error: %s", exc, extra={"listener": self.name})

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
