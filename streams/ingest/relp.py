"""RELP over TCP (rsyslog's omrelp, librelp's dialect), on top of `RelpServerConnection`.

Every `syslog` frame becomes a record carrying an ack callback (native: the connection's
`receive_records` makes the records and their acks; no Python runs per message). The live pipeline calls
it once the record's batch was written by the bulk-file sink and flushed to the OS (see
`streams.pipeline.live` for the exact guarantee: page cache, not fsync); only then is
`rsp 200 OK` written (`RelpServerConnection.ack` keeps the replies in txnr order). A
record that could not be written is answered `500` (the sender keeps it). The messages
of one read go to the queue as one list, and the replies the worker resolves in one
batch leave in one socket write.

A protocol error is logged with its reason and counted; the offending txnr (when it has
one) gets a `500`, earlier messages still get their acks, then the connection is closed
(librelp does the same and resends what was not acked on a new session). At shutdown,
reading stops, the queue is drained (acks go out), then each open session gets a
`serverclose` hint and is closed; anything still unacked is resent by the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..pipeline.live import Received
from ..protocols.relp import DEFAULT_MAX_FRAME, Close, Open, ProtocolError, RelpServerConnection
from .base import Connection, TcpListener

log = logging.getLogger("streams.ingest.relp")

NAK_REASON = "message could not be stored"
LINGER_SECONDS = 2.0   # at shutdown, how long to wait for the client to close after serverclose


class RelpConnection(Connection):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # the records' acks answer into the connection's outbox and call `_notified` only
        # when there is something to do here
        self.relp = RelpServerConnection(self.listener.cfg.max_message or DEFAULT_MAX_FRAME,
                                         notify=self._notified, nak_reason=NAK_REASON)
        self.settled = asyncio.Event()   # no record queued and not yet acked or nak'ed
        self.settled.set()
        self._loop = asyncio.get_running_loop()

    @property
    def pending(self) -> int:
        """Records queued and not yet acked or nak'ed."""
        return self.relp.pending

    async def serve(self) -> None:
        relp, listener, stats = self.relp, self.listener, self.stats
        name, clock, peer = listener.name, listener.clock, self.peer
        while not relp.failed and not relp.closing:
            data = await self.read()
            if not data:
                break
            records, events = relp.receive_records(data, Received, name, clock.now(), peer)
            if records or events:
                self.active(opened=False)   # the session starts with the client's `open`
            for ev in events:
                if isinstance(ev, Open):
                    self.opened = True
                    self.send(relp.answer_open(ev.txnr))
                    log.info("session opened", extra={"listener": name, "peer": self.peer_text,
                                                      "software": ev.offers.get("relp_software", "")})
                elif isinstance(ev, Close):
                    self.send(relp.answer_close(ev.txnr))   # held back until the earlier acks
                elif isinstance(ev, ProtocolError):
                    stats["errors"] += 1
                    log.warning("protocol error, closing the session: %s", ev.reason,
                                extra={"listener": name, "peer": self.peer_text, "txnr": ev.txnr})
                    if ev.txnr is not None:
                        self.send(relp.nak(ev.txnr, ev.reason))
            self.hold(relp.buffered)
            if records:
                stats["received"] += len(records)
                self.settled.clear()
                await listener.pipeline.put(records)
            await self.drain()

    def _notified(self, ok: bool, wake: bool, settled: bool) -> None:
        """A record's ack was resolved: `ok` False for a nak (counted), `wake` when it put
        the first reply into the outbox (the worker resolves a whole batch: one write for
        it), `settled` when no record is left pending."""
        if not ok:
            self.stats["nak"] += 1
        if wake:
            self._loop.call_soon(self.send_replies)
        if settled:
            self.settled.set()

    def owes_replies(self) -> bool:
        return self.relp.pending > 0

    def send(self, data: bytes) -> None:
        """Write now, behind the acks still waiting for their batch's write (replies must
        leave in txnr order)."""
        self.write(self.relp.take_replies() + data)

    def send_replies(self) -> None:
        data = self.relp.take_replies()
        if data:
            self.write(data)

    async def wait_until_finished(self) -> None:
        # Replies owed for queued messages: the worker will answer them (bounded wait).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.listener.cfg.send_timeout):
                await self.settled.wait()
        self.send_replies()
        await self.drain()

    async def goodbye(self) -> None:
        relp = self.relp
        if relp.is_open and not relp.closing and not relp.failed:
            self.send(relp.server_close())
            await self.drain(LINGER_SECONDS)
            await self.linger(LINGER_SECONDS)

    async def linger(self, timeout: float) -> None:
        """Half-close, then read and discard until the client closes (it resends whatever
        it sent after our last ack). Closing with unread data would reset the connection
        and could destroy our last acks and the `serverclose` in the client's buffer."""
        transport = self.writer.transport
        if transport.is_closing() or not transport.can_write_eof():
            return
        gone = asyncio.get_running_loop().create_future()
        transport.set_protocol(_Discard(gone))
        self.detached = True
        with contextlib.suppress(Exception):
            transport.write_eof()
            transport.resume_reading()
            async with asyncio.timeout(timeout):
                await gone


class _Discard(asyncio.Protocol):
    def __init__(self, gone: asyncio.Future) -> None:
        self.gone = gone

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self._done()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


class RelpListener(TcpListener):
    connection_class = RelpConnection
