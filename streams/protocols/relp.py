"""RELP server side, as librelp 1.11 (rsyslog's omrelp) speaks it. No I/O.

The implementation is native (`native/src/relp.rs`, its Python face `relp_py.rs`); this
module names it. The listener uses its fast path: `receive_records()` hands back the
records of the `syslog` frames (text decoded as `streams.inputs.decode_line` does), each
with a native ack that answers its txnr into the connection's outbox (`take_replies()`),
and the other events.

`RelpServerConnection` is one TCP connection's state. Feed it bytes with
`receive_data()`, get events back; answer every event that carries a txnr with exactly
one reply method, which returns the bytes to write:

    Open        -> answer_open(txnr)       `1 rsp N 200 OK\\nrelp_version=0\\n...`
    Syslog      -> ack(txnr) / nak(txnr)   once the message is safely handed on
    Close       -> answer_close(txnr)      empty rsp, then close the socket
    ProtocolError with txnr -> nak(txnr, reason); if fatal, flush and close

Frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; a frame without data is
`TXNR SP CMD SP 0 LF` (librelp accepts no space after the 0).

Decisions, each for a reason:
- Replies leave in txnr order (RELP requires responses in command order), but the caller
  may ack in any order (messages may be persisted out of order). A reply for a txnr whose
  predecessors are unanswered is held; the call that answers the oldest one returns all
  replies that became sendable. `unacked` lists what is still owed, for backpressure.
- Every protocol error is fatal: librelp aborts the session on any framing error, an
  unknown command, a txnr out of sequence, a second `open` or a frame larger than the
  agreed maximum, and the client then resends all unacknowledged messages on a new
  session (duplicates are possible, loss is not). So after a ProtocolError the
  connection ignores further input; the caller should write what the reply methods
  return (acks of earlier messages spare the client duplicates) and close.
- A ProtocolError carries the txnr when its frame header was sound and in sequence: that
  txnr is then owed a reply (a 500 via `nak`) so the client learns why. Without a txnr
  (a garbled header, a txnr out of sequence) there is nothing to answer.
- An oversized DATALEN is refused as soon as the header is read, before any data is
  buffered (memory stays bounded by max_frame); fatal like librelp's default
  oversizeMode "abort".
- The open offers: `relp_version` must be present and an integer, and, like librelp, a
  newer client version is answered with ours (0): librelp itself only sends 0. A
  `commands` offer without `syslog` (or none at all) is refused with librelp's wording,
  `500 required command not supported by client`. The answer repeats our offers: a bare
  `200 OK` makes librelp drop the session and reconnect forever.
- One trailing LF (and a CR before it) is stripped from `syslog` data: rsyslog's RFC 5424
  template ends the message with its own LF.
"""

from __future__ import annotations

from .. import __version__
from .._native import (
    RELP_DEFAULT_MAX_FRAME as DEFAULT_MAX_FRAME,
)
from .._native import (
    RELP_MAX_TXNR as MAX_TXNR,
)
from .._native import (
    RELP_VERSION,
    Close,
    Open,
    ProtocolError,
    RelpAck,
    RelpServerConnection,
    Syslog,
    build_frame,
    next_txnr,
    parse_offers,
)

DEFAULT_SOFTWARE = f"streams,{__version__},-"   # what RelpServerConnection offers by default

Event = Open | Syslog | Close | ProtocolError

__all__ = ["DEFAULT_MAX_FRAME", "DEFAULT_SOFTWARE", "MAX_TXNR", "RELP_VERSION", "Close", "Event", "Open",
           "ProtocolError", "RelpAck", "RelpServerConnection", "Syslog", "build_frame", "next_txnr",
           "parse_offers"]
