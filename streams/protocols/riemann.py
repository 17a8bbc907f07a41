"""Riemann wire protocol (protobuf `Msg` over TCP frames or UDP datagrams). No I/O.

Bytes in, `Msg`/`Event` out; `Msg` fields in, bytes out. The TCP/UDP listeners (to come,
in `streams.ingest`) own the sockets, the clock and the replies' delivery.

Why a hand-written protobuf codec instead of the `protobuf` package
--------------------------------------------------------------------
Riemann speaks five tiny proto2 messages (`riemann.proto` next to this file lists the
subset we use), and only five wire-level constructs: varints (int64, bool), zigzag
sint64, fixed64 double, fixed32 float and length-delimited strings/sub-messages. A
direct decoder is ~250 lines, builds `streams.event.Event` objects straight from the
buffer (no intermediate generated message, no second copy of every field), and adds no
dependency: `protobuf` is a large compiled package whose major versions break generated
code (the two Python Riemann clients pin `protobuf<4`), and we would still have to map
its messages to our Event. The price is correctness work, paid here: unknown fields of
every wire type (including proto2 groups, nested) are skipped as protobuf does, every
length is bounds-checked, every loop advances, and the test suite cross-checks the bytes
against `protobuf` itself when it happens to be installed, plus truncation and fuzz runs.
The transports below decode with the native core first (`decode_fast`: the fields
clients send, in Rust); this codec stays the reference it falls back to for anything
else, and the encoder.

Decoding rules (`decode_msg`, `decode_event`)
---------------------------------------------
* Malformed input raises `RiemannDecodeError` (a `ValueError`) with the reason and byte
  offset: truncated varint, varint longer than 10 bytes, length beyond the buffer, a
  known field with the wrong wire type, invalid UTF-8 in a string, a missing required
  `Attribute.key`, field number 0 or above 2**29-1, wire types 6/7, unbalanced or too
  deeply nested groups. Nothing else escapes and nothing loops: each step consumes at
  least one byte. Whatever `protobuf` rejects, we reject (checked by a differential fuzz
  test). We are stricter in three places, on purpose, as no Riemann client produces
  them: a known field with a wrong wire type (protobuf keeps it as an unknown field),
  invalid UTF-8 (protobuf does not check proto2 strings) and a missing `Attribute.key`.
* For an optional field present twice, the last one wins (protobuf semantics).
* `time` is `time_micros / 1e6` when `time_micros` (field 10) is present, else
  `float(time)` (field 1, seconds), else `None`. Clients usually send no time: the
  listener stamps the receive time with `stamp(events, now)` (the clock is injected).
* `metric`: `metric_d` (double) if present, else `metric_sint64` (kept as a Python
  `int`, exact), else `metric_f` (float32 widened to a Python float, so 0.1 reads as
  0.10000000149011612). Old clients send `metric_f` and `metric_d` together; the double
  is the precise one, hence first. NaN and +/-inf decode as such - they are valid
  doubles; whether to index them is the caller's business.
* `ttl` is a float32 on the wire: widened to a Python float; huge values may be `inf`.
* `attributes` become a dict (a later duplicate key wins); a missing `value` is `""`.
* `Msg.query` is the `Query.string`; a `Query` without its string gives `""`.
* The deprecated `Msg.states` (field 4) are dropped; only their wire structure (tags,
  lengths, groups) is checked, so garbage inside one is still an error.

Encoding rules (`encode_msg`, `encode_event`)
---------------------------------------------
Fields are written in field-number order (the bytes `protobuf` itself would produce).
`time` is written twice, as `time` (whole seconds, floored) and `time_micros` (rounded),
so old servers and new ones agree; an `int` metric (within int64) becomes
`metric_sint64`, any other number `metric_d`; `ttl` is packed as float32 and a value
beyond float32 range becomes +/-inf ("never expires"); an attribute whose value is
`None` is written without `value`. `message`, `fields` and `meta` are never sent.
A non-finite `time` cannot be encoded and raises `ValueError`.

Transports
----------
Both transports decode with `decode_fast` (the native core, this codec for whatever it
does not read: the same results and errors).

* TCP: `RiemannTcpConnection.receive_data(bytes) -> list[Msg | FrameError]`; frames
  are a 4-byte big-endian unsigned length + `Msg`. Every request gets one reply frame:
  `ok_reply()` for a submission (exactly `00 00 00 02 10 01`), `events_reply(events)`
  for a query answer, `error_reply(text)` for a failure (Riemann's own behaviour).
  A frame whose payload does not decode gives a non-fatal `FrameError` (framing is
  intact: reply `error_reply(err.reason)` and go on). A length above `max_frame` gives
  a fatal `FrameError`: the stream cannot be resynchronised, the caller must close the
  connection; the object then ignores further data. `DEFAULT_MAX_FRAME` is 16 MiB,
  our own bound (a batch of a few thousand events is well under 1 MiB).
* UDP: `decode_datagram(data, max_size=16384)`: one `Msg` per datagram, no reply. The
  listener should read `max_size + 1` bytes so that an oversize datagram is seen as such
  rather than silently truncated.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.event import Event

from .._native import decode_riemann

__all__ = [
    "DEFAULT_MAX_FRAME",
    "UDP_MAX_SIZE",
    "FrameError",
    "Msg",
    "RiemannDecodeError",
    "RiemannTcpConnection",
    "decode_datagram",
    "decode_event",
    "decode_msg",
    "encode_event",
    "encode_msg",
    "error_reply",
    "events_reply",
    "frame",
    "ok_reply",
    "stamp",
]

UDP_MAX_SIZE = 16384
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
MAX_GROUP_DEPTH = 64

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_LEN = struct.Struct(">I")
_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# Wire types.
_VARINT, _I64, _LENDELIM, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_WT_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "start-group", 4: "end-group", 5: "fixed32"}


class RiemannDecodeError(ValueError):
    """Malformed Riemann protobuf input. `reason` is a short text, `offset` the byte
    position (in the buffer given to the decoder) where the problem was found."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"{reason} at offset {offset}")


@dataclass(slots=True)
class Msg:
    """A decoded Riemann `Msg`. `ok`/`error`/`query` are `None` when absent."""

    ok: bool | None = None
    error: str | None = None
    query: str | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class FrameError:
    """One TCP frame that could not be used. `fatal`: the framing itself is broken
    (oversize length) and the connection must be closed; otherwise only this frame's
    payload was bad and the caller should reply `error_reply(reason)` and continue."""

    reason: str
    fatal: bool = False


# --------------------------------------------------------------------------- decoding


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Unsigned varint at `pos` (at most 10 bytes, value masked to 64 bits)."""
    if pos >= end:
        raise RiemannDecodeError("truncated varint", pos)
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    start = pos
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise RiemannDecodeError("truncated varint", start)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise RiemannDecodeError("varint longer than 10 bytes", start)


def _int64(v: int) -> int:
    return v - (1 << 64) if v & _SIGN64 else v


def _length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length prefix; returns (payload end, payload start)."""
    at = pos
    n, pos = _varint(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise RiemannDecodeError(f"length {n} beyond buffer ({end - pos} bytes left)", at)
    return stop, pos


def _string(buf: bytes, pos: int, end: int, name: str) -> tuple[str, int]:
    if pos < end and buf[pos] < 0x80 and pos + 1 + buf[pos] <= end:  # short string, in bounds
        stop = pos + 1 + buf[pos]
        pos += 1
    else:
        stop, pos = _length(buf, pos, end)
    try:
        return buf[pos:stop].decode("utf-8"), stop
    except UnicodeDecodeError as exc:
        raise RiemannDecodeError(f"invalid UTF-8 in {name}", pos + exc.start) from None


def _skip(buf: bytes, pos: int, end: int, tag: int, tag_at: int, depth: int = 0) -> int:
    """Skip the value of an unknown field whose tag was just read; returns the new pos."""
    wt = tag & 7
    if wt == _VARINT:
        return _varint(buf, pos, end)[1]
    if wt == _LENDELIM:
        return _length(buf, pos, end)[0]
    if wt == _I64:
        if pos + 8 > end:
            raise RiemannDecodeError("truncated fixed64", pos)
        return pos + 8
    if wt == _I32:
        if pos + 4 > end:
            raise RiemannDecodeError("truncated fixed32", pos)
        return pos + 4
    if wt == _SGROUP:
        if depth >= MAX_GROUP_DEPTH:
            raise RiemannDecodeError("groups nested too deeply", tag_at)
        number = tag >> 3
        while pos < end:
            inner_at = pos
            inner, pos = _varint(buf, pos, end)
            _check_tag(inner, inner_at)
            if inner & 7 == _EGROUP:
                if inner >> 3 != number:
                    raise RiemannDecodeError("mismatched end-group", inner_at)
                return pos
            pos = _skip(buf, pos, end, inner, inner_at, depth + 1)
        raise RiemannDecodeError("unterminated group", tag_at)
    if wt == _EGROUP:
        raise RiemannDecodeError("unexpected end-group", tag_at)
    raise RiemannDecodeError(f"invalid wire type {wt}", tag_at)  # pragma: no cover (checked by _check_tag)


def _check_tag(tag: int, at: int) -> None:
    if tag > 0xFFFFFFFF:
        raise RiemannDecodeError("field number too large", at)
    if tag >> 3 == 0:
        raise RiemannDecodeError("field number 0", at)
    if tag & 7 > 5:
        raise RiemannDecodeError(f"invalid wire type {tag & 7}", at)


def _walk(buf: bytes, pos: int, end: int) -> None:
    """Check the wire structure of a message we do not read (tags, lengths, groups)."""
    while pos < end:
        at = pos
        tag, pos = _varint(buf, pos, end)
        _check_tag(tag, at)
        pos = _skip(buf, pos, end, tag, at)


def _wrong_type(message: str, tag: int, at: int) -> RiemannDecodeError:
    return RiemannDecodeError(
        f"wrong wire type for {message} field {tag >> 3}: {_WT_NAMES.get(tag & 7, tag & 7)}", at
    )


# Known tags (field << 3 | wire type) per message, for the wrong-wire-type check.
_EVENT_FIELDS = frozenset((1, 2, 3, 4, 5, 7, 8, 9, 10, 13, 14, 15))
_MSG_FIELDS = frozenset((2, 3, 4, 5, 6))


def _attribute(buf: bytes, pos: int, end: int) -> tuple[str, str]:
    key = None
    value = ""
    while pos < end:
        at = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        if tag == 0x0A:
            key, pos = _string(buf, pos, end, "Attribute.key")
        elif tag == 0x12:
            value, pos = _string(buf, pos, end, "Attribute.value")
        else:
            _check_tag(tag, at)
            if tag >> 3 in (1, 2):
                raise _wrong_type("Attribute", tag, at)
            pos = _skip(buf, pos, end, tag, at)
    if key is None:
        raise RiemannDecodeError("missing required Attribute.key", end)
    return key, value


def _event(buf: bytes, pos: int, end: int) -> Event:
    time_s = time_us = metric_d = metric_i = metric_f = None
    host = service = state = description = ttl = None
    tags: list[str] = []
    attributes: dict[str, str] = {}
    while pos < end:
        at = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        # Most frequent fields first.
        if tag == 0x22:
            host, pos = _string(buf, pos, end, "Event.host")
        elif tag == 0x1A:
            service, pos = _string(buf, pos, end, "Event.service")
        elif tag == 0x71:
            if pos + 8 > end:
                raise RiemannDecodeError("truncated fixed64", pos)
            metric_d = _F64.unpack_from(buf, pos)[0]
            pos += 8
        elif tag == 0x12:
            state, pos = _string(buf, pos, end, "Event.state")
        elif tag == 0x4A:
            stop, pos = _length(buf, pos, end)
            k, v = _attribute(buf, pos, stop)
            attributes[k] = v
            pos = stop
        elif tag == 0x3A:
            t, pos = _string(buf, pos, end, "Event.tags")
            tags.append(t)
        elif tag == 0x45:
            if pos + 4 > end:
                raise RiemannDecodeError("truncated fixed32", pos)
            ttl = _F32.unpack_from(buf, pos)[0]
            pos += 4
        elif tag == 0x08:
            v, pos = _varint(buf, pos, end)
            time_s = _int64(v)
        elif tag == 0x50:
            v, pos = _varint(buf, pos, end)
            time_us = _int64(v)
        elif tag == 0x68:
            v, pos = _varint(buf, pos, end)
            metric_i = (v >> 1) ^ -(v & 1)
        elif tag == 0x7D:
            if pos + 4 > end:
                raise RiemannDecodeError("truncated fixed32", pos)
            metric_f = _F32.unpack_from(buf, pos)[0]
            pos += 4
        elif tag == 0x2A:
            description, pos = _string(buf, pos, end, "Event.description")
        else:
            _check_tag(tag, at)
            if tag >> 3 in _EVENT_FIELDS:
                raise _wrong_type("Event", tag, at)
            pos = _skip(buf, pos, end, tag, at)
    ev = Event.from_parse({})
    if time_us is not None:
        ev.time = time_us / 1e6
    elif time_s is not None:
        ev.time = float(time_s)
    ev.host = host
    ev.service = service
    ev.state = state
    ev.description = description
    ev.metric = metric_d if metric_d is not None else metric_i if metric_i is not None else metric_f
    ev.ttl = ttl
    ev.tags = tags
    ev.attributes = attributes
    return ev


def _query(buf: bytes, pos: int, end: int, current: str | None) -> str:
    text = current if current is not None else ""
    while pos < end:
        at = pos
        tag, pos = _varint(buf, pos, end)
        if tag == 0x0A:
            text, pos = _string(buf, pos, end, "Query.string")
        else:
            _check_tag(tag, at)
            if tag >> 3 == 1:
                raise _wrong_type("Query", tag, at)
            pos = _skip(buf, pos, end, tag, at)
    return text


def _msg(buf: bytes, pos: int, end: int) -> Msg:
    msg = Msg()
    events = msg.events
    while pos < end:
        at = pos
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        if tag == 0x32:
            stop, pos = _length(buf, pos, end)
            events.append(_event(buf, pos, stop))
            pos = stop
        elif tag == 0x10:
            v, pos = _varint(buf, pos, end)
            msg.ok = v != 0
        elif tag == 0x1A:
            msg.error, pos = _string(buf, pos, end, "Msg.error")
        elif tag == 0x2A:
            stop, pos = _length(buf, pos, end)
            msg.query = _query(buf, pos, stop, msg.query)
            pos = stop
        elif tag == 0x22:  # deprecated State: wire structure checked, contents dropped
            stop, pos = _length(buf, pos, end)
            _walk(buf, pos, stop)
            pos = stop
        else:
            _check_tag(tag, at)
            if tag >> 3 in _MSG_FIELDS:
                raise _wrong_type("Msg", tag, at)
            pos = _skip(buf, pos, end, tag, at)
    return msg


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected bytes, got {type(data).__name__}")


def decode_msg(data: bytes | bytearray | memoryview) -> Msg:
    """Decode one protobuf `Msg` (no length prefix). Raises `RiemannDecodeError`."""
    buf = _as_bytes(data)
    return _msg(buf, 0, len(buf))


def decode_fast(payload: bytes) -> Msg:
    """`decode_msg(payload)`, by the native core where it can (`native/src/riemann.rs`: the
    fields clients send, several times faster per event): anything it does not read the
    same way (unknown or deprecated fields, wrong wire types, truncations, invalid UTF-8)
    comes back here, so results and errors are always the pure decoder's."""
    msg = decode_riemann(payload, Event, Msg)
    return msg if msg is not None else decode_msg(payload)


def decode_event(data: bytes | bytearray | memoryview) -> Event:
    """Decode one protobuf `Event` on its own (no `Msg` around it)."""
    buf = _as_bytes(data)
    return _event(buf, 0, len(buf))


def stamp(events: Iterable[Event], now: float) -> list[Event]:
    """Give the receive time `now` to every event that came without a time (Riemann's
    own server does this). Returns the events as a list; mutates them in place."""
    out = events if isinstance(events, list) else list(events)
    for ev in out:
        if ev.time is None:
            ev.time = now
    return out


# --------------------------------------------------------------------------- encoding


def _put_varint(out: bytearray, n: int) -> None:
    n &= _MASK64
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_bytes(out: bytearray, tag: int, data: bytes) -> None:
    out.append(tag)
    _put_varint(out, len(data))
    out += data


def _put_str(out: bytearray, tag: int, text: str) -> None:
    _put_bytes(out, tag, text.encode("utf-8"))


def _pack_f32(x: float) -> bytes:
    try:
        return _F32.pack(x)
    except OverflowError:  # beyond float32 range: the nearest float32 is infinity
        return _F32.pack(math.copysign(math.inf, x))


def _event_body(ev: Event) -> bytes:
    out = bytearray()
    t = ev.time
    micros = None
    if t is not None:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"cannot encode non-finite Event.time {t!r}")
        out.append(0x08)
        _put_varint(out, math.floor(t))
        micros = round(t * 1_000_000)
    if ev.state is not None:
        _put_str(out, 0x12, ev.state)
    if ev.service is not None:
        _put_str(out, 0x1A, ev.service)
    if ev.host is not None:
        _put_str(out, 0x22, ev.host)
    if ev.description is not None:
        _put_str(out, 0x2A, ev.description)
    for tag in ev.tags:
        _put_str(out, 0x3A, tag)
    if ev.ttl is not None:
        out.append(0x45)
        out += _pack_f32(float(ev.ttl))
    for key, value in ev.attributes.items():
        attr = bytearray()
        _put_str(attr, 0x0A, str(key))
        if value is not None:
            _put_str(attr, 0x12, value if isinstance(value, str) else str(value))
        _put_bytes(out, 0x4A, bytes(attr))
    if micros is not None:
        out.append(0x50)
        _put_varint(out, micros)
    m = ev.metric
    if m is not None:
        if isinstance(m, int) and _INT64_MIN <= m <= _INT64_MAX:  # bool counts as 0/1
            out.append(0x68)
            m = int(m)
            _put_varint(out, (m << 1) ^ (m >> 63))
        else:
            out.append(0x71)
            out += _F64.pack(float(m))
    return bytes(out)


def encode_event(ev: Event) -> bytes:
    """One protobuf `Event` (no `Msg` around it, no length prefix)."""
    return _event_body(ev)


def encode_msg(
    ok: bool | None = None,
    error: str | None = None,
    events: Iterable[Event] = (),
    query: str | None = None,
) -> bytes:
    """One protobuf `Msg` (no length prefix); absent arguments are not written."""
    out = bytearray()
    if ok is not None:
        out += b"\x10\x01" if ok else b"\x10\x00"
    if error is not None:
        _put_str(out, 0x1A, error)
    if query is not None:
        q = bytearray()
        _put_str(q, 0x0A, query)
        _put_bytes(out, 0x2A, bytes(q))
    for ev in events:
        _put_bytes(out, 0x32, _event_body(ev))
    return bytes(out)


def frame(payload: bytes) -> bytes:
    """The TCP frame: 4-byte big-endian length, then the payload."""
    return _LEN.pack(len(payload)) + payload


_OK_REPLY = frame(encode_msg(ok=True))  # b"\x00\x00\x00\x02\x10\x01"


def ok_reply() -> bytes:
    """The framed reply to an accepted submission: `00 00 00 02 10 01`."""
    return _OK_REPLY


def error_reply(text: str) -> bytes:
    """The framed `Msg{ok: false, error: text}`."""
    return frame(encode_msg(ok=False, error=text))


def events_reply(events: Iterable[Event]) -> bytes:
    """The framed answer to a query: `Msg{ok: true, events: [...]}`."""
    return frame(encode_msg(ok=True, events=events))


# --------------------------------------------------------------------------- transports


class RiemannTcpConnection:
    """Sans-IO TCP framing: feed whatever the socket read, get decoded `Msg`s (and
    `FrameError`s) back in order. Frames may be split at any byte and several may come
    in one read. Works for either side (a client reads the replies the same way)."""

    __slots__ = ("max_frame", "error", "_buf", "_decode")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 0:
            raise ValueError("max_frame must be >= 0")
        self.max_frame = max_frame
        self.error: FrameError | None = None  # set once a fatal error happened
        self._buf = bytearray()
        self._decode = decode_fast

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Msg | FrameError]:
        if self.error is not None:
            return []  # broken stream: the caller is closing it
        buf = self._buf
        buf += data
        out: list[Msg | FrameError] = []
        pos = 0
        size = len(buf)
        while size - pos >= 4:
            n = _LEN.unpack_from(buf, pos)[0]
            if n > self.max_frame:
                self.error = FrameError(f"frame length {n} exceeds max_frame {self.max_frame}", fatal=True)
                out.append(self.error)
                buf.clear()
                return out
            stop = pos + 4 + n
            if stop > size:
                break
            payload = bytes(buf[pos + 4 : stop])
            pos = stop
            try:
                out.append(self._decode(payload))
            except RiemannDecodeError as exc:
                out.append(FrameError(str(exc)))
        if pos:
            del buf[:pos]
        return out

    def end_of_stream(self) -> FrameError | None:
        """The peer closed: a `FrameError` if it left an incomplete frame behind."""
        if self.error is None and self._buf:
            n = len(self._buf)
            self._buf.clear()
            return FrameError(f"connection closed inside a frame ({n} bytes buffered)")
        return None


def decode_datagram(data: bytes | bytearray | memoryview, max_size: int = UDP_MAX_SIZE) -> Msg:
    """One UDP datagram = one unframed `Msg`; no reply is sent. Raises
    `RiemannDecodeError` for an oversize or malformed datagram."""
    if len(data) > max_size:
        raise RiemannDecodeError(f"datagram of {len(data)} bytes exceeds max_size {max_size}")
    return decode_fast(_as_bytes(data))
