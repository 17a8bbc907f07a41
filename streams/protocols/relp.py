"""RELP server side, as librelp 1.11 (rsyslog's omrelp) speaks it. No I/O.

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

from collections import deque
from dataclasses import dataclass

from .. import __version__
from .framing import strip_eol

DEFAULT_MAX_FRAME = 128 * 1024   # the spec's session maximum, librelp's default
MAX_TXNR = 999_999_999
RELP_VERSION = 0
DEFAULT_SOFTWARE = f"streams,{__version__},-"

_LF, _SP = 0x0A, 0x20
_MAX_DIGITS = 9
_MAX_COMMAND = 32

# receive states
_TXNR, _COMMAND, _DATALEN, _DATA, _TRAILER = range(5)
# session states
_AWAIT_OPEN, _OPEN, _CLOSING, _FAILED = range(4)


@dataclass(frozen=True, slots=True)
class Open:
    txnr: int
    offers: dict[str, str]   # offer name -> raw value (`commands` -> "syslog")


@dataclass(frozen=True, slots=True)
class Syslog:
    txnr: int
    message: bytes


@dataclass(frozen=True, slots=True)
class Close:
    txnr: int


@dataclass(frozen=True, slots=True)
class ProtocolError:
    reason: str
    txnr: int | None = None   # set when this txnr is owed a reply (nak it)
    fatal: bool = True        # always, for now (see the module doc); callers should check it


Event = Open | Syslog | Close | ProtocolError


def next_txnr(txnr: int) -> int:
    return 1 if txnr >= MAX_TXNR else txnr + 1


def build_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    head = f"{txnr} {command} {len(data)}".encode()
    return head + b" " + data + b"\n" if data else head + b"\n"


def parse_offers(data: bytes) -> dict[str, str]:
    """`name=value` lines (LF separated; the spec's leading LF tolerated) -> dict."""
    offers: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if line:
            name, _, value = line.partition("=")
            offers[name] = value
    return offers


class RelpServerConnection:
    """One RELP session, server side (sans-IO)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, software: str = DEFAULT_SOFTWARE):
        self.max_frame = max_frame
        self.software = software
        self._session = _AWAIT_OPEN
        self._rx = _TXNR
        self._field = bytearray()      # header field being read
        self._data = bytearray()       # DATA being read (<= max_frame)
        self._txnr = 0
        self._command = ""
        self._datalen = 0
        self._expected = 1             # next txnr the client must use
        self._open_txnr: int | None = None
        self._order: deque[int] = deque()   # txnrs owed a reply, in receive order
        self._owed: set[int] = set()
        self._ready: dict[int, bytes] = {}   # replies held back behind an older unanswered txnr

    # -- state for the caller ----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._session in (_OPEN, _CLOSING)

    @property
    def failed(self) -> bool:
        """A fatal protocol error happened: flush replies and close."""
        return self._session == _FAILED

    @property
    def closing(self) -> bool:
        """The client sent `close`: answer it, then close the socket."""
        return self._session == _CLOSING

    @property
    def unacked(self) -> tuple[int, ...]:
        """Txnrs received and not yet sent a reply, oldest first."""
        return tuple(self._order)

    @property
    def buffered(self) -> int:
        return len(self._field) + len(self._data)

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        data = bytes(data)   # no copy for bytes; the fast path slices messages out of it
        events: list[Event] = []
        i, n = 0, len(data)
        while i < n:
            if self._session == _FAILED:
                break   # dead session: the rest is ignored, the caller closes
            if self._session == _CLOSING:
                self._fail(events, "data after close")
                break
            rx = self._rx
            if rx == _TXNR and not self._field:
                j = self._whole_frame(data, i, events)
                if j > i:
                    i = j
                    continue
            if rx == _DATA:
                take = min(self._datalen - len(self._data), n - i)
                self._data += data[i:i + take]
                i += take
                if len(self._data) == self._datalen:
                    self._rx = _TRAILER
                continue
            b = data[i]
            i += 1
            field = self._field
            if rx == _TXNR:
                if 0x30 <= b <= 0x39 and len(field) < _MAX_DIGITS:
                    field.append(b)
                elif b == _SP and field and int(field) > 0:
                    self._txnr = int(field)
                    field.clear()
                    self._rx = _COMMAND
                else:
                    self._fail(events, f"invalid transaction number: {self._shown(field, b)}")
            elif rx == _COMMAND:
                if (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A) and len(field) < _MAX_COMMAND:
                    field.append(b)
                elif b == _SP and field:
                    self._command = field.decode("ascii")
                    field.clear()
                    self._rx = _DATALEN
                else:
                    self._fail(events, f"invalid command: {self._shown(field, b)}")
            elif rx == _DATALEN:
                if 0x30 <= b <= 0x39 and len(field) < _MAX_DIGITS:
                    field.append(b)
                    continue
                datalen = int(field) if field else -1
                field.clear()
                if datalen == 0 and b == _LF:
                    if self._header_done(events):
                        self._dispatch(events, b"")
                elif datalen > 0 and b == _SP:
                    self._datalen = datalen
                    if self._header_done(events):
                        if datalen > self.max_frame:
                            self._fail(events, f"frame too long: {datalen} octets, maximum {self.max_frame}",
                                       self._txnr)
                        else:
                            self._rx = _DATA
                else:
                    self._fail(events, f"invalid data length in frame {self._txnr}")
            else:  # _TRAILER
                if b == _LF:
                    self._dispatch(events, bytes(self._data))
                else:
                    self._fail(events, f"frame {self._txnr} not terminated by LF", self._txnr)
        return events

    def _header_done(self, events: list[Event]) -> bool:
        """The header is read: check the txnr sequence and register it as owed a reply."""
        if self._txnr != self._expected:
            self._fail(events, f"transaction number {self._txnr} out of sequence, expected {self._expected}")
            return False
        self._expected = next_txnr(self._txnr)
        self._order.append(self._txnr)
        self._owed.add(self._txnr)
        return True

    def _whole_frame(self, data: bytes, i: int, events: list[Event]) -> int:
        """The fast path: a frame with data that lies whole in `data` from `i`, its header
        read with three find()s instead of byte by byte; returns the position after it.
        Anything else (a frame split by the read, without data, oversized, malformed)
        returns `i` untouched, for the byte-wise path to take (and judge)."""
        end = i + _MAX_DIGITS + 1
        sp1 = data.find(b" ", i, end)
        if sp1 <= i or not data[i:sp1].isdigit():   # bytes: ASCII only
            return i
        sp2 = data.find(b" ", sp1 + 1, sp1 + 2 + _MAX_COMMAND)
        if sp2 <= sp1 + 1 or not data[sp1 + 1:sp2].isalpha():
            return i
        sp3 = data.find(b" ", sp2 + 1, sp2 + 2 + _MAX_DIGITS)
        if sp3 <= sp2 + 1 or not data[sp2 + 1:sp3].isdigit():
            return i
        txnr, datalen = int(data[i:sp1]), int(data[sp2 + 1:sp3])
        stop = sp3 + 1 + datalen
        if txnr == 0 or datalen == 0 or datalen > self.max_frame or stop >= len(data) or data[stop] != _LF:
            return i
        self._txnr, self._command = txnr, data[sp1 + 1:sp2].decode("ascii")
        if self._header_done(events):
            self._dispatch(events, data[sp3 + 1:stop])
        return stop + 1

    def _dispatch(self, events: list[Event], data: bytes) -> None:
        txnr, command = self._txnr, self._command
        self._data.clear()
        self._rx = _TXNR
        if self._session == _AWAIT_OPEN:
            if command != "open":
                self._fail(events, f"protocol error: {command} before open", txnr)
                return
            offers = parse_offers(data)
            refusal = _refusal(offers)
            if refusal:
                self._fail(events, refusal, txnr)
                return
            self._session = _OPEN
            self._open_txnr = txnr
            events.append(Open(txnr, offers))
        elif command == "syslog":
            events.append(Syslog(txnr, strip_eol(data)))
        elif command == "close":
            self._session = _CLOSING
            events.append(Close(txnr))
        elif command == "open":
            self._fail(events, "protocol error: connection already open", txnr)
        else:
            self._fail(events, f"command not supported: {command}", txnr)

    def _fail(self, events: list[Event], reason: str, txnr: int | None = None) -> None:
        self._session = _FAILED
        self._field.clear()
        self._data.clear()
        events.append(ProtocolError(reason, txnr))

    @staticmethod
    def _shown(field: bytearray, b: int) -> str:
        return repr((bytes(field) + bytes([b]))[-40:])

    # -- output ------------------------------------------------------------------------

    def answer_open(self, txnr: int | None = None) -> bytes:
        """`200 OK` and our offers for the Open event (librelp requires the offers)."""
        txnr = self._open_txnr if txnr is None else txnr
        if txnr is None or txnr != self._open_txnr:
            raise ValueError(f"txnr {txnr} is not the open command")
        offers = f"200 OK\nrelp_version={RELP_VERSION}\nrelp_software={self.software}\ncommands=syslog"
        return self._reply(txnr, offers.encode())

    def ack(self, txnr: int) -> bytes:
        """`TXNR rsp 6 200 OK`: the message is taken over; may be sent late, see module doc."""
        return self._reply(txnr, b"200 OK")

    def nak(self, txnr: int, reason: str = "error") -> bytes:
        """`TXNR rsp N 500 reason`: the client keeps (and later resends) the message."""
        reason = " ".join(reason.split()) or "error"   # no LF may enter the human text
        return self._reply(txnr, b"500 " + reason.encode("utf-8", "replace"))

    def answer_close(self, txnr: int) -> bytes:
        """librelp answers `close` with an empty rsp (`TXNR rsp 0`)."""
        return self._reply(txnr, b"")

    @staticmethod
    def server_close() -> bytes:
        """The `serverclose` hint (txnr 0, no reply expected), before a server-side close."""
        return build_frame(0, "serverclose")

    def _reply(self, txnr: int, payload: bytes) -> bytes:
        if txnr not in self._owed:
            raise ValueError(f"txnr {txnr} is not awaiting a reply")
        self._owed.discard(txnr)
        self._ready[txnr] = build_frame(txnr, "rsp", payload)
        out = []
        order, ready = self._order, self._ready
        while order and order[0] in ready:
            out.append(ready.pop(order.popleft()))
        return b"".join(out)


def _refusal(offers: dict[str, str]) -> str | None:
    version = offers.get("relp_version")
    if version is None:
        return "relp_version offer missing"
    if not version.strip().isdigit():
        return f"unsupported relp_version {version[:20]!r}"
    if "syslog" not in offers.get("commands", "").split(","):
        return "required command not supported by client"
    return None
