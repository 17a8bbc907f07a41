"""Syslog framing: RFC 6587 over TCP (LF or octet counting), one message per UDP datagram. No I/O.

The implementation is native (`native/src/framing.rs`, its Python face `framing_py.rs`);
this module names it. The listeners use its fast path: `SyslogFramer.receive_records()` and
`datagram_record()` hand back the records themselves, text decoded as
`streams.inputs.decode_line` does (problem tags `_invalid_utf8`, `_nul_bytes`, plus
`_message_truncated` and `_framing_error`), so no Python runs per message.

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

from .._native import (
    DEFAULT_MAX_COUNT,
    DEFAULT_MAX_SIZE,
    Frame,
    SyslogFramer,
    datagram_frame,
    datagram_record,
    detect_framing,
    strip_eol,
)

LF_FRAMING = "lf"
OCTET_COUNTING = "octet-counted"

__all__ = ["DEFAULT_MAX_COUNT", "DEFAULT_MAX_SIZE", "LF_FRAMING", "OCTET_COUNTING", "Frame", "SyslogFramer",
           "datagram_frame", "datagram_record", "detect_framing", "strip_eol"]
