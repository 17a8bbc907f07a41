"""Riemann over TCP (length-prefixed protobuf `Msg`, one reply per request) and UDP (one
`Msg` per datagram, no reply), on top of `streams.protocols.riemann`.

TCP: a submission is answered `ok` once all its events are in the queue, as one list (the
reader waits for room, so a full queue slows the client down); a query is answered with the matching
indexed events (`ok: false` with "no index" when the index is off, "parse error: ..." for a
bad query, as Riemann answers); a frame that does not decode is answered with an error naming the
reason and the connection goes on; an oversize length is fatal (the stream cannot be
resynchronised): error reply, then close. Events without a time get the receive time.
"""

from __future__ import annotations

import logging
from typing import Any

from ..index.query import QueryError
from ..pipeline.live import Received
from ..protocols.riemann import (
    DEFAULT_MAX_FRAME,
    UDP_MAX_SIZE,
    FrameError,
    RiemannDecodeError,
    RiemannTcpConnection,
    decode_datagram,
    error_reply,
    events_reply,
    ok_reply,
    stamp,
)
from .base import Connection, TcpListener, UdpListener

log = logging.getLogger("streams.ingest.riemann")

NO_INDEX = "no index"


class RiemannConnection(Connection):
    async def serve(self) -> None:
        listener, stats = self.listener, self.stats
        conn = RiemannTcpConnection(listener.cfg.max_message or DEFAULT_MAX_FRAME)
        name = listener.name
        while conn.error is None:
            data = await self.read()
            if not data:
                err = conn.end_of_stream()
                if err is not None:
                    stats["errors"] += 1
                    log.warning("%s", err.reason, extra={"listener": name, "peer": self.peer_text})
                break
            msgs = conn.receive_data(data)
            self.hold(conn.pending)
            if msgs:
                self.active()
            for msg in msgs:
                if isinstance(msg, FrameError):
                    stats["errors"] += 1
                    log.warning("bad frame: %s", msg.reason, extra={"listener": name, "peer": self.peer_text,
                                                                    "fatal": msg.fatal})
                    self.write(error_reply(msg.reason))
                    continue
                if msg.events:   # with a query too, Riemann takes the events and answers the query
                    now = listener.clock.now()
                    peer = self.peer
                    records = [Received(name, now, event=ev, peer=peer) for ev in stamp(msg.events, now)]
                    stats["received"] += len(records)
                    await listener.pipeline.put(records)
                if msg.query is not None:
                    stats["queries"] += 1
                    self.write(self.answer(msg.query))
                else:
                    self.write(ok_reply())
            await self.drain()


    def answer(self, text: str) -> bytes:
        index = self.listener.pipeline.index
        if index is None:
            return error_reply(NO_INDEX)
        try:
            return events_reply(index.query(text))
        except QueryError as e:
            self.stats["errors"] += 1
            log.info("bad query: %s", e.message, extra={"listener": self.listener.name, "peer": self.peer_text,
                                                         "query": text, "position": e.position})
            return error_reply(f"parse error: {e.message} at column {e.position}")


class RiemannTcpListener(TcpListener):
    connection_class = RiemannConnection


class RiemannUdpListener(UdpListener):
    def handle(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        try:
            msg = decode_datagram(data, self.cfg.max_message or UDP_MAX_SIZE)
        except RiemannDecodeError as e:
            stats["errors"] += 1
            log.warning("bad datagram: %s", e, extra={"listener": self.name, "peer": str(addr)})
            return
        if msg.query is not None:   # no answer can go back over UDP; its events are taken all the same
            stats["queries"] += 1
            stats["errors"] += 1
        if not msg.events:
            return
        now = self.clock.now()
        records = [Received(self.name, now, event=ev, peer=addr) for ev in stamp(msg.events, now)]
        stats["received"] += len(records)
        if not self.pipeline.offer(records):
            stats["dropped"] += len(records)
