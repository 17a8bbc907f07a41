"""Syslog over UDP (one message per datagram) and TCP (LF or octet-counted framing,
detected per connection by `SyslogFramer`).

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

from ..inputs import decode_line
from ..pipeline.live import Received
from ..protocols.framing import DEFAULT_MAX_SIZE, Frame, SyslogFramer, datagram_frame
from .base import Connection, TcpListener, UdpListener

log = logging.getLogger("streams.ingest.syslog")

TRUNCATED_TAG = "_message_truncated"
FRAMING_TAG = "_framing_error"


def frame_record(listener: str, frame: Frame, now: float, peer: Any) -> Received | None:
    text, problems = decode_line(frame.data)
    if not text or text.isspace():
        return None
    if frame.truncated:
        problems += (TRUNCATED_TAG,)
    if frame.error:
        problems += (FRAMING_TAG,)
    return Received(listener, now, text=text, tags=problems, peer=peer)


class SyslogTcpConnection(Connection):
    async def serve(self) -> None:
        listener = self.listener
        framer = SyslogFramer(listener.cfg.max_message or DEFAULT_MAX_SIZE)
        while True:
            data = await self.read()
            if not data:
                break
            frames = framer.receive_data(data)
            self.hold(framer.buffered)
            if frames:
                self.active()
            await self._deliver(frames)
        await self._deliver(framer.end_of_stream())

    async def _deliver(self, frames: list[Frame]) -> None:
        """The records of one read go to the queue as one list."""
        if not frames:
            return
        listener, stats, peer = self.listener, self.stats, self.peer
        name = listener.name
        now = listener.clock.now()
        records = []
        for f in frames:
            if f.error:
                stats["errors"] += 1
                log.warning("framing error: %s", f.error, extra={"listener": name, "peer": self.peer_text})
            rec = frame_record(name, f, now, peer)
            if rec is None:
                stats["empty"] += 1
            else:
                records.append(rec)
        stats["received"] += len(frames)
        await listener.pipeline.put(records)


class SyslogTcpListener(TcpListener):
    connection_class = SyslogTcpConnection


class SyslogUdpListener(UdpListener):
    def handle(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        frame = datagram_frame(data, self.cfg.max_message or DEFAULT_MAX_SIZE)
        stats["received"] += 1
        rec = None if frame is None else frame_record(self.name, frame, self.clock.now(), addr)
        if rec is None:  # empty, or a line end alone
            stats["empty"] += 1
        elif not self.pipeline.offer([rec]):
            stats["dropped"] += 1
