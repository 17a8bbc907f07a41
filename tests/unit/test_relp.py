"""RELP server connection (librelp's dialect). Every input stream is fed whole, one byte
at a time and split at every offset (h11 test_io style): the events must not change."""

import random
import re

import pytest

from streams.protocols.relp import (
    DEFAULT_MAX_FRAME,
    MAX_TXNR,
    Close,
    Open,
    ProtocolError,
    RelpServerConnection,
    Syslog,
    build_frame,
    next_txnr,
    parse_offers,
)
from tests.fuzz import first_diff, random_chunks
from tests.fuzz import mutate as _mutate

LIBRELP = "librelp,1.11.0,http://librelp.adiscon.com"
CLIENT_OFFERS = f"relp_version=0\nrelp_software={LIBRELP}\ncommands=syslog".encode()
OPEN = b"1 open 86 " + CLIENT_OFFERS + b"\n"        # what omrelp sends first, byte for byte
OPEN_EVENT = Open(1, {"relp_version": "0", "relp_software": LIBRELP, "commands": "syslog"})
MSG = b"<13>1 2024-01-01T00:00:00Z host app - - - hello"


def syslog(txnr: int, msg: bytes) -> bytes:
    return build_frame(txnr, "syslog", msg)


def run(chunks, **kw):
    conn = RelpServerConnection(**kw)
    events = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return events, conn


def feed_all_ways(data: bytes, **kw):
    """Events of `data` fed whole, after checking that one byte at a time and two pieces
    split at every offset give exactly the same events and final state."""
    whole, conn = run([data], **kw)
    state = (conn.unacked, conn.failed, conn.is_open, conn.closing)

    def same(chunks, label):
        events, c = run(chunks, **kw)
        assert events == whole, label
        assert (c.unacked, c.failed, c.is_open, c.closing) == state, label

    same([data[i:i + 1] for i in range(len(data))], "byte at a time")
    for k in range(len(data) + 1):
        same([data[:k], data[k:]], f"split at {k}")
    return whole, conn


def opened(**kw):
    conn = RelpServerConnection(**kw)
    assert conn.receive_data(OPEN) == [OPEN_EVENT]
    conn.answer_open(1)
    return conn


# -- handshake ------------------------------------------------------------------------

def test_client_open_frame_length():
    assert len(CLIENT_OFFERS) == 86
    assert build_frame(1, "open", CLIENT_OFFERS) == OPEN


def test_librelp_open_handshake():
    events, conn = feed_all_ways(OPEN, software=LIBRELP)
    assert events == [OPEN_EVENT]
    assert conn.is_open and conn.unacked == (1,)
    reply = conn.answer_open(1)
    # Byte for byte the worked example: 200 OK followed by our offers (a bare
    # 200 OK makes librelp reconnect forever).
    assert reply == (b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,"
                     b"http://librelp.adiscon.com\ncommands=syslog\n")
    assert conn.unacked == ()


def test_answer_open_default_software_and_txnr():
    conn = RelpServerConnection()
    conn.receive_data(OPEN)
    reply = conn.answer_open()
    body = b"200 OK\nrelp_version=0\nrelp_software=streams,0.1.0,-\ncommands=syslog"
    assert reply == b"1 rsp %d %s\n" % (len(body), body)
    with pytest.raises(ValueError):
        conn.answer_open(1)   # answered already


def test_worked_session_from_notes():
    data = OPEN + syslog(2, MSG) + b"3 close 0\n"
    events, conn = feed_all_ways(data, software=LIBRELP)
    assert events == [OPEN_EVENT, Syslog(2, MSG), Close(3)]
    assert conn.closing and conn.unacked == (1, 2, 3)
    out = conn.answer_open(1) + conn.ack(2) + conn.answer_close(3)
    assert out == (b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=" + LIBRELP.encode()
                   + b"\ncommands=syslog\n2 rsp 6 200 OK\n3 rsp 0\n")
    assert conn.server_close() == b"0 serverclose 0\n"


@pytest.mark.parametrize("offers,accepted", [
    (b"relp_version=0\ncommands=syslog", True),
    (b"\nrelp_version=0\nrelp_software=x\ncommands=syslog", True),        # spec style leading LF
    (b"relp_version=1\ncommands=syslog", True),                           # answered with 0, as librelp
    (b"relp_version=0\ncommands=starttls,syslog\nunknown=1", True),
    (b"relp_version=0\ncommands=starttls", False),
    (b"relp_version=0", False),
    (b"commands=syslog", False),
    (b"relp_version=x\ncommands=syslog", False),
    (b"relp_version=\ncommands=syslog", False),
])
def test_open_offers_checked(offers, accepted):
    events, conn = feed_all_ways(build_frame(1, "open", offers))
    assert len(events) == 1
    if accepted:
        assert isinstance(events[0], Open) and conn.is_open
        assert b"relp_version=0\n" in conn.answer_open(1)
    else:
        err = events[0]
        assert isinstance(err, ProtocolError) and err.txnr == 1 and err.fatal
        assert conn.failed and not conn.is_open
        assert conn.nak(1, err.reason).startswith(b"1 rsp ")


def test_refusal_uses_librelp_wording():
    events, conn = run([build_frame(1, "open", b"relp_version=0\ncommands=foo")])
    assert events == [ProtocolError("required command not supported by client", 1)]
    assert conn.nak(1, events[0].reason) == b"1 rsp 44 500 required command not supported by client\n"


def test_parse_offers():
    assert parse_offers(CLIENT_OFFERS) == {"relp_version": "0", "relp_software": LIBRELP, "commands": "syslog"}
    assert parse_offers(b"flag\na=b=c") == {"flag": "", "a": "b=c"}


@pytest.mark.parametrize("data,reason", [
    (syslog(1, MSG), "protocol error: syslog before open"),
    (b"1 close 0\n", "protocol error: close before open"),
    (b"1 starttls 0\n", "protocol error: starttls before open"),
])
def test_anything_before_open_is_an_error(data, reason):
    events, conn = feed_all_ways(data + OPEN)
    assert events == [ProtocolError(reason, 1)]
    assert conn.failed and conn.unacked == (1,)
    assert conn.nak(1, reason) == build_frame(1, "rsp", b"500 " + reason.encode())


def test_second_open_is_an_error():
    events, conn = feed_all_ways(OPEN + build_frame(2, "open", CLIENT_OFFERS))
    assert events == [OPEN_EVENT, ProtocolError("protocol error: connection already open", 2)]


def test_unknown_command_is_an_error():
    events, conn = feed_all_ways(OPEN + b"2 starttls 0\n" + syslog(3, MSG))
    assert events == [OPEN_EVENT, ProtocolError("command not supported: starttls", 2)]
    assert conn.failed


# -- syslog frames ----------------------------------------------------------------------

def test_several_frames_in_one_read():
    data = OPEN + b"".join(syslog(t, b"<13>msg %d" % t) for t in range(2, 12))
    events, conn = feed_all_ways(data)
    assert events == [OPEN_EVENT] + [Syslog(t, b"<13>msg %d" % t) for t in range(2, 12)]
    assert conn.unacked == tuple(range(1, 12))


def test_rfc5424_trailing_lf_in_data_is_stripped():
    events, _ = feed_all_ways(OPEN + syslog(2, MSG + b"\n") + syslog(3, b"<13>x\r\n") + syslog(4, b"<13>y\n\n"))
    assert events[1:] == [Syslog(2, MSG), Syslog(3, b"<13>x"), Syslog(4, b"<13>y\n")]


def test_data_may_hold_lf_and_any_octet():
    msg = b"<13>line one\nline two \x00\xff\n end"
    events, _ = feed_all_ways(OPEN + syslog(2, msg))
    assert events[1] == Syslog(2, msg)


def test_empty_syslog_frame():
    events, _ = feed_all_ways(OPEN + b"2 syslog 0\n")
    assert events[1] == Syslog(2, b"")


def test_frame_of_exactly_max_frame_is_accepted():
    msg = b"<13>" + b"m" * 96
    events, conn = feed_all_ways(OPEN + syslog(2, msg), max_frame=100)
    assert events[1] == Syslog(2, msg) and not conn.failed


# -- transaction numbers ----------------------------------------------------------------

@pytest.mark.parametrize("txnr", [3, 1, 2 + 1000])
def test_txnr_gap_or_repeat_is_an_error(txnr):
    data = OPEN + syslog(txnr, MSG) + syslog(2, MSG)
    events, conn = feed_all_ways(data)
    assert events == [OPEN_EVENT, ProtocolError(f"transaction number {txnr} out of sequence, expected 2")]
    assert conn.failed and conn.unacked == (1,)   # nothing owed for the bad frame


def test_txnr_wraps_to_one():
    assert next_txnr(1) == 2 and next_txnr(MAX_TXNR) == 1
    conn = opened()
    conn._expected = MAX_TXNR - 1   # skip a billion frames: only the wrap matters here
    data = syslog(MAX_TXNR - 1, b"a") + syslog(MAX_TXNR, b"b") + syslog(1, b"c") + syslog(2, b"d")
    assert conn.receive_data(data) == [Syslog(MAX_TXNR - 1, b"a"), Syslog(MAX_TXNR, b"b"),
                                       Syslog(1, b"c"), Syslog(2, b"d")]
    assert conn.unacked == (MAX_TXNR - 1, MAX_TXNR, 1, 2)
    assert conn.ack(1) == b""
    assert conn.ack(MAX_TXNR - 1) + conn.ack(MAX_TXNR) == b"999999998 rsp 6 200 OK\n999999999 rsp 6 200 OK\n1 rsp 6 200 OK\n"


# -- ack ordering -----------------------------------------------------------------------

def test_acks_leave_in_txnr_order():
    conn = opened()
    conn.receive_data(syslog(2, b"a") + syslog(3, b"b") + syslog(4, b"c") + syslog(5, b"d"))
    assert conn.unacked == (2, 3, 4, 5)
    assert conn.ack(4) == b""                 # held: 2 and 3 unanswered
    assert conn.nak(3, "queue full") == b""
    assert conn.unacked == (2, 3, 4, 5)
    assert conn.ack(2) == b"2 rsp 6 200 OK\n3 rsp 14 500 queue full\n4 rsp 6 200 OK\n"
    assert conn.unacked == (5,)
    assert conn.ack(5) == b"5 rsp 6 200 OK\n"
    assert conn.unacked == ()


def test_close_answer_waits_for_earlier_acks():
    conn = opened()
    assert conn.receive_data(syslog(2, b"a") + b"3 close 0\n") == [Syslog(2, b"a"), Close(3)]
    assert conn.answer_close(3) == b""
    assert conn.ack(2) == b"2 rsp 6 200 OK\n3 rsp 0\n"


def test_ack_of_unknown_or_answered_txnr_raises():
    conn = opened()
    conn.receive_data(syslog(2, b"a"))
    with pytest.raises(ValueError):
        conn.ack(3)
    conn.ack(2)
    with pytest.raises(ValueError):
        conn.ack(2)
    with pytest.raises(ValueError):
        conn.nak(1)                           # the open was answered


def test_nak_reason_cannot_break_the_frame():
    conn = opened()
    conn.receive_data(syslog(2, b"a"))
    assert conn.nak(2, "bad\nthing\r\n") == b"2 rsp 13 500 bad thing\n"


def test_earlier_acks_still_flush_after_a_fatal_error():
    conn = opened()
    events = conn.receive_data(syslog(2, b"a") + syslog(3, b"b") + b"garbage\n")
    assert events[:2] == [Syslog(2, b"a"), Syslog(3, b"b")] and isinstance(events[2], ProtocolError)
    assert conn.failed
    assert conn.receive_data(syslog(4, b"c")) == []        # dead: input ignored
    assert conn.ack(3) == b""
    assert conn.ack(2) == b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n"


# -- close ----------------------------------------------------------------------------

def test_data_after_close_is_an_error():
    events, conn = feed_all_ways(OPEN + b"2 close 0\n" + syslog(3, b"late"))
    assert events == [OPEN_EVENT, Close(2), ProtocolError("data after close")]
    assert conn.failed and conn.unacked == (1, 2)
    conn.answer_open(1)
    assert conn.answer_close(2) == b"2 rsp 0\n"


def test_close_then_nothing_is_fine():
    events, conn = feed_all_ways(OPEN + b"2 close 0\n")
    assert events == [OPEN_EVENT, Close(2)] and conn.closing and not conn.failed


# -- oversize and garbage ---------------------------------------------------------------

def test_oversize_frame_refused_before_buffering():
    conn = opened(max_frame=100)
    events = conn.receive_data(b"2 syslog 101 ")
    assert events == [ProtocolError("frame too long: 101 octets, maximum 100", 2)]
    assert conn.failed and conn.buffered == 0
    assert conn.receive_data(b"x" * 10_000) == [] and conn.buffered == 0
    assert conn.nak(2, events[0].reason) == b"2 rsp 43 500 frame too long: 101 octets, maximum 100\n"


def test_oversize_any_split():
    events, conn = feed_all_ways(OPEN + syslog(2, b"y" * 200), max_frame=128)
    assert events == [OPEN_EVENT, ProtocolError("frame too long: 200 octets, maximum 128", 2)]
    assert conn.unacked == (1, 2)


def test_huge_datalen_with_default_max_frame():
    events, conn = run([OPEN + b"2 syslog 999999999 "])
    assert events[1] == ProtocolError("frame too long: 999999999 octets, maximum 131072", 2)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\n",
    b" 2 syslog 1 x\n",               # leading space
    b"0 syslog 1 x\n",                # txnr 0 is for hints only
    b"1234567890 syslog 1 x\n",       # txnr longer than 9 digits
    b"2  syslog 1 x\n",               # empty command
    b"2 sys1og 1 x\n",                # non-alpha command
    b"2 " + b"a" * 33 + b" 1 x\n",    # command longer than 32
    b"2 syslog 1234567890 x\n",       # datalen longer than 9 digits
    b"2 syslog x\n",                  # no datalen
    b"2 syslog  1 x\n",
    b"2 syslog 0 \n",                 # librelp: no space after a 0 length
    b"2 syslog 1\n",                  # data announced but none
    b"2 syslog 1 xy\n",               # data longer than datalen: no LF trailer
    b"2 syslog 3 x\n\n",              # datalen too long: the LFs are data, `3` is no trailer
    b"2 syslog -1 x\n",
])
def test_garbage_is_a_fatal_protocol_error(garbage):
    events, conn = feed_all_ways(OPEN + garbage + syslog(3, MSG))
    assert events[0] == OPEN_EVENT
    assert len(events) == 2 and isinstance(events[1], ProtocolError), events
    assert events[1].fatal and conn.failed and not conn.is_open


def test_garbage_errors_report_txnr_only_when_owed():
    # header sound and in sequence, trailer wrong: txnr 2 is owed a 500
    events, conn = run([OPEN + b"2 syslog 1 xy\n"])
    assert events[1] == ProtocolError("frame 2 not terminated by LF", 2)
    assert conn.unacked == (1, 2)
    # garbled header: nothing to answer
    events, conn = run([OPEN + b"GET / HTTP/1.1\r\n"])
    assert events[1].txnr is None and conn.unacked == (1,)
    assert "invalid transaction number" in events[1].reason


def test_garbage_before_open():
    events, conn = feed_all_ways(b"\x16\x03\x01\x02\x00\x01\x00")   # a TLS ClientHello
    assert len(events) == 1 and isinstance(events[0], ProtocolError) and events[0].txnr is None
    assert conn.failed


def test_buffered_stays_bounded_by_max_frame():
    conn = opened(max_frame=1000)
    frame = syslog(2, b"z" * 1000)
    for i in range(len(frame) - 1):
        assert conn.receive_data(frame[i:i + 1]) == []
        assert conn.buffered <= 1000
    assert conn.receive_data(b"\n") == [Syslog(2, b"z" * 1000)]
    assert conn.buffered == 0


def test_build_frame():
    assert build_frame(3, "close") == b"3 close 0\n"
    assert build_frame(2, "rsp", b"200 OK") == b"2 rsp 6 200 OK\n"


# -- fuzzing ----------------------------------------------------------------------------
#
# Seeded `random.Random` inputs, each fed whole and in random chunks. `check_session`
# holds the invariants: nothing raises, every chunking gives the same events and state,
# the buffer stays within max_frame + a header, a ProtocolError is the last event and the
# connection is then dead, the events are exactly those of `reference_session` (an
# independent whole-input reading of the grammar with regexes, not a state machine), and
# every txnr owed a reply can be answered, the replies leaving in txnr order.
# The `mutant` tests at the end prove the checks can fail.

FUZZ_MAX_FRAME = 100
HEADER_MAX = 9 + 1 + 32 + 1 + 9 + 1    # TXNR SP COMMAND SP DATALEN SP
_HEADER = re.compile(rb"([0-9]{1,9}) ([A-Za-z]{1,32}) ([0-9]{1,9})([ \n])")
_PARTIAL_HEADER = re.compile(rb"[0-9]{0,9}|([0-9]{1,9}) (?:[A-Za-z]{0,32}|[A-Za-z]{1,32} [0-9]{0,9})")
_RSP = re.compile(rb"([0-9]+) rsp ([0-9]+)[ \n]")
VALID = "valid"   # reference outcome: no error (the input may end inside a frame)


def _offers_accepted(data: bytes) -> bool:
    offers = dict(line.partition("=")[::2] for line in data.decode("utf-8", "replace").split("\n") if line)
    version = offers.get("relp_version")
    return version is not None and version.strip().isdigit() and "syslog" in offers.get("commands", "").split(",")


def reference_session(data: bytes, max_frame: int = FUZZ_MAX_FRAME):
    """(events, outcome) of a whole session: the Open/Syslog/Close events, and VALID or
    the txnr owed a 500 for the first error (None when no txnr is owed)."""
    events, pos, expected, state = [], 0, 1, "await open"
    while pos < len(data):
        if state == "closing":
            return events, None                     # data after close
        m = _HEADER.match(data, pos)
        if m is None:
            p = _PARTIAL_HEADER.fullmatch(data, pos)
            sound = p is not None and (p[1] is None or int(p[1]) > 0)
            return events, VALID if sound else None
        txnr, command, datalen = int(m[1]), m[2].decode(), int(m[3])
        if txnr == 0 or (datalen == 0) != (m[4] == b"\n") or txnr != expected:
            return events, None
        expected = next_txnr(txnr)
        if datalen > max_frame:
            return events, txnr
        body, end = data[m.end():m.end() + datalen], m.end() + datalen
        if datalen:
            if end >= len(data):
                return events, VALID                # the frame is not complete yet
            if data[end] != 0x0A:
                return events, txnr
            end += 1
        pos = end
        if state == "await open":
            if command != "open" or not _offers_accepted(body):
                return events, txnr
            events.append(Open(txnr, parse_offers(body)))
            state = "open"
        elif command == "syslog":
            cut = 2 if body.endswith(b"\r\n") else 1 if body.endswith(b"\n") else 0
            events.append(Syslog(txnr, body[:len(body) - cut]))
        elif command == "close":
            events.append(Close(txnr))
            state = "closing"
        else:
            return events, txnr
    return events, VALID


def _fed(conn, chunks, max_frame, data):
    events = []
    for chunk in chunks:
        try:
            events += conn.receive_data(chunk)
        except Exception as e:   # noqa: BLE001 - any escape is the failure we look for
            raise AssertionError(f"receive_data raised {e!r}; input {data!r}") from e
        assert conn.buffered <= max_frame + HEADER_MAX, f"buffer {conn.buffered} bytes; input {data!r}"
    return events



def check_session(data: bytes, rng, factory=RelpServerConnection, max_frame=FUZZ_MAX_FRAME):
    """Every invariant on one input; returns the events."""
    conn = factory(max_frame=max_frame)
    events = _fed(conn, [data], max_frame, data)
    state = (conn.unacked, conn.failed, conn.is_open, conn.closing)
    other = factory(max_frame=max_frame)
    assert _fed(other, random_chunks(rng, data), max_frame, data) == events, f"chunking changed events: {data!r}"
    assert (other.unacked, other.failed, other.is_open, other.closing) == state, data

    errors = [e for e in events if isinstance(e, ProtocolError)]
    good = [e for e in events if not isinstance(e, ProtocolError)]
    assert events == good + errors and len(errors) <= 1, f"an error is the last event: {events} {data!r}"
    assert conn.failed == bool(errors), f"failed={conn.failed} with events {events}; input {data!r}"
    assert [e.txnr for e in good] == list(range(1, len(good) + 1)), f"each frame once, in order: {data!r}"
    ref_events, outcome = reference_session(data, max_frame)
    assert good == ref_events, f"{good} != reference {ref_events}; input {data!r}"
    if outcome == VALID:
        assert not errors, f"{errors} on a valid input {data!r}"
    else:
        assert errors and errors[0].txnr == outcome, f"{errors}, reference owes {outcome}; input {data!r}"
        assert errors[0].reason and errors[0].fatal
        assert _fed(conn, [OPEN + syslog(2, MSG)], max_frame, data) == [], "a dead session ignores input"

    # Every txnr owed a reply is answered, in any order; the replies leave in txnr order.
    # A frame whose header was read and whose data is still due is owed too (it is the
    # newest, so it holds nothing back).
    by_txnr = {e.txnr: e for e in events}
    owed = tuple(t for t in conn.unacked if t in by_txnr)
    assert sorted(owed) == sorted(e.txnr for e in events if e.txnr is not None), data
    pending = conn.unacked[len(owed):]
    assert conn.unacked[:len(owed)] == owed and pending in ((), (len(good) + 1,)), (conn.unacked, data)
    assert not (pending and conn.failed), data
    out = b""
    for t in rng.sample(owed, len(owed)):
        e = by_txnr[t]
        out += (conn.answer_open(t) if isinstance(e, Open) else conn.answer_close(t) if isinstance(e, Close)
                else conn.ack(t) if isinstance(e, Syslog) else conn.nak(t, e.reason))
    assert conn.unacked == pending
    replied, pos = [], 0
    while pos < len(out):
        m = _RSP.match(out, pos)
        assert m, out[pos:]
        replied.append(int(m[1]))
        pos = m.end() + (int(m[2]) + 1 if m[2] != b"0" else 0)
    assert pos == len(out) and tuple(replied) == owed, (out, owed)
    return events


def session_frames(rng) -> list[bytes]:
    """A valid session (open, up to 8 syslog frames, maybe close) as its frames."""
    msgs = [lambda: b"<13>" + rng.randbytes(rng.randint(0, 40)), lambda: MSG + b"\n", lambda: b"",
            lambda: b"<13>a\nb\r\n", lambda: b"\n" * rng.randint(1, 3), lambda: b"<13>" + b"m" * 96]
    frames = [OPEN] + [syslog(t, rng.choice(msgs)()) for t in range(2, 2 + rng.randint(0, 8))]
    if rng.random() < 0.3:
        frames.append(build_frame(len(frames) + 1, "close"))
    return frames


def expected_events(frames: list[bytes]):
    events, outcome = reference_session(b"".join(frames))
    assert outcome == VALID and len(events) == len(frames)
    return events



INTERESTING = b"0123456789 \n\r-+x"



def mutate(rng, data: bytes) -> bytes:
    return _mutate(rng, data, INTERESTING)


def fuzz_random_bytes(factory, n=1500):
    rng = random.Random(20240612)
    for _ in range(n):
        noise = rng.randbytes(rng.choice((1, 2, 5, 20, 100, 300)))
        check_session(noise, rng, factory)
        check_session(OPEN + noise, rng, factory)
        check_session(OPEN + syslog(2, MSG) + bytes(rng.choice(INTERESTING) for _ in range(rng.randint(1, 30))),
                      rng, factory)


def fuzz_mutated_sessions(factory, n=1500):
    """Byte-level damage: the frames before the first damaged byte are delivered, exactly
    once; a truncation alone is never an error (the rest may still come)."""
    rng = random.Random(6587)
    for _ in range(n):
        frames = session_frames(rng)
        good = b"".join(frames)
        data = mutate(rng, good)
        events = check_session(data, rng, factory)
        p = first_diff(data, good)
        intact = sum(1 for k in range(len(frames)) if len(b"".join(frames[:k + 1])) <= p)
        assert events[:intact] == expected_events(frames)[:intact], (data, events)
        if good.startswith(data):
            assert not any(isinstance(e, ProtocolError) for e in events), data


def fuzz_duplicated_and_reordered_frames(factory, n=400):
    rng = random.Random(5424)
    for _ in range(n):
        frames = session_frames(rng)
        if len(frames) < 3:
            continue
        k = rng.randrange(1, len(frames) - 1)
        expect = expected_events(frames)
        dup = frames[:k + 1] + [frames[k]] * rng.randint(1, 2) + frames[k + 1:]
        events = check_session(b"".join(dup), rng, factory)
        assert events[:-1] == expect[:k + 1] and events[-1].txnr is None, events
        swapped = frames[:k] + [frames[k + 1], frames[k]] + frames[k + 2:]
        events = check_session(b"".join(swapped), rng, factory)
        assert events[:-1] == expect[:k] and events[-1].txnr is None, events
        replayed = frames + frames[1:k + 1]            # a reconnecting client's resend, on the old session
        if not isinstance(expect[-1], Close):
            events = check_session(b"".join(replayed), rng, factory)
            assert events[:-1] == expect and events[-1].txnr is None, events


BAD_TXNRS = [b"0", b"00", b"-1", b"+2", b"", b" 2", b"x", b"2x", b"2.0", b"1234567890", b"999999999"]
BAD_DATALENS = [b"-1", b"", b"x", b"1e2", b"0x10", b" 5", b"1234567890", b"%d" % (FUZZ_MAX_FRAME + 1),
                b"999999999", b"+5"]


def _replace_field(frame: bytes, index: int, value: bytes) -> bytes:
    head, _, rest = frame.partition(b" ")
    if index == 0:
        return value + b" " + rest
    command, _, rest = rest.partition(b" ")
    length = rest.split(b" ", 1)[0].split(b"\n", 1)[0]
    return head + b" " + command + b" " + value + rest[len(length):]


def fuzz_bad_txnr_and_datalen(factory, n=60):
    """Wrong, negative, huge and non-numeric transaction numbers and lengths: the session
    fails there; the frames before still come out, once."""
    rng = random.Random(3195)
    for _ in range(n):
        frames = [f for f in session_frames(rng) if not f.endswith(b" close 0\n")]
        frames.append(syslog(len(frames) + 1, MSG))   # the damaged frame is never the last one
        k = rng.randrange(len(frames) - 1)
        expect = expected_events(frames)
        txnr = int(frames[k].split(b" ", 1)[0])
        for bad in BAD_TXNRS + [b"%d" % (txnr + 1), b"%d" % (txnr - 1), b"0%d" % (txnr + 1)]:
            data = b"".join(frames[:k] + [_replace_field(frames[k], 0, bad)] + frames[k + 1:])
            events = check_session(data, rng, factory)
            assert events[:-1] == expect[:k] and isinstance(events[-1], ProtocolError), (data, events)
            assert events[-1].txnr is None, events   # a broken header owes no reply
        datalen = len(frames[k].split(b" ", 3)[3]) - 1 if frames[k].count(b" ") >= 3 else 0
        for bad in BAD_DATALENS + [b"%d" % (datalen + 1), b"%d" % (datalen - 1), b"0%d" % datalen]:
            data = b"".join(frames[:k] + [_replace_field(frames[k], 2, bad)] + frames[k + 1:])
            events = check_session(data, rng, factory)
            if bad == b"0%d" % datalen:   # a leading zero is still the right number
                assert events == expect, (data, events)
                continue
            assert events[:k] == expect[:k] and isinstance(events[-1], ProtocolError), (data, events)
            if datalen and bad.isdigit() and FUZZ_MAX_FRAME < int(bad) < 10 ** 9:   # refused at the header
                assert events == expect[:k] + [ProtocolError(
                    f"frame too long: {int(bad)} octets, maximum {FUZZ_MAX_FRAME}", txnr)], events


def fuzz_oversize_floods(factory, n=300):
    """A frame announcing more than max_frame, then a flood: refused at its header, the
    flood never buffered, however it is cut."""
    rng = random.Random(5425)
    for _ in range(n):
        frames = [f for f in session_frames(rng) if not f.endswith(b" close 0\n")]
        size = rng.choice([FUZZ_MAX_FRAME + HEADER_MAX + 1, 1000, 65536, MAX_TXNR])
        txnr = len(frames) + 1
        flood = b"".join(frames) + b"%d syslog %d " % (txnr, size) + rng.randbytes(rng.randint(200, 3000))
        events = check_session(flood, rng, factory)
        assert events == expected_events(frames) + [ProtocolError(
            f"frame too long: {size} octets, maximum {FUZZ_MAX_FRAME}", txnr)], events


def fuzz_grammar(factory, n=1500):
    """Frames built field by field from mostly valid, sometimes wrong, pieces: reaches
    every state with all sorts of neighbours."""
    rng = random.Random(9)

    def pick(good, bad, p=0.85):
        return good if rng.random() < p else rng.choice(bad)

    for _ in range(n):
        out, t = [OPEN if rng.random() < 0.8 else b""], 2 if rng.random() < 0.9 else 1
        for _ in range(rng.randint(1, 6)):
            data = rng.choice([b"", MSG, rng.randbytes(rng.randint(1, 30)), b"x" * rng.randint(90, 110)])
            out += [pick(b"%d" % t, BAD_TXNRS), b" ",
                    pick(b"syslog", [b"close", b"open", b"rsp", b"starttls", b"SYSLOG", b"", b"a" * 33, b"sys log"]),
                    b" ", pick(b"%d" % len(data), BAD_DATALENS + [b"%d" % (len(data) + 1), b"0"]),
                    pick(b" " if data else b"", [b"", b" ", b"\n", b"  "]), data,
                    pick(b"\n", [b"", b"\r\n", b"x", b"\n\n"])]
            t += 1
        check_session(b"".join(out), rng, factory)


def test_fuzz_random_bytes():
    fuzz_random_bytes(RelpServerConnection)


def test_fuzz_mutated_sessions():
    fuzz_mutated_sessions(RelpServerConnection)


def test_fuzz_duplicated_and_reordered_frames():
    fuzz_duplicated_and_reordered_frames(RelpServerConnection)


def test_fuzz_bad_txnr_and_datalen():
    fuzz_bad_txnr_and_datalen(RelpServerConnection)


def test_fuzz_oversize_floods():
    fuzz_oversize_floods(RelpServerConnection)


def test_fuzz_grammar():
    fuzz_grammar(RelpServerConnection)


def test_truncated_session_at_every_offset_is_never_an_error():
    frames = [OPEN, syslog(2, MSG + b"\n"), syslog(3, b""), syslog(4, b"<13>a\nb"), b"5 close 0\n"]
    data, expect = b"".join(frames), expected_events(frames)
    ends = [len(b"".join(frames[:k + 1])) for k in range(len(frames))]
    rng = random.Random(1)
    for cut in range(len(data) + 1):
        events = check_session(data[:cut], rng)
        assert events == expect[:sum(1 for e in ends if e <= cut)], cut


def test_reference_agrees_with_the_examples_above():
    assert reference_session(OPEN + syslog(2, MSG) + b"3 close 0\n") == ([OPEN_EVENT, Syslog(2, MSG), Close(3)],
                                                                          VALID)
    assert reference_session(OPEN + b"2 syslog 101 ") == ([OPEN_EVENT], 2)
    assert reference_session(OPEN + b"3 syslog 1 x\n") == ([OPEN_EVENT], None)
    assert reference_session(OPEN + b"2 syslog 1 xy\n") == ([OPEN_EVENT], 2)
    assert reference_session(b"1 syslog 1 x\n") == ([], 1)
    assert reference_session(OPEN + b"2 syslog 1") == ([OPEN_EVENT], VALID)
    assert reference_session(OPEN + b"0 ") == ([OPEN_EVENT], None)


# Broken decoders, each with one realistic bug: the fuzz checks above must catch each. The
# connection is native (no private method to override): each mutant wraps a real one and
# breaks what comes out of it.

class _Mutant:
    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self.conn = RelpServerConnection(max_frame=max_frame)

    def __getattr__(self, name):   # unacked, failed, buffered, ack, nak...
        return getattr(self.conn, name)

    def receive_data(self, data):
        return self.broken(self.conn.receive_data(data), data)

    def broken(self, events, data):
        return events


class _Raises(_Mutant):                        # shows garbage by decoding it as ASCII
    def broken(self, events, data):
        if any(isinstance(e, ProtocolError) for e in events):
            data.decode("ascii")
        return events


class _NoSequence(_Mutant):                    # takes any txnr: duplicates delivered twice
    failed = False

    def broken(self, events, data):
        return [Syslog(int(e.reason.split()[2]), b"") if isinstance(e, ProtocolError) and "out of sequence" in e.reason
                else e for e in events]


class _Unbounded(_Mutant):                     # ignores the configured maximum
    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        super().__init__(max_frame=10 ** 9)


class _Forgetful(_Mutant):                     # loses the frames read with the bad one
    def broken(self, events, data):
        errors = [e for e in events if isinstance(e, ProtocolError)]
        return errors or events


class _Silent(_Mutant):                        # dies without saying why
    def broken(self, events, data):
        return [e for e in events if not isinstance(e, ProtocolError)]


class _Lenient(_Mutant):                       # skips a broken frame and reads on
    def broken(self, events, data):
        if any(isinstance(e, ProtocolError) for e in events):
            self.conn = RelpServerConnection(max_frame=self.max_frame)
            self.conn.receive_data(OPEN)
        return events


@pytest.mark.parametrize("mutant,fuzz,message", [
    (_Raises, fuzz_random_bytes, "receive_data raised UnicodeDecodeError"),
    (_NoSequence, fuzz_duplicated_and_reordered_frames, "each frame once"),
    (_Unbounded, fuzz_oversize_floods, "buffer [0-9]+ bytes"),
    (_Forgetful, fuzz_mutated_sessions, None),
    (_Silent, fuzz_grammar, "failed=True with events"),
    (_Lenient, fuzz_mutated_sessions, None),
])
def test_fuzz_checks_catch_a_broken_decoder(mutant, fuzz, message):
    with pytest.raises(AssertionError, match=message):
        fuzz(mutant)
