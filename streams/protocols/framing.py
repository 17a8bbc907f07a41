"""Syslog framing: RFC 6587 over TCP (LF or octet counting), one message per UDP datagram. No I/O.

`SyslogFramer` is one TCP connection's state: feed it whatever the socket returned with
`receive_data(bytes)`, get complete `Frame`s back; call `end_of_stream()` at EOF.

Decisions, each for a reason:
- Octet counting (`MSG-LEN SP SYSLOG-MSG`) is chosen only when the connection starts with
  1..9 digits, ONE space and `<` (the PRI of the message). A leading digit alone is not
  enough: Fail2ban's own log lines start with their date (`2024-01-02 ...`), and
  rsyslog's digit-only guess garbled them. The choice is made once per connection, as
  rsyslog does; until the first bytes decide it (they may arrive one at a time) nothing
  is delivered.
- Memory is bounded: a message longer than `max_size` is delivered as its first
  `max_size` bytes tagged `truncated`, and the rest of it is skipped as it streams by,
  never buffered. The internal buffer never holds more than `max_size + 2` bytes.
- One line end is stripped from every message: the LF delimiter (LF framing), or the LF
  that rsyslog's RFC 5424 template puts inside the octet count; a CR before that LF goes
  too (CRLF senders). Nothing else is trimmed.
- Empty messages (blank lines, `1 \\n`, an empty datagram) carry nothing and are not
  delivered; everything else, even broken, comes out as a Frame (nothing is dropped
  silently).
- A malformed octet count (a non-digit, more than 9 digits, zero, above `max_count`) is a
  protocol error. Framing is lost at that point; the framer resynchronises on the next
  LF (octet-counted senders such as rsyslog end each message with one) and expects a
  count again after it. The bytes from the bad count up to that LF are delivered as one
  Frame with `error` set (bounded by `max_size` like any message), so the caller can
  count or dead-letter them. A stray CR/LF where a count is expected (a sender that adds
  a line end outside the count) is skipped silently: it carries no data.
- At EOF a partial LF line is delivered flagged `unterminated` (senders like `nc` or
  `logger` may omit the final LF); a partial octet-counted message or count is delivered
  flagged `unterminated` with `error` set, since the sender promised more (unless it was
  already delivered `truncated`: then only the skipped tail is missing).
"""

from __future__ import annotations

from typing import NamedTuple

LF_FRAMING = "lf"
OCTET_COUNTING = "octet-counted"

DEFAULT_MAX_SIZE = 64 * 1024
# Above this a count is taken for garbage rather than a huge message: skipping it would
# silently eat the rest of the stream. 9 digits is the RFC 6587 grammar's practical
# width and what the detection accepts.
DEFAULT_MAX_COUNT = 100 * 1024 * 1024
_MAX_DIGITS = 9

_LF, _CR, _SP, _LT = 0x0A, 0x0D, 0x20, 0x3C

# receive states
_UNDECIDED, _LINE, _DISCARD, _COUNT, _BODY, _SKIP = range(6)


class Frame(NamedTuple):
    """One syslog message (its line end stripped) and what went wrong with it, if anything."""

    data: bytes
    truncated: bool = False      # longer than max_size: this is the first max_size bytes
    unterminated: bool = False   # stream ended before the message's end
    error: str | None = None     # a framing error: `data` is what was skipped to resync

    @property
    def ok(self) -> bool:
        return not (self.truncated or self.unterminated or self.error)


def strip_eol(data: bytes) -> bytes:
    """Remove exactly one trailing LF, and a CR just before it."""
    if data.endswith(b"\n"):
        return data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return data


def datagram_frame(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Frame | None:
    """UDP: the datagram is the message. Same line-end strip and size limit as TCP;
    None for an empty datagram."""
    msg = strip_eol(bytes(data))
    if not msg:
        return None
    if len(msg) > max_size:
        return Frame(msg[:max_size], truncated=True)
    return Frame(msg)


def detect_framing(prefix: bytes) -> str | None:
    """The framing a connection starting with `prefix` uses, or None if it cannot be told
    yet (only digits, or digits and a space so far)."""
    n = len(prefix)
    digits = 0
    while digits < n and digits <= _MAX_DIGITS and 0x30 <= prefix[digits] <= 0x39:
        digits += 1
    if digits == 0 or digits > _MAX_DIGITS:
        return LF_FRAMING if n else None
    if digits == n:
        return None
    if prefix[digits] != _SP:
        return LF_FRAMING
    if digits + 1 == n:
        return None
    return OCTET_COUNTING if prefix[digits + 1] == _LT else LF_FRAMING


class SyslogFramer:
    """RFC 6587 stream framing for one TCP connection (sans-IO)."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_count: int = DEFAULT_MAX_COUNT):
        if max_size < 16:
            raise ValueError("max_size must be at least 16 bytes")
        self.max_size = max_size
        self.max_count = max(max_count, max_size)
        self.framing: str | None = None   # LF_FRAMING / OCTET_COUNTING once decided
        self._state = _UNDECIDED
        self._buf = bytearray()
        self._line_error: str | None = None   # set while resyncing after a bad count
        self._remaining = 0                   # octets of the current counted message still due
        self._keep = 0                        # how many of them are stored
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes held between calls (bounded by max_size + 2)."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> list[Frame]:
        if self._eof:
            raise RuntimeError("receive_data() after end_of_stream()")
        out: list[Frame] = []
        if self._state == _UNDECIDED:
            # Undecided means at most 9 digits and a space are held, so 11 bytes decide.
            head = bytes(self._buf) + bytes(data[:11])
            mode = detect_framing(head)
            if mode is None:
                self._buf[:] = head
                return out
            data = bytes(self._buf) + bytes(data)
            self._buf.clear()
            self.framing = mode
            self._state = _COUNT if mode == OCTET_COUNTING else _LINE
        self._consume(bytes(data), out)
        return out

    def end_of_stream(self) -> list[Frame]:
        """The connection closed: deliver what is left, flagged."""
        if self._eof:
            return []
        self._eof = True
        out: list[Frame] = []
        buf = bytes(self._buf)
        self._buf.clear()
        state = self._state
        if state == _UNDECIDED and buf:
            self.framing, state = LF_FRAMING, _LINE
        if state == _LINE and (buf or self._line_error):
            out.append(Frame(buf[:self.max_size], truncated=len(buf) > self.max_size, unterminated=True,
                             error=self._line_error))
        elif state == _COUNT and buf:
            out.append(Frame(buf, unterminated=True, error="stream ended inside an octet count"))
        elif state == _BODY:
            count = len(buf) + self._remaining
            out.append(Frame(buf[:self.max_size], truncated=count > self.max_size + 2 or len(buf) > self.max_size,
                             unterminated=True,
                             error=f"stream ended inside an octet-counted message ({self._remaining} octets missing)"))
        self._line_error = None
        return out

    # -- internals ---------------------------------------------------------------------

    def _consume(self, data: bytes, out: list[Frame]) -> None:
        i, n = 0, len(data)
        max_size = self.max_size
        buf = self._buf
        while i < n:
            state = self._state
            if state == _LINE:
                j = data.find(b"\n", i)
                room = max_size + 1 - len(buf)   # content + a CR that may precede the LF
                if j < 0:
                    if n - i <= room:
                        buf += data[i:]
                        return
                    # No LF within max_size + 1 bytes: too long whatever follows.
                    buf += data[i:i + room]
                    i += room
                    self._emit_line(bytes(buf[:max_size]), True, out)
                    buf.clear()
                    self._state = _DISCARD
                    continue
                take = min(j - i, room)
                line = bytes(buf) + data[i:i + take]
                buf.clear()
                truncated = take < j - i
                if not truncated and line.endswith(b"\r"):
                    line = line[:-1]
                if len(line) > max_size:
                    line, truncated = line[:max_size], True
                i = j + 1
                self._emit_line(line, truncated, out)
                self._state = self._after_line()
            elif state == _DISCARD:
                j = data.find(b"\n", i)
                if j < 0:
                    return
                i = j + 1
                self._state = self._after_line()
            elif state == _COUNT:
                if not buf:
                    i = self._counted(data, i, out)
                    if i == n or self._state != _COUNT:
                        continue
                b = data[i]
                if 0x30 <= b <= 0x39:
                    if len(buf) == _MAX_DIGITS:
                        self._bad_count(f"octet count longer than {_MAX_DIGITS} digits")
                        continue
                    buf.append(b)
                    i += 1
                elif b == _SP and buf:
                    count = int(buf)
                    if count == 0 or count > self.max_count:
                        self._bad_count(f"invalid octet count {count}")
                        continue
                    buf.clear()
                    i += 1
                    self._begin_body(count)
                elif (b == _LF or b == _CR) and not buf:
                    i += 1   # a line end outside the count: no data in it
                else:
                    what = "empty octet count" if b == _SP else f"byte 0x{b:02x} in octet count"
                    self._bad_count(what)
            elif state == _BODY:
                take = min(self._keep - len(buf), n - i)
                buf += data[i:i + take]
                i += take
                self._remaining -= take
                if len(buf) < self._keep:
                    return
                if self._remaining == 0:
                    self._emit_counted(bytes(buf), out)
                    self._state = _COUNT
                else:
                    out.append(Frame(bytes(buf), truncated=True))
                    self._state = _SKIP
                buf.clear()
            else:  # _SKIP
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _COUNT

    def _counted(self, data: bytes, i: int, out: list[Frame]) -> int:
        """The fast path of octet counting: the whole messages from `i` on, each count read
        with one find() and each body sliced out of `data` without going through the buffer.
        Returns where it stopped: at a count it cannot take at once (split by the read, a
        stray line end, malformed: the byte-wise path decides) or inside a body, with the
        state set to `_BODY`."""
        n = len(data)
        max_size, max_count = self.max_size, self.max_count
        while i < n:
            sp = data.find(b" ", i, i + _MAX_DIGITS + 1)
            if sp <= i:
                return i
            digits = data[i:sp]
            if not digits.isdigit():   # bytes: ASCII digits only
                return i
            count = int(digits)
            if count == 0 or count > max_count:
                return i
            i = sp + 1
            end = i + count
            if end > n or count > max_size + 2:
                self._begin_body(count)
                return i
            self._emit_counted(data[i:end], out)
            i = end
        return i

    def _begin_body(self, count: int) -> None:
        self._remaining = count
        # A message up to max_size plus its CRLF is stored whole (the strip may bring it
        # under the limit); a longer one only up to max_size.
        self._keep = count if count <= self.max_size + 2 else self.max_size
        self._state = _BODY

    def _emit_counted(self, raw: bytes, out: list[Frame]) -> None:
        msg = strip_eol(raw)
        if len(msg) > self.max_size:
            out.append(Frame(msg[:self.max_size], truncated=True))
        elif msg:
            out.append(Frame(msg))

    def _bad_count(self, reason: str) -> None:
        # Keep what was read of the count; the rest of the line joins it in _LINE state.
        self._line_error = reason
        self._state = _LINE

    def _after_line(self) -> int:
        return _COUNT if self.framing == OCTET_COUNTING else _LINE

    def _emit_line(self, line: bytes, truncated: bool, out: list[Frame]) -> None:
        error, self._line_error = self._line_error, None
        if line or error:
            out.append(Frame(line, truncated=truncated, error=error))
