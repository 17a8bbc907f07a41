"""RELP server connection (librelp's dialect). Every input stream is fed whole, one byte
at a time and split at every offset (h11 test_io style): the events must not change."""

import pytest

from streams.protocols.relp import (
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
