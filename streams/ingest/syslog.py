"""Syslog over UDP (one message per datagram) and TCP (LF or octet-counted framing,
detected per connection by `SyslogFramer`).

The framer (native) hands back the records themselves: no Python runs per message.
Messages are decoded as UTF-8; invalid bytes are kept as backslash escapes and the event
is tagged `_invalid_utf8` (as replay does for files). A message cut at the size limit is
tagged `_message_truncated`; bytes skipped by a framing error are still delivered, tagged
`_framing_error`, and counted as errors. Syslog has no acknowledgement: TCP senders are
slowed down (the reader waits for room in the queue), UDP datagrams that find the queue
full are dropped and counted (`dropped`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..pipeline.live import Received
from ..protocols.framing import DEFAULT_MAX_SIZE, SyslogFramer, datagram_record
from .base import Connection, TcpListener, UdpListener

log = logging.getLogger("streams.ingest.syslog")

# the tags the native framer sets (`native/src/framing_py.rs`)
TRUNCATED_TAG = "_message_truncated"
FRAMING_TAG = "_framing_error"


class SyslogTcpConnection(Connection):
    async def serve(self) -> None:
        listener = self.listener
        framer = SyslogFramer(listener.cfg.max_message or DEFAULT_MAX_SIZE)
        name, clock, peer = listener.name, listener.clock, self.peer
        while True:
            data = await self.read()
            if not data:
                break
            got = framer.receive_records(data, Received, name, clock.now(), peer)
            self.hold(framer.buffered)
            if got[1]:
                self.active()
            await self._deliver(*got)
        await self._deliver(*framer.end_of_stream_records(Received, name, clock.now(), peer))

    async def _deliver(self, records: list[Received], frames: int, empty: int, errors: list[str]) -> None:
        """The records of one read go to the queue as one list (the framer made them:
        `frames` messages, `empty` of them without text, `errors` the framing errors)."""
        if not frames:
            return
        stats = self.stats
        for error in errors:
            stats["errors"] += 1
            log.warning("framing error: %s", error, extra={"listener": self.listener.name, "peer": self.peer_text})
        stats["empty"] += empty
        stats["received"] += frames
        await self.listener.pipeline.put(records)


class SyslogTcpListener(TcpListener):
    connection_class = SyslogTcpConnection


class SyslogUdpListener(UdpListener):
    def handle(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        stats["received"] += 1
        rec = datagram_record(data, self.cfg.max_message or DEFAULT_MAX_SIZE, Received, self.name, self.clock.now(),
                              addr)
        if rec is None:  # empty, or a line end alone
            stats["empty"] += 1
        elif not self.pipeline.offer([rec]):
            stats["dropped"] += 1
