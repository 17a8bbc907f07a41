"""RFC 6587 framing (LF / octet counting) and UDP datagrams. Every stream case is fed
whole, one byte at a time and split at every offset (h11 test_io style): same frames."""

import random
import re

import pytest

from streams.protocols.framing import (
    DEFAULT_MAX_COUNT,
    DEFAULT_MAX_SIZE,
    LF_FRAMING,
    OCTET_COUNTING,
    Frame,
    SyslogFramer,
    datagram_frame,
    detect_framing,
    strip_eol,
)
from tests.fuzz import first_diff, random_chunks
from tests.fuzz import mutate as _mutate

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


# -- fuzzing ----------------------------------------------------------------------------
#
# Seeded `random.Random` inputs, each fed whole and in random chunks. `check_stream` holds
# the invariants: nothing raises, every chunking gives the same frames and framing, the
# buffer stays within max_size + 2, every frame is within max_size, carries data or an
# error, and only the last one is `unterminated`, and the frames are exactly those of
# `reference_frames` (an independent whole-input reading of the module doc with regexes
# and slices, not a state machine): bad input comes out as error frames, never raises,
# never vanishes. The `mutant` tests at the end prove the checks can fail.

_COUNT = re.compile(rb"([0-9]{1,9}) ")


def _ref_line(content: bytes, max_size: int, error: bool = False):
    """An LF-terminated line (LF already removed)."""
    if content.endswith(b"\r"):
        content = content[:-1]
    if content or error:
        return [(content[:max_size], len(content) > max_size, False, error)]
    return []


def _ref_tail(rest: bytes, max_size: int, error: bool = False):
    """What is left without an LF at the end of the stream."""
    if len(rest) > max_size + 1:       # known too long before the end: delivered then
        return [(rest[:max_size], True, False, error)]
    if rest or error:
        return [(rest[:max_size], len(rest) > max_size, True, error)]
    return []


def _ref_lines(data: bytes, pos: int, max_size: int, error: bool = False):
    j = data.find(b"\n", pos)
    return _ref_tail(data[pos:], max_size, error) if j < 0 else _ref_line(data[pos:j], max_size, error)


def reference_frames(data: bytes, max_size: int, max_count: int = DEFAULT_MAX_COUNT):
    """(frames as `shape()` tuples, framing) of a whole stream."""
    if not data:
        return [], None
    frames, pos, n = [], 0, len(data)
    if not re.match(rb"[0-9]{1,9} <", data):
        while pos < n:
            frames += _ref_lines(data, pos, max_size)
            pos = data.find(b"\n", pos) + 1 or n
        return frames, LF_FRAMING
    max_count = max(max_count, max_size)
    while True:
        while pos < n and data[pos] in b"\r\n":
            pos += 1
        if pos == n:
            return frames, OCTET_COUNTING
        m = _COUNT.match(data, pos)
        if m is None or not 0 < int(m[1]) <= max_count:      # lost: resync after the next LF
            frames += _ref_lines(data, pos, max_size, error=True)
            pos = data.find(b"\n", pos) + 1 or n
            continue
        count, start = int(m[1]), m.end()
        body = data[start:start + count]
        if count > max_size + 2 and len(body) >= max_size:
            frames.append((body[:max_size], True, False, False))
        elif len(body) < count:
            frames.append((body[:max_size], count > max_size + 2 or len(body) > max_size, True, True))
        else:
            msg = strip_eol(body)
            if msg:
                frames.append((msg[:max_size], len(msg) > max_size, False, False))
        if len(body) < count:
            return frames, OCTET_COUNTING
        pos = start + count


def _framed(framer, chunks, max_size, data):
    frames = []
    for chunk in chunks:
        try:
            frames += framer.receive_data(chunk)
        except Exception as e:   # noqa: BLE001 - any escape is the failure we look for
            raise AssertionError(f"receive_data raised {e!r}; input {data!r}") from e
        assert framer.buffered <= max_size + 2, f"buffer {framer.buffered} bytes; input {data!r}"
    try:
        frames += framer.end_of_stream()
    except Exception as e:   # noqa: BLE001
        raise AssertionError(f"end_of_stream raised {e!r}; input {data!r}") from e
    return frames



def check_stream(data: bytes, rng, factory=SyslogFramer, max_size: int = 64):
    """Every invariant on one input; returns the frames."""
    framer = factory(max_size=max_size)
    frames = _framed(framer, [data], max_size, data)
    other = factory(max_size=max_size)
    assert _framed(other, random_chunks(rng, data), max_size, data) == frames, f"chunking changed frames: {data!r}"
    assert other.framing == framer.framing
    for k, f in enumerate(frames):
        assert isinstance(f, Frame) and type(f.data) is bytes, f
        assert len(f.data) <= max_size, f"frame of {len(f.data)} bytes > {max_size}; input {data!r}"
        assert f.data or f.error, f"empty frame; input {data!r}"
        assert f.error is None or (isinstance(f.error, str) and f.error), f
        assert not f.unterminated or k == len(frames) - 1, f"unterminated frame before the end: {data!r}"
        assert not f.truncated or f.unterminated or len(f.data) == max_size, f
    expected, framing = reference_frames(data, max_size)
    assert shape(frames) == expected, f"{shape(frames)} != reference {expected}; input {data!r}"
    assert framer.framing == framing, data
    return frames


def rsyslog_message(rng) -> bytes:
    """A message as rsyslog's RFC 5424 template writes it: no LF inside, one at the end."""
    return b"<13>1 2024-01-01T00:00:00Z h app - - - " + bytes(rng.choice(b"abc \t<>=\r") for _ in range(
        rng.randint(0, 30))) + b"\n"


def valid_stream(rng) -> tuple[bytes, list[bytes], list[int]]:
    """(stream, its messages as delivered, where each message's encoding ends)."""
    counted = rng.random() < 0.6
    msgs, data, ends = [], b"", []
    for _ in range(rng.randint(1, 8)):
        if counted:
            msg = rng.choice([rsyslog_message(rng), b"<13>x\ny" + rng.randbytes(rng.randint(0, 20)), b"<1>\r\n"])
            data += octet(msg)
            msgs.append(strip_eol(msg))
            ends.append(len(data))
            data += rng.choice([b"", b"", b"\n", b"\r\n"])   # line ends outside the count
        else:
            msg = b"<13>" + bytes(rng.choice(b"abc \t<>=\x00\xff") for _ in range(rng.randint(0, 40)))
            data += msg + rng.choice([b"\n", b"\r\n"])
            msgs.append(msg)
            ends.append(len(data))
            data += rng.choice([b"", b"", b"\n"])             # an empty line
    return data, msgs, ends


INTERESTING = b"0123456789 <\n\r-x"



def mutate(rng, data: bytes) -> bytes:
    return _mutate(rng, data, INTERESTING)



SIZES = (16, 17, 40, 64)


def fuzz_random_bytes(factory, n=1500):
    rng = random.Random(20240613)
    for _ in range(n):
        size = rng.choice(SIZES)
        check_stream(rng.randbytes(rng.choice((1, 2, 5, 20, 100, 300))), rng, factory, size)
        check_stream(bytes(rng.choice(INTERESTING) for _ in range(rng.randint(1, 60))), rng, factory, size)
        check_stream(b"%d <" % rng.randint(1, 99) + rng.randbytes(rng.randint(0, 150)), rng, factory, size)


def fuzz_mutated_streams(factory, n=1500):
    """Byte-level damage: the messages before the first damaged byte come out intact and
    once; a truncation alone damages at most the last frame."""
    rng = random.Random(6587)
    for _ in range(n):
        good, msgs, ends = valid_stream(rng)
        size = rng.choice((80, 128))   # above every message: damage, not size, is tested here
        assert check_stream(good, rng, factory, size) == [Frame(m) for m in msgs if m]
        data = mutate(rng, good)
        frames = check_stream(data, rng, factory, size)
        p = first_diff(data, good)
        intact = [Frame(m) for m, e in zip(msgs, ends, strict=True) if e <= p and m]
        assert frames[:len(intact)] == intact, (data, frames)
        if good.startswith(data):
            assert all(f.ok for f in frames[:-1]) and frames[:len(intact)] == intact, (data, frames)
            assert len(frames) <= len(intact) + 1, (data, frames)


def fuzz_token_streams(factory, n=1500):
    """Streams built from pieces, right and wrong: counted messages, bad and huge counts,
    stray line ends, long runs, noise."""
    rng = random.Random(9)
    pieces = [
        lambda: octet(rsyslog_message(rng)), lambda: octet(b"<1>" + rng.randbytes(rng.randint(0, 80))),
        lambda: rng.choice([b"-5", b"x", b"0", b"00", b"1234567890", b"999999999", b"12a", b"", b"+5", b"1e3"])
        + b" <13>bad\n",
        lambda: b"%d <13>" % rng.choice([1, 17, 66, 10 ** 5, DEFAULT_MAX_COUNT]),
        lambda: rng.choice([b"\n", b"\r\n", b"\r", b" ", b"\n\n"]),
        lambda: b"x" * rng.randint(10, 300), lambda: b"y" * rng.randint(10, 300) + b"\n",
        lambda: rng.randbytes(rng.randint(1, 20)), lambda: b"%d" % rng.randint(0, 10 ** 10),
    ]
    for _ in range(n):
        start = rng.choice([b"", octet(b"<13>first"), b"<13>lf\n"])
        data = start + b"".join(rng.choice(pieces)() for _ in range(rng.randint(1, 8)))
        check_stream(data, rng, factory, rng.choice(SIZES))


def fuzz_floods(factory, n=200):
    """Huge counts and endless lines, cut anywhere: the buffer never grows past max_size + 2."""
    rng = random.Random(5425)
    for _ in range(n):
        size = rng.choice(SIZES)
        flood = rng.randbytes(rng.randint(200, 3000)).replace(b"\n", b"")
        data = rng.choice([b"%d <" % rng.randint(size + 3, 10 ** 6) + flood, b"<13>" + flood,
                           octet(b"<13>x") + b"%d " % rng.randint(size + 3, 10 ** 6) + flood,
                           octet(b"<13>x") + b"garbage" + flood])
        check_stream(data, rng, factory, size)


def test_fuzz_random_bytes():
    fuzz_random_bytes(SyslogFramer)


def test_fuzz_mutated_streams():
    fuzz_mutated_streams(SyslogFramer)


def test_fuzz_token_streams():
    fuzz_token_streams(SyslogFramer)


def test_fuzz_floods():
    fuzz_floods(SyslogFramer)


BAD_COUNTS = [b"-5", b"x", b"", b"0", b"00", b"1234567890", b"999999999", b"12a", b" 5", b"+5", b"5.0", b"0x1f",
              b"\xff"]


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_corrupt_count_loses_only_its_own_message(bad):
    """rsyslog ends each counted message with an LF: after a bad count the framer resyncs
    there, so exactly that message comes out as an error frame and all others intact."""
    rng = random.Random(bad)
    for _ in range(40):
        msgs = [rsyslog_message(rng) for _ in range(rng.randint(2, 6))]
        k = rng.randrange(1, len(msgs))       # the first count decides the framing: see below
        parts = [octet(m) for m in msgs]
        parts[k] = bad + b" " + msgs[k]
        data = b"".join(parts)
        frames = check_stream(data, rng, max_size=80)
        damaged = (bad + b" " + msgs[k][:-1]).removesuffix(b"\r")
        assert shape(frames) == (shape(Frame(strip_eol(m)) for m in msgs[:k])
                                 + [(damaged[:80], len(damaged) > 80, False, True)]
                                 + shape(Frame(strip_eol(m)) for m in msgs[k + 1:])), data


def test_corrupt_first_count_falls_back_to_lines():
    """A bad first count means the connection is LF framed: every line comes out, the
    counts included as text (nothing lost, nothing flagged: the framer cannot know)."""
    msgs = [b"<13>1 - h app - - - m%d\n" % i for i in range(3)]
    data = b"x5 " + msgs[0] + octet(msgs[1]) + octet(msgs[2])
    frames = check_stream(data, random.Random(0))
    assert frames == [Frame(b"x5 " + msgs[0][:-1]), Frame(octet(msgs[1])[:-1]), Frame(octet(msgs[2])[:-1])]


def test_truncated_stream_at_every_offset():
    msgs = [b"<13>a\n", b"<13>with\nLF\n", b"<13>" + b"z" * 30]
    for counted in (True, False):
        data = b"".join(octet(m) for m in msgs) if counted else b"<13>a\n<13>b\r\n\n<13>c\n"
        full = check_stream(data, random.Random(0))
        decided = 3 if counted else 1      # `7 <` decides the framing: a shorter stream is a line
        for cut in range(decided):
            assert check_stream(data[:cut], random.Random(cut)) == ([Frame(data[:cut], unterminated=True)]
                                                                     if cut else [])
        for cut in range(decided, len(data) + 1):
            frames = check_stream(data[:cut], random.Random(cut))
            if frames and not frames[-1].ok:    # the cut one: flagged, with what had come of it
                cut_one, frames = frames[-1], frames[:-1]
                assert cut_one.unterminated and data[:cut].endswith(cut_one.data), cut
                assert (cut_one.error is not None) == counted, cut   # a counted one was promised whole
            assert frames == full[:len(frames)], cut


def test_reference_agrees_with_the_examples_above():
    assert reference_frames(b"a\nb", 16) == ([(b"a", *OK), (b"b", False, True, False)], LF_FRAMING)
    assert reference_frames(octet(b"<1>a") + b"AB <1>bad\n" + octet(b"<1>b"), 16) == (
        [(b"<1>a", *OK), (b"AB <1>bad", False, False, True), (b"<1>b", *OK)], OCTET_COUNTING)
    assert reference_frames(b"30 <1>" + b"B" * 20, 16) == ([(b"<1>" + b"B" * 13, True, False, False)], OCTET_COUNTING)
    assert reference_frames(b"10 <1>abc", 16) == ([(b"<1>abc", False, True, True)], OCTET_COUNTING)
    assert reference_frames(b"A" * 17, 16) == ([(b"A" * 16, True, True, False)], LF_FRAMING)


# Broken framers, each with one realistic bug: the fuzz checks above must catch each. The
# framer is native (no private method to override): each mutant wraps a real one and
# breaks what comes out of it.

class _Mutant:
    def __init__(self, max_size=DEFAULT_MAX_SIZE):
        self.max_size = max_size
        self.framer = SyslogFramer(max_size=max_size)

    framing = property(lambda self: self.framer.framing)
    buffered = property(lambda self: self.framer.buffered)

    def receive_data(self, data):
        return self.broken(self.framer.receive_data(data))

    def end_of_stream(self):
        return self.framer.end_of_stream()

    def broken(self, frames):
        return frames


class _Raises(_Mutant):               # shows a garbage line by decoding it as ASCII
    def broken(self, frames):
        for f in frames:
            if f.error:
                f.data.decode("ascii")
        return frames


class _Unbounded(_Mutant):            # ignores the configured maximum
    def __init__(self, max_size=DEFAULT_MAX_SIZE):
        super().__init__(max_size=10 ** 6)


class _DropsErrors(_Mutant):          # throws the garbage away, silently
    def broken(self, frames):
        return [f for f in frames if not f.error]


class _NoResync(_Mutant):             # after a bad count, reads lines for good
    def broken(self, frames):
        if any(f.error for f in frames):
            self.framer = SyslogFramer(max_size=self.max_size)
            self.framer.receive_data(b"\n")   # decided: LF
        return frames


@pytest.mark.parametrize("mutant,fuzz,message", [
    (_Raises, fuzz_mutated_streams, "receive_data raised UnicodeDecodeError"),
    (_Unbounded, fuzz_floods, "buffer [0-9]+ bytes"),
    (_DropsErrors, fuzz_token_streams, "reference"),
    (_NoResync, fuzz_mutated_streams, None),
])
def test_fuzz_checks_catch_a_broken_framer(mutant, fuzz, message):
    with pytest.raises(AssertionError, match=message):
        fuzz(mutant)
