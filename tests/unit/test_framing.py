"""RFC 6587 framing (LF / octet counting) and UDP datagrams. Every stream case is fed
whole, one byte at a time and split at every offset (h11 test_io style): same frames."""

import pytest

from streams.protocols.framing import (
    LF_FRAMING,
    OCTET_COUNTING,
    Frame,
    SyslogFramer,
    datagram_frame,
    detect_framing,
    strip_eol,
)

FAIL2BAN = b"2024-01-02 03:04:05,678 fail2ban.actions [1]: NOTICE [sshd] Ban 1.2.3.4"
RFC5424 = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - An application event"


def octet(msg: bytes) -> bytes:
    return b"%d %s" % (len(msg), msg)


def run(chunks, **kw) -> tuple[list[Frame], str | None]:
    framer = SyslogFramer(**kw)
    frames = []
    for chunk in chunks:
        frames += framer.receive_data(chunk)
    frames += framer.end_of_stream()
    return frames, framer.framing


def feed_all_ways(data: bytes, **kw) -> tuple[list[Frame], str | None]:
    """The frames of `data` fed whole, after checking that every other way of cutting it
    (one byte at a time, two pieces at every offset, three pieces for short inputs)
    gives exactly the same frames and the same framing decision."""
    whole = run([data], **kw)
    assert run([data[i:i + 1] for i in range(len(data))], **kw) == whole, "byte at a time"
    for k in range(len(data) + 1):
        assert run([data[:k], data[k:]], **kw) == whole, f"split at {k}"
    if len(data) <= 80:
        for k in range(len(data) + 1):
            for m in range(k, len(data) + 1):
                assert run([data[:k], data[k:m], data[m:]], **kw) == whole, f"split at {k},{m}"
    return whole


def shape(frames):
    """Frames with the error text reduced to 'has an error' (texts are checked apart)."""
    return [(f.data, f.truncated, f.unterminated, f.error is not None) for f in frames]


OK = (False, False, False)


# -- framing detection ------------------------------------------------------------------

@pytest.mark.parametrize("prefix,mode", [
    (b"", None), (b"1", None), (b"123", None), (b"123 ", None), (b"123456789", None),
    (b"123 <", OCTET_COUNTING), (b"9 <13>x", OCTET_COUNTING), (b"123456789 <", OCTET_COUNTING),
    (b"<13>Jan", LF_FRAMING), (b"\n", LF_FRAMING), (b" 12 <", LF_FRAMING),
    (b"2024-01-02", LF_FRAMING), (b"12 x", LF_FRAMING), (b"12  <", LF_FRAMING),
    (b"1234567890", LF_FRAMING), (b"1234567890 <", LF_FRAMING), (b"12\n", LF_FRAMING),
])
def test_detect_framing(prefix, mode):
    assert detect_framing(prefix) == mode


def test_undecided_until_enough_bytes():
    framer = SyslogFramer()
    for b in b"47 ":
        assert framer.receive_data(bytes([b])) == [] and framer.framing is None
    assert framer.buffered == 3
    assert framer.receive_data(b"<") == [] and framer.framing == OCTET_COUNTING


# -- LF framing ---------------------------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    (b"<13>hello\n", [(b"<13>hello", *OK)]),
    (b"<13>a\n<13>b\n<13>c\n", [(b"<13>a", *OK), (b"<13>b", *OK), (b"<13>c", *OK)]),
    (b"a\r\nb\r\n", [(b"a", *OK), (b"b", *OK)]),                       # CRLF
    (b"a\r\r\n", [(b"a\r", *OK)]),                                      # only one CR goes
    (b"a\rb\n", [(b"a\rb", *OK)]),                                      # inner CR kept
    (b"\n\na\n\r\n\nb\n\n", [(b"a", *OK), (b"b", *OK)]),                # empty lines skipped
    (b"a\nb", [(b"a", *OK), (b"b", False, True, False)]),               # unterminated at EOF
    (b"a\nb\r", [(b"a", *OK), (b"b\r", False, True, False)]),
    (b"123", [(b"123", False, True, False)]),                           # still undecided at EOF
    (b"123 ", [(b"123 ", False, True, False)]),
    (b"12345\n67 x\n", [(b"12345", *OK), (b"67 x", *OK)]),              # digits alone: LF
    (b"12  <13>x\n", [(b"12  <13>x", *OK)]),                            # two spaces: LF
    (b"1234567890 <13>x\n", [(b"1234567890 <13>x", *OK)]),             # 10 digits: LF
    (b" 5 <13>x\n", [(b" 5 <13>x", *OK)]),
    (b"", []),
])
def test_lf_framing(data, expected):
    frames, framing = feed_all_ways(data)
    assert shape(frames) == expected
    assert framing == (LF_FRAMING if data else None)


def test_fail2ban_own_log_over_tcp_is_lf_framed():
    data = FAIL2BAN + b"\n" + FAIL2BAN.replace(b"Ban", b"Unban") + b"\n"
    frames, framing = feed_all_ways(data)
    assert framing == LF_FRAMING
    assert frames == [Frame(FAIL2BAN), Frame(FAIL2BAN.replace(b"Ban", b"Unban"))]


def test_lf_framing_decided_once_per_connection():
    # A later line that looks octet counted is still a line.
    frames, framing = feed_all_ways(b"<13>first\n5 <1>x\n")
    assert framing == LF_FRAMING
    assert frames == [Frame(b"<13>first"), Frame(b"5 <1>x")]


# -- octet counting -----------------------------------------------------------------------

def test_octet_counted_messages():
    data = octet(b"<13>a") + octet(b"<13>with\nLF inside") + octet(RFC5424)
    frames, framing = feed_all_ways(data)
    assert framing == OCTET_COUNTING
    assert frames == [Frame(b"<13>a"), Frame(b"<13>with\nLF inside"), Frame(RFC5424)]


def test_rfc5424_template_trailing_lf_inside_count_is_stripped():
    # rsyslog's RSYSLOG_SyslogProtocol23Format ends the message with its own LF.
    data = octet(RFC5424 + b"\n") + octet(b"<14>1 - h a - - - two\n") + octet(b"<14>crlf\r\n")
    frames, _ = feed_all_ways(data)
    assert frames == [Frame(RFC5424), Frame(b"<14>1 - h a - - - two"), Frame(b"<14>crlf")]


def test_only_one_trailing_lf_stripped_in_count():
    frames, _ = feed_all_ways(octet(b"<1>x\n\n"))
    assert frames == [Frame(b"<1>x\n")]


def test_line_ends_between_counted_frames_are_skipped():
    data = octet(b"<1>a") + b"\n" + octet(b"<1>b") + b"\r\n\n" + octet(b"<1>c")
    frames, _ = feed_all_ways(data)
    assert frames == [Frame(b"<1>a"), Frame(b"<1>b"), Frame(b"<1>c")]


def test_empty_counted_message_not_delivered():
    frames, _ = feed_all_ways(octet(b"<1>a") + b"1 \n" + octet(b"<1>b"))
    assert frames == [Frame(b"<1>a"), Frame(b"<1>b")]


@pytest.mark.parametrize("bad,reason", [
    (b"AB <1>bad", "byte 0x41 in octet count"),
    (b"12x <1>bad", "byte 0x78 in octet count"),
    (b"0 <1>bad", "invalid octet count 0"),
    (b" <1>bad", "empty octet count"),
    (b"1234567890 <1>bad", "octet count longer than 9 digits"),
    (b"999999999 <1>bad", "invalid octet count 999999999"),      # above max_count
])
def test_malformed_count_resyncs_on_next_lf(bad, reason):
    data = octet(b"<1>a") + bad + b"\n" + octet(b"<1>b")
    frames, framing = feed_all_ways(data)
    assert framing == OCTET_COUNTING
    assert frames == [Frame(b"<1>a"), Frame(bad, error=reason), Frame(b"<1>b")]
    assert not frames[1].ok


def test_malformed_count_garbage_line_is_bounded():
    garbage = b"x" * 100
    data = octet(b"<1>a") + garbage + b"\n" + octet(b"<1>b")
    frames, _ = feed_all_ways(data, max_size=16)
    assert shape(frames) == [(b"<1>a", *OK), (b"x" * 16, True, False, True), (b"<1>b", *OK)]


def test_malformed_count_at_eof():
    frames, _ = feed_all_ways(octet(b"<1>a") + b"oops")
    assert frames == [Frame(b"<1>a"), Frame(b"oops", unterminated=True, error="byte 0x6f in octet count")]


def test_eof_inside_count_and_inside_message():
    frames, _ = feed_all_ways(octet(b"<1>a") + b"12")
    assert frames == [Frame(b"<1>a"), Frame(b"12", unterminated=True, error="stream ended inside an octet count")]
    frames, _ = feed_all_ways(b"10 <1>abc")
    assert shape(frames) == [(b"<1>abc", False, True, True)]
    assert "4 octets missing" in frames[0].error


def test_max_count_is_configurable():
    data = octet(b"<1>a") + b"5000 <1>y\n" + octet(b"<1>b")
    frames, _ = run([data], max_size=16, max_count=1000)
    assert shape(frames) == [(b"<1>a", *OK), (b"5000 <1>y", False, False, True), (b"<1>b", *OK)]


# -- size limit -------------------------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    # LF framing, max_size 16
    (b"A" * 20 + b"\nok\n", [(b"A" * 16, True, False, False), (b"ok", *OK)]),
    (b"A" * 16 + b"\r\nok\n", [(b"A" * 16, *OK), (b"ok", *OK)]),         # the CRLF is not content
    (b"A" * 17 + b"\n", [(b"A" * 16, True, False, False)]),
    (b"A" * 16 + b"\r\r\n", [(b"A" * 16, True, False, False)]),
    (b"A" * 40, [(b"A" * 16, True, False, False)]),                      # no LF ever
    (b"A" * 17, [(b"A" * 16, True, True, False)]),                       # EOF before we knew
    # octet counting, max_size 16
    (octet(b"<1>" + b"B" * 17) + octet(b"<1>ok"), [(b"<1>" + b"B" * 13, True, False, False), (b"<1>ok", *OK)]),
    (octet(b"<1>" + b"B" * 13 + b"\r\n") + octet(b"<1>ok"), [(b"<1>" + b"B" * 13, *OK), (b"<1>ok", *OK)]),
    (octet(b"<1>" + b"B" * 13 + b"\n"), [(b"<1>" + b"B" * 13, *OK)]),
    (octet(b"<1>" + b"B" * 14 + b"\n"), [(b"<1>" + b"B" * 13, True, False, False)]),
    (b"30 <1>" + b"B" * 20, [(b"<1>" + b"B" * 13, True, False, False)]),  # EOF while skipping
])
def test_truncation_at_max_size(data, expected):
    frames, _ = feed_all_ways(data, max_size=16)
    assert shape(frames) == expected


@pytest.mark.parametrize("chunk", [65536, 4093, 1 << 20])
@pytest.mark.parametrize("counted", [False, True])
def test_huge_message_is_truncated_with_bounded_buffer(chunk, counted):
    max_size = 64 * 1024
    big = b"<13>" + b"x" * (10 * 1024 * 1024)
    after = b"<13>next"
    data = octet(big) + octet(after) if counted else big + b"\n" + after + b"\n"
    framer = SyslogFramer(max_size=max_size)
    frames = []
    for i in range(0, len(data), chunk):
        frames += framer.receive_data(data[i:i + chunk])
        assert framer.buffered <= max_size + 2
    frames += framer.end_of_stream()
    assert framer.framing == (OCTET_COUNTING if counted else LF_FRAMING)
    assert frames == [Frame(big[:max_size], truncated=True), Frame(after)]


def test_max_size_minimum():
    with pytest.raises(ValueError):
        SyslogFramer(max_size=8)


# -- lifecycle --------------------------------------------------------------------------

def test_receive_after_eof_is_an_error():
    framer = SyslogFramer()
    assert framer.end_of_stream() == []
    assert framer.end_of_stream() == []
    with pytest.raises(RuntimeError):
        framer.receive_data(b"x\n")


def test_frame_ok_property():
    assert Frame(b"x").ok
    assert not Frame(b"x", truncated=True).ok
    assert not Frame(b"x", unterminated=True).ok
    assert not Frame(b"x", error="bad").ok


# -- UDP ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    (b"<13>hello", Frame(b"<13>hello")),
    (b"<13>hello\n", Frame(b"<13>hello")),
    (b"<13>hello\r\n", Frame(b"<13>hello")),
    (b"<13>hello\n\n", Frame(b"<13>hello\n")),
    (b"<13>a\nb", Frame(b"<13>a\nb")),                 # a datagram is one message, LF or not
    (b"5 <13>x", Frame(b"5 <13>x")),                   # no octet counting over UDP
    (b"<13>" + b"y" * 30, Frame(b"<13>" + b"y" * 12, truncated=True)),
    (b"", None),
    (b"\n", None),
])
def test_datagram_frame(data, expected):
    assert datagram_frame(data, max_size=16) == expected


def test_datagram_frame_accepts_memoryview():
    assert datagram_frame(memoryview(b"<13>x\n")) == Frame(b"<13>x")


def test_strip_eol():
    assert strip_eol(b"a\n") == b"a"
    assert strip_eol(b"a\r\n") == b"a"
    assert strip_eol(b"a\r") == b"a\r"
    assert strip_eol(b"a\n\n") == b"a\n"
    assert strip_eol(b"") == b""
