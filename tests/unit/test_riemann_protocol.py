"""Riemann protobuf codec and TCP/UDP framing (streams.protocols.riemann), sans-IO."""

import math
import random
import struct

import pytest

from streams.event import Event
from streams.protocols import riemann as rp
from streams.protocols.riemann import (
    FrameError,
    Msg,
    RiemannDecodeError,
    RiemannTcpConnection,
    decode_datagram,
    decode_event,
    decode_msg,
    encode_event,
    encode_msg,
    error_reply,
    events_reply,
    frame,
    ok_reply,
    stamp,
)

# ----------------------------------------------------------------- hand-made wire bytes


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(field: int, wt: int) -> bytes:
    return varint(field << 3 | wt)


def ld(field: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return key(field, 2) + varint(len(payload)) + payload


def vi(field: int, n: int) -> bytes:
    return key(field, 0) + varint(n)


def zz(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def f64(field: int, x: float) -> bytes:
    return key(field, 1) + struct.pack("<d", x)


def f32(field: int, x: float) -> bytes:
    return key(field, 5) + struct.pack("<f", x)


def msg_of(*event_bodies: bytes) -> bytes:
    return b"".join(ld(6, body) for body in event_bodies)


# What `riemann-client send -h web1 -S "cpu load" -s ok -D "all good" -a k=v -t prod -d 1.5
# -L 30` puts on the wire (the C client always adds x-client=riemann-c-client).
C_CLIENT_EVENT = (
    ld(2, "ok")
    + ld(3, "cpu load")
    + ld(4, "web1")
    + ld(5, "all good")
    + ld(7, "prod")
    + f32(8, 30.0)
    + ld(9, ld(1, "k") + ld(2, "v"))
    + ld(9, ld(1, "x-client") + ld(2, "riemann-c-client"))
    + f64(14, 1.5)
)
C_CLIENT_MSG = msg_of(C_CLIENT_EVENT)


def ev(**kw) -> Event:
    return Event(**kw)


# ----------------------------------------------------------------- exact known bytes


def test_ok_reply_is_exact():
    assert ok_reply() == bytes.fromhex("000000021001")
    assert encode_msg(ok=True) == b"\x10\x01"
    assert decode_msg(b"\x10\x01") == Msg(ok=True)


def test_error_reply_bytes_and_decode():
    r = error_reply("no index")
    assert r == b"\x00\x00\x00\x0c" + b"\x10\x00" + b"\x1a\x08no index"
    assert decode_msg(r[4:]) == Msg(ok=False, error="no index")


def test_event_known_bytes_by_hand():
    # service(3) "s", host(4) "h", metric_sint64(13) zigzag(-1)=1 -> tag 0x68
    body = encode_event(ev(host="h", service="s", metric=-1))
    assert body == bytes.fromhex("1a01732201686801")
    assert encode_msg(events=[ev(host="h", service="s", metric=-1)]) == b"\x32\x08" + body


def test_event_known_bytes_time_ttl_double():
    body = encode_event(ev(time=1.0, metric=1.5, ttl=60.0))
    # time=1 (08 01); ttl 60.0f (45 00007042); time_micros 1_000_000 (50 c0843d);
    # metric_d 1.5 (71 000000000000f83f)
    assert body == bytes.fromhex("0801450000704250c0843d71000000000000f83f")


def test_attribute_known_bytes():
    body = encode_event(ev(attributes={"x-client": "riemann-c-client"}))
    assert body == b"\x4a\x1c" + b"\x0a\x08x-client" + b"\x12\x10riemann-c-client"


def test_query_known_bytes():
    assert encode_msg(query='service = "x"') == b'\x2a\x0f\x0a\x0dservice = "x"'
    assert decode_msg(b'\x2a\x0f\x0a\x0dservice = "x"').query == 'service = "x"'


def test_encode_field_order_is_field_number_order():
    body = encode_event(
        ev(
            time=2.5,
            state="ok",
            service="s",
            host="h",
            description="d",
            tags=["a"],
            ttl=1.0,
            attributes={"k": "v"},
            metric=3,
        )
    )
    fields = []
    pos = 0
    while pos < len(body):
        tag = body[pos]
        fields.append(tag >> 3)
        wt = tag & 7
        pos += 1
        if wt == 0:
            while body[pos] & 0x80:
                pos += 1
            pos += 1
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        else:
            pos += 1 + body[pos]
    assert fields == [1, 2, 3, 4, 5, 7, 8, 9, 10, 13]


# ----------------------------------------------------------------- decoding / mapping


def test_decode_riemann_c_client_event():
    m = decode_msg(C_CLIENT_MSG)
    assert m.ok is None and m.error is None and m.query is None
    (e,) = m.events
    assert e.host == "web1" and e.service == "cpu load" and e.state == "ok"
    assert e.description == "all good"
    assert e.tags == ["prod"]
    assert e.ttl == 30.0
    assert e.metric == 1.5
    assert e.attributes == {"k": "v", "x-client": "riemann-c-client"}
    assert e.time is None  # no time on the wire: the listener stamps it
    assert e.message is None and e.fields == {} and e.meta == {}


def test_decoded_events_do_not_share_containers():
    a, b = decode_msg(msg_of(b"", b"")).events
    assert a.tags is not b.tags and a.attributes is not b.attributes
    assert a.fields is not b.fields and a.meta is not b.meta


def test_empty_inputs():
    assert decode_msg(b"") == Msg()
    assert decode_msg(msg_of(b"")).events == [Event()]
    assert decode_event(b"") == Event()


def test_accepts_bytearray_and_memoryview():
    assert decode_msg(bytearray(C_CLIENT_MSG)) == decode_msg(C_CLIENT_MSG)
    assert decode_msg(memoryview(C_CLIENT_MSG)) == decode_msg(C_CLIENT_MSG)
    with pytest.raises(TypeError):
        decode_msg("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body, expected",
    [
        (vi(1, 1700000000), 1700000000.0),
        (vi(10, 1700000000123456), 1700000000.123456),
        (vi(1, 5) + vi(10, 7_250_000), 7.25),  # micros preferred over seconds
        (vi(10, 7_250_000) + vi(1, 5), 7.25),  # whatever the order
        (vi(1, -86400), -86400.0),  # int64 negative: 10-byte varint
        (b"", None),
    ],
)
def test_time_mapping(body, expected):
    assert decode_event(body).time == expected


@pytest.mark.parametrize(
    "body, expected",
    [
        (vi(13, zz(-1)), -1),
        (vi(13, zz(-(2**63))), -(2**63)),
        (vi(13, zz(2**63 - 1)), 2**63 - 1),
        (vi(13, zz(42)), 42),
        (f64(14, 0.25), 0.25),
        (f32(15, 0.5), 0.5),
        (f32(15, 0.1), struct.unpack("<f", struct.pack("<f", 0.1))[0]),  # float32 widened
        (f32(15, 1.0) + vi(13, zz(2)) + f64(14, 3.0), 3.0),  # d first
        (f64(14, 3.0) + vi(13, zz(2)) + f32(15, 1.0), 3.0),
        (f32(15, 1.0) + vi(13, zz(2)), 2),  # then sint64
        (vi(13, zz(2)) + f32(15, 1.0), 2),
        (f64(14, 1.0) + f64(14, 2.0), 2.0),  # last one wins
        (b"", None),
    ],
)
def test_metric_mapping(body, expected):
    m = decode_event(body).metric
    assert m == expected and type(m) is type(expected)


def test_sint64_metric_is_int():
    assert isinstance(decode_event(vi(13, zz(-5))).metric, int)


@pytest.mark.parametrize("x", [math.inf, -math.inf])
@pytest.mark.parametrize("field, pack", [(14, f64), (15, f32)])
def test_infinite_metrics_decode(x, field, pack):
    assert decode_event(pack(field, x)).metric == x


@pytest.mark.parametrize("field, pack", [(14, f64), (15, f32)])
def test_nan_metric_decodes(field, pack):
    assert math.isnan(decode_event(pack(field, math.nan)).metric)


def test_nan_inf_metric_encode_as_double():
    for x in (math.inf, -math.inf):
        assert decode_event(encode_event(ev(metric=x))).metric == x
    assert math.isnan(decode_event(encode_event(ev(metric=math.nan))).metric)


def test_huge_ttl():
    assert decode_event(f32(8, 3.0e38)).ttl == struct.unpack("<f", struct.pack("<f", 3.0e38))[0]
    assert decode_event(f32(8, math.inf)).ttl == math.inf
    # beyond float32 range: encoded as infinity rather than failing
    assert decode_event(encode_event(ev(ttl=1e39))).ttl == math.inf
    assert decode_event(encode_event(ev(ttl=-1e300))).ttl == -math.inf
    assert decode_event(encode_event(ev(ttl=1e30))).ttl == pytest.approx(1e30, rel=1e-6)


def test_ttl_is_float32():
    assert decode_event(encode_event(ev(ttl=0.1))).ttl == pytest.approx(0.1, rel=1e-7)


def test_tags_and_attributes():
    body = ld(7, "a") + ld(7, "b") + ld(7, "a") + ld(9, ld(1, "k")) + ld(9, ld(2, "v2") + ld(1, "k2"))
    e = decode_event(body)
    assert e.tags == ["a", "b", "a"]
    assert e.attributes == {"k": "", "k2": "v2"}  # missing value -> "", any field order


def test_duplicate_attribute_key_last_wins():
    e = decode_event(ld(9, ld(1, "k") + ld(2, "1")) + ld(9, ld(1, "k") + ld(2, "2")))
    assert e.attributes == {"k": "2"}


def test_unicode_strings():
    e = ev(host="hôte", service="débit ✓", tags=["日本"], attributes={"ключ": "значение"}, description="\x00")
    assert decode_event(encode_event(e)) == e


def test_msg_ok_false_and_nonzero_bool():
    assert decode_msg(vi(2, 0)).ok is False
    assert decode_msg(vi(2, 2)).ok is True  # any non-zero varint is true
    assert decode_msg(vi(2, 1) + vi(2, 0)).ok is False  # last wins


def test_query_variants():
    assert decode_msg(ld(5, b"")).query == ""  # Query without its string
    assert decode_msg(ld(5, ld(1, "a")) + ld(5, b"")).query == "a"  # merged: b lacks string
    assert decode_msg(ld(5, ld(1, "a")) + ld(5, ld(1, "b"))).query == "b"


def test_deprecated_states_skipped():
    state = vi(1, 5) + ld(2, "ok") + ld(4, "h") + vi(6, 1) + ld(7, "t") + f32(8, 1.0)
    m = decode_msg(ld(4, state) + ld(6, ld(4, "h")) + ld(4, ld(2, b"\xff not UTF-8, not read")))
    assert m == Msg(events=[Event(host="h")])
    with pytest.raises(RiemannDecodeError, match="beyond buffer"):
        decode_msg(ld(4, b"\x12\x09short"))  # nested garbage in a State is still an error


UNKNOWN_FIELDS = [
    vi(6, 12345),  # Event field 6 is unused
    ld(6, "x"),
    f64(6, 1.0),
    f32(6, 1.0),
    vi(99, 1),  # two-byte tag
    ld(99, b"\x00\x01\x02"),
    f64(99, 2.0),
    f32(99, 2.0),
    vi(11, 2**64 - 1),  # 10-byte varint
    ld(12, b""),
    ld(16, "x"),
    vi(2**29 - 1, 7),  # highest field number
    key(50, 3) + vi(1, 1) + ld(2, "x") + key(50, 4),  # a proto2 group
    key(50, 3) + key(51, 3) + f32(3, 1.0) + key(51, 4) + key(50, 4),  # nested groups
    key(50, 3) + key(50, 4),  # empty group
]


@pytest.mark.parametrize("unknown", UNKNOWN_FIELDS, ids=lambda b: b.hex()[:16])
def test_unknown_fields_skipped_everywhere(unknown):
    e = decode_event(unknown + ld(4, "h") + unknown + ld(9, unknown + ld(1, "k") + unknown) + unknown)
    assert e == Event(host="h", attributes={"k": ""})
    if unknown[0] >> 3 == 6:  # Msg field 6 is `events`: not unknown there
        return
    m = decode_msg(unknown + vi(2, 1) + unknown + ld(5, unknown + ld(1, "q") + unknown) + msg_of(ld(4, "h")))
    assert m == Msg(ok=True, query="q", events=[Event(host="h")])


def test_msg_unknown_field_1_and_7_skipped():
    assert decode_msg(vi(1, 1) + ld(7, "x") + vi(2, 1)) == Msg(ok=True)


# ----------------------------------------------------------------- round trips

ROUND_TRIP = [
    Event(),
    Event(host="h"),
    Event(time=1700000000.0, host="web1", service="cpu", state="ok", metric=0.5, ttl=30.0),
    Event(time=1700000000.123456, metric=-7),
    Event(time=-1.5, metric=2**63 - 1),
    Event(time=0.000001, metric=-(2**63)),
    Event(metric=0),
    Event(metric=0.0),
    Event(metric=-0.0),
    Event(metric=1e308),
    Event(description="", state="", service="", host="", tags=[""], attributes={"": ""}),
    Event(tags=["a", "b", "c"], attributes={"x-client": "riemann-c-client", "k": "v"}),
    Event(ttl=0.0),
    Event(ttl=math.inf),
    Event(host="x" * 100_000),
]


@pytest.mark.parametrize("event", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_event_round_trip(event):
    assert decode_event(encode_event(event)) == event
    m = decode_msg(encode_msg(events=[event, event]))
    assert m.events == [event, event] and m.ok is None


def test_msg_round_trip_all_fields():
    events = [Event(host=f"h{i}", metric=i) for i in range(5)]
    m = decode_msg(encode_msg(ok=False, error="boom", events=events, query="true"))
    assert m == Msg(ok=False, error="boom", query="true", events=events)


def test_encode_ignores_message_fields_meta():
    e = Event(host="h", message="raw", fields={"a": 1}, meta={"peer": "x"})
    assert decode_event(encode_event(e)) == Event(host="h")


def test_encode_metric_kinds():
    assert encode_event(Event(metric=True)) == b"\x68\x02"  # bool -> int 1
    assert encode_event(Event(metric=2**64))[:1] == b"\x71"  # beyond int64 -> double
    assert decode_event(encode_event(Event(metric=2**64))).metric == float(2**64)


def test_encode_time_floor_and_micros():
    body = encode_event(Event(time=-0.5))
    assert body[:11] == b"\x08" + varint(-1)  # floor(-0.5) = -1 s
    assert decode_event(body).time == -0.5
    assert decode_event(vi(1, 12)).time == 12.0


@pytest.mark.parametrize("t", [math.nan, math.inf])
def test_encode_non_finite_time_refused(t):
    with pytest.raises(ValueError, match="non-finite"):
        encode_event(Event(time=t))


def test_encode_attribute_value_none_and_non_str():
    body = encode_event(Event(attributes={"a": None, "b": 3}))  # type: ignore[dict-item]
    assert decode_event(body).attributes == {"a": "", "b": "3"}
    assert b"\x4a\x03\x0a\x01a" in body


def test_stamp():
    a, b = Event(time=5.0), Event()
    out = stamp([a, b], 100.0)
    assert out == [Event(time=5.0), Event(time=100.0)] and out[1] is b
    assert stamp(iter([Event()]), 1.0) == [Event(time=1.0)]


# ----------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x10", "truncated varint"),
        (b"\x10\x80", "truncated varint"),
        (b"\x10" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes"),
        (b"\x80", "truncated varint"),  # truncated tag
        (b"\x1a\x05abc", "beyond buffer"),
        (b"\x1a" + varint(2**63), "beyond buffer"),
        (b"\x32\x05\x22\x09hostname", "beyond buffer"),  # sub-message shorter than its content
        (b"\x32\x03\x22\x01", "beyond buffer"),
        (b"\x1a\x02\xc3\x28", "invalid UTF-8 in Msg.error"),
        (b"\x12\x00", "wrong wire type for Msg field 2"),  # ok as length-delimited
        (b"\x30\x01", "wrong wire type for Msg field 6"),  # events as varint
        (b"\x28\x01", "wrong wire type for Msg field 5"),
        (b"\x20\x01", "wrong wire type for Msg field 4"),
        (b"\x1d\x00\x00\x00\x00", "wrong wire type for Msg field 3"),
        (b"\x08\x01" + b"\x00", "field number 0"),
        (b"\x00", "field number 0"),
        (b"\x0e", "invalid wire type 6"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x0c", "unexpected end-group"),
        (b"\x0b\x08\x01", "unterminated group"),
        (b"\x0b\x14", "mismatched end-group"),
        (b"\x0b" * 100, "nested too deeply"),
        (b"\x09\x00\x00", "truncated fixed64"),
        (b"\x0d\x00", "truncated fixed32"),
        (varint(1 << 32 | 0), "field number too large"),
        (ld(5, b"\x0a\x01\xff"), "invalid UTF-8 in Query.string"),
        (ld(5, b"\x08\x01"), "wrong wire type for Query field 1"),
    ],
)
def test_malformed_msg(data, reason):
    with pytest.raises(RiemannDecodeError, match=reason) as info:
        decode_msg(data)
    assert isinstance(info.value, ValueError) and info.value.offset is not None


EVENT_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 2, 7: 2, 8: 5, 9: 2, 10: 0, 13: 0, 14: 1, 15: 5}
WIRE_SAMPLES = {0: b"\x01", 1: b"\x00" * 8, 2: b"\x00", 5: b"\x00" * 4}


@pytest.mark.parametrize("field", sorted(EVENT_FIELDS))
def test_event_known_field_wrong_wire_type(field):
    for wt, payload in WIRE_SAMPLES.items():
        if wt == EVENT_FIELDS[field]:
            continue
        with pytest.raises(RiemannDecodeError, match=f"wrong wire type for Event field {field}"):
            decode_msg(msg_of(key(field, wt) + payload))
    with pytest.raises(RiemannDecodeError, match=f"wrong wire type for Event field {field}"):
        decode_event(key(field, 3) + key(field, 4))


@pytest.mark.parametrize("field", [2, 3, 4, 5, 7])
def test_invalid_utf8_in_event_strings(field):
    with pytest.raises(RiemannDecodeError, match="invalid UTF-8 in Event") as info:
        decode_msg(msg_of(ld(4, "ok") + ld(field, b"ab\xff")))
    assert info.value.offset == 2 + 4 + 2 + 2  # msg header, host field, field header, "ab"


def test_invalid_utf8_in_attribute():
    with pytest.raises(RiemannDecodeError, match="invalid UTF-8 in Attribute.key"):
        decode_event(ld(9, ld(1, b"\xe2\x82")))
    with pytest.raises(RiemannDecodeError, match="invalid UTF-8 in Attribute.value"):
        decode_event(ld(9, ld(1, "k") + ld(2, b"\xed\xa0\x80")))  # UTF-16 surrogate


def test_missing_attribute_key():
    with pytest.raises(RiemannDecodeError, match="missing required Attribute.key"):
        decode_msg(msg_of(ld(9, ld(2, "v"))))
    with pytest.raises(RiemannDecodeError, match="missing required Attribute.key"):
        decode_event(ld(9, b""))
    with pytest.raises(RiemannDecodeError, match="wrong wire type for Attribute field 1"):
        decode_event(ld(9, vi(1, 1)))


def test_attribute_garbage_nested_length():
    # the attribute's inner string claims more bytes than the attribute holds
    with pytest.raises(RiemannDecodeError, match="beyond buffer"):
        decode_event(ld(9, b"\x0a\x05ab") + ld(4, "host"))


def test_error_message_has_offset():
    with pytest.raises(RiemannDecodeError) as info:
        decode_msg(b"\x10\x01\x1a\x09abc")
    assert info.value.offset == 3 and "at offset 3" in str(info.value)
    assert info.value.reason.startswith("length 9 beyond buffer")


def _top_level_boundaries(data: bytes) -> set[int]:
    """Offsets at which a top-level field of a Msg (varint or length-delimited) ends."""

    def read_varint(pos):
        n = shift = 0
        while True:
            b = data[pos]
            n |= (b & 0x7F) << shift
            pos += 1
            shift += 7
            if b < 0x80:
                return n, pos

    out, pos = {0}, 0
    while pos < len(data):
        tag, pos = read_varint(pos)
        n, pos = read_varint(pos)
        pos += n if tag & 7 == 2 else 0
        out.add(pos)
    return out


BIG_MSG = (
    encode_msg(
        ok=True,
        error="e",
        query="q",
        events=[
            Event(
                time=1700000000.25,
                host="h",
                service="s",
                state="ok",
                description="d",
                tags=["t1", "t2"],
                ttl=10.0,
                attributes={"x-client": "riemann-c-client", "k": "v"},
                metric=-3,
            ),
            Event(metric=2.5, ttl=1e30),
        ],
    )
    + ld(99, "tail")
    + ld(4, ld(2, "ok") + vi(6, 1))
)  # unknown field, a deprecated State


def test_truncation_at_every_offset():
    boundaries = _top_level_boundaries(BIG_MSG)
    for cut in range(len(BIG_MSG) + 1):
        data = BIG_MSG[:cut]
        if cut in boundaries:
            decode_msg(data)  # a prefix ending on a field boundary is a valid Msg
        else:
            with pytest.raises(RiemannDecodeError):
                decode_msg(data)


def test_truncation_inside_event_at_every_offset():
    body = encode_event(ROUND_TRIP[2]) + C_CLIENT_EVENT
    for cut in range(len(body)):
        data = ld(6, body[:cut])  # frame says what it has: the event itself is cut
        try:
            decode_msg(data)
        except RiemannDecodeError:
            pass


def _decode_or_error(data: bytes) -> None:
    try:
        m = decode_msg(data)
    except RiemannDecodeError as exc:
        assert exc.reason
        return
    assert isinstance(m, Msg)
    for e in m.events:
        assert isinstance(e, Event)
        assert all(isinstance(t, str) for t in e.tags)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.attributes.items())


def test_fuzz_random_bytes():
    rng = random.Random(20240611)
    for _ in range(4000):
        n = rng.choice((1, 2, 3, 5, 8, 16, 40, 200))
        _decode_or_error(rng.randbytes(n))


def test_fuzz_random_bytes_with_plausible_tags():
    rng = random.Random(7)
    tags = [0x08, 0x10, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x45, 0x4A, 0x50, 0x68, 0x71, 0x7D, 0x0B, 0x0C]
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(bytes([rng.choice(tags)]))
            parts.append(rng.randbytes(rng.randint(0, 6)))
        data = b"".join(parts)
        _decode_or_error(data)
        _decode_or_error(ld(6, data))
        _decode_or_error(ld(6, ld(9, data)))


def test_fuzz_mutations_of_valid_message():
    rng = random.Random(1234)
    for _ in range(3000):
        data = bytearray(BIG_MSG)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(data))
            if op == 0:
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i]
            else:
                data.insert(i, rng.randrange(256))
        _decode_or_error(bytes(data))


# ----------------------------------------------------------------- TCP framing

FRAMES = [
    frame(C_CLIENT_MSG),
    frame(b""),
    frame(encode_msg(query="true")),
    frame(encode_msg(events=[Event(host="a", metric=1), Event(host="b", metric=2.5)])),
]
STREAM = b"".join(FRAMES)
EXPECTED = [decode_msg(f[4:]) for f in FRAMES]


def test_tcp_one_frame():
    c = RiemannTcpConnection()
    assert c.receive_data(FRAMES[0]) == [EXPECTED[0]]
    assert c.pending == 0 and c.error is None


def test_tcp_several_frames_in_one_read():
    assert RiemannTcpConnection().receive_data(STREAM) == EXPECTED


def test_tcp_byte_at_a_time():
    c = RiemannTcpConnection()
    out = []
    for i in range(len(STREAM)):
        got = c.receive_data(STREAM[i : i + 1])
        out += got
    assert out == EXPECTED and c.pending == 0


def test_tcp_every_split_point():
    for cut in range(len(STREAM) + 1):
        c = RiemannTcpConnection()
        out = c.receive_data(STREAM[:cut]) + c.receive_data(STREAM[cut:])
        assert out == EXPECTED, cut


def test_tcp_every_pair_of_split_points():
    data = FRAMES[1] + FRAMES[2] + FRAMES[1] + frame(b"\x10\x01")
    want = [decode_msg(b""), decode_msg(FRAMES[2][4:]), decode_msg(b""), Msg(ok=True)]
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            c = RiemannTcpConnection()
            out = c.receive_data(data[:i]) + c.receive_data(data[i:j]) + c.receive_data(data[j:])
            assert out == want, (i, j)


def test_tcp_random_chunking():
    rng = random.Random(99)
    data = STREAM * 5
    for _ in range(200):
        c = RiemannTcpConnection()
        out, pos = [], 0
        while pos < len(data):
            n = rng.randint(0, 40)
            out += c.receive_data(memoryview(data)[pos : pos + n])
            pos += n
        assert out == EXPECTED * 5


def test_tcp_partial_header_and_empty_reads():
    c = RiemannTcpConnection()
    assert c.receive_data(b"") == []
    assert c.receive_data(b"\x00\x00") == [] and c.pending == 2
    assert c.receive_data(b"\x00\x02\x10") == [] and c.pending == 5
    assert c.receive_data(b"\x01") == [Msg(ok=True)] and c.pending == 0


def test_tcp_oversize_is_fatal_and_detected_from_the_header():
    c = RiemannTcpConnection(max_frame=10)
    assert c.receive_data(frame(b"\x10\x01")) == [Msg(ok=True)]
    out = c.receive_data(frame(b"\x10\x01") + struct.pack(">I", 11))  # payload never sent
    assert out[0] == Msg(ok=True)
    assert isinstance(out[1], FrameError) and out[1].fatal and "exceeds max_frame 10" in out[1].reason
    assert c.error is out[1]
    # the stream is broken: further data is ignored (the caller closes the connection)
    assert c.receive_data(frame(b"\x10\x01")) == []
    assert c.pending == 0 and c.end_of_stream() is None


def test_tcp_max_frame_boundary():
    payload = ld(3, "x" * 8)  # 10 bytes
    assert len(payload) == 10
    assert RiemannTcpConnection(max_frame=10).receive_data(frame(payload)) == [Msg(error="x" * 8)]
    (err,) = RiemannTcpConnection(max_frame=9).receive_data(frame(payload))
    assert err.fatal


def test_tcp_huge_length_prefix():
    (err,) = RiemannTcpConnection().receive_data(b"\xff\xff\xff\xff")
    assert err.fatal and "4294967295" in err.reason


def test_tcp_bad_payload_is_not_fatal():
    c = RiemannTcpConnection()
    out = c.receive_data(FRAMES[0] + frame(b"\x1a\x02\xc3\x28") + FRAMES[2])
    assert out[0] == EXPECTED[0] and out[2] == EXPECTED[2]
    assert out[1] == FrameError("invalid UTF-8 in Msg.error at offset 2", fatal=False)
    assert c.error is None
    reply = error_reply(out[1].reason)
    assert decode_msg(reply[4:]) == Msg(ok=False, error=out[1].reason)


def test_tcp_end_of_stream():
    c = RiemannTcpConnection()
    c.receive_data(FRAMES[0][:-1])
    err = c.end_of_stream()
    assert isinstance(err, FrameError) and not err.fatal and "inside a frame" in err.reason
    assert c.end_of_stream() is None
    c2 = RiemannTcpConnection()
    c2.receive_data(FRAMES[0])
    assert c2.end_of_stream() is None


def test_tcp_reads_replies_too():
    c = RiemannTcpConnection()
    events = [Event(time=1.0, host="h", service="s", metric=1)]
    out = c.receive_data(ok_reply() + error_reply("no index") + events_reply(events))
    assert out == [Msg(ok=True), Msg(ok=False, error="no index"), Msg(ok=True, events=events)]


def test_tcp_max_frame_validation():
    with pytest.raises(ValueError):
        RiemannTcpConnection(max_frame=-1)
    assert RiemannTcpConnection(max_frame=0).receive_data(frame(b"")) == [Msg()]


# ----------------------------------------------------------------- UDP


def test_udp_datagram():
    assert decode_datagram(C_CLIENT_MSG) == decode_msg(C_CLIENT_MSG)


def test_udp_max_size():
    data = ld(3, "x" * (rp.UDP_MAX_SIZE - 3))
    assert len(data) == rp.UDP_MAX_SIZE
    assert decode_datagram(data).error == "x" * (rp.UDP_MAX_SIZE - 3)
    with pytest.raises(RiemannDecodeError, match="exceeds max_size 16384"):
        decode_datagram(data + b"\x00")
    with pytest.raises(RiemannDecodeError, match="exceeds max_size 4"):
        decode_datagram(b"\x10\x01\x10\x01\x10", max_size=4)


def test_udp_malformed():
    with pytest.raises(RiemannDecodeError):
        decode_datagram(b"\x32\x10")


# ----------------------------------------------------------------- performance sanity


def test_decode_ten_thousand_events():
    one = encode_event(
        Event(
            host="web1",
            service="cpu load",
            state="ok",
            metric=0.25,
            ttl=30.0,
            tags=["prod"],
            attributes={"x-client": "riemann-c-client"},
        )
    )
    data = msg_of(*([one] * 1000))
    total = 0
    for _ in range(10):
        total += len(decode_msg(data).events)
    assert total == 10_000


# ----------------------------------------------------------------- cross-check with protobuf


@pytest.fixture(scope="module")
def pb():
    """Message classes built at runtime from a descriptor (only if `protobuf` is present;
    the code under test never imports it)."""
    pytest.importorskip("google.protobuf")
    return build_pb_classes()


def build_pb_classes():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="riemann_test.proto", package="rt", syntax="proto2")

    def add(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".rt." + type_name

    OPT, REP, REQ = F.LABEL_OPTIONAL, F.LABEL_REPEATED, F.LABEL_REQUIRED
    add("Attribute", [("key", 1, F.TYPE_STRING, REQ, None), ("value", 2, F.TYPE_STRING, OPT, None)])
    add("Query", [("string", 1, F.TYPE_STRING, OPT, None)])
    add(
        "State",
        [
            ("time", 1, F.TYPE_INT64, OPT, None),
            ("state", 2, F.TYPE_STRING, OPT, None),
            ("once", 6, F.TYPE_BOOL, OPT, None),
            ("tags", 7, F.TYPE_STRING, REP, None),
        ],
    )
    add(
        "Event",
        [
            ("time", 1, F.TYPE_INT64, OPT, None),
            ("state", 2, F.TYPE_STRING, OPT, None),
            ("service", 3, F.TYPE_STRING, OPT, None),
            ("host", 4, F.TYPE_STRING, OPT, None),
            ("description", 5, F.TYPE_STRING, OPT, None),
            ("tags", 7, F.TYPE_STRING, REP, None),
            ("ttl", 8, F.TYPE_FLOAT, OPT, None),
            ("attributes", 9, F.TYPE_MESSAGE, REP, "Attribute"),
            ("time_micros", 10, F.TYPE_INT64, OPT, None),
            ("metric_sint64", 13, F.TYPE_SINT64, OPT, None),
            ("metric_d", 14, F.TYPE_DOUBLE, OPT, None),
            ("metric_f", 15, F.TYPE_FLOAT, OPT, None),
        ],
    )
    add(
        "Msg",
        [
            ("ok", 2, F.TYPE_BOOL, OPT, None),
            ("error", 3, F.TYPE_STRING, OPT, None),
            ("states", 4, F.TYPE_MESSAGE, REP, "State"),
            ("query", 5, F.TYPE_MESSAGE, OPT, "Query"),
            ("events", 6, F.TYPE_MESSAGE, REP, "Event"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName("rt." + n)) for n in ("Msg", "Event")
    }


def _pb_event(pb, e: Event):
    p = pb["Event"]()
    if e.time is not None:
        p.time = math.floor(e.time)
        p.time_micros = round(e.time * 1_000_000)
    for name in ("state", "service", "host", "description"):
        if getattr(e, name) is not None:
            setattr(p, name, getattr(e, name))
    p.tags.extend(e.tags)
    if e.ttl is not None:
        p.ttl = e.ttl
    for k, v in e.attributes.items():
        p.attributes.add(key=k, value=v)
    if isinstance(e.metric, int):
        p.metric_sint64 = e.metric
    elif e.metric is not None:
        p.metric_d = e.metric
    return p


@pytest.mark.parametrize("event", ROUND_TRIP[:-1], ids=range(len(ROUND_TRIP) - 1))
def test_cross_check_encode_matches_protobuf(pb, event):
    assert encode_event(event) == _pb_event(pb, event).SerializeToString()
    m = pb["Msg"](ok=True, error="e")
    m.events.append(_pb_event(pb, event))
    assert encode_msg(ok=True, error="e", events=[event]) == m.SerializeToString()


def test_cross_check_protobuf_parses_our_bytes(pb):
    m = pb["Msg"]()
    m.ParseFromString(BIG_MSG)
    assert m.ok and m.error == "e" and m.query.string == "q" and len(m.events) == 2
    e0 = m.events[0]
    assert e0.host == "h" and e0.metric_sint64 == -3 and e0.time_micros == 1700000000250000
    assert e0.time == 1700000000 and e0.ttl == 10.0 and list(e0.tags) == ["t1", "t2"]
    assert {a.key: a.value for a in e0.attributes} == {"x-client": "riemann-c-client", "k": "v"}


def test_cross_check_random_protobuf_messages(pb):
    rng = random.Random(5)
    words = ["", "a", "cpu", "héllo", "x" * 200, "riemann-c-client"]
    for _ in range(500):
        m = pb["Msg"]()
        if rng.random() < 0.5:
            m.ok = rng.random() < 0.5
        if rng.random() < 0.3:
            m.error = rng.choice(words)
        if rng.random() < 0.3:
            m.query.string = rng.choice(words)
        if rng.random() < 0.2:
            m.states.add(time=rng.randint(0, 10), state="ok", once=True, tags=["t"])
        for _ in range(rng.randint(0, 3)):
            p = m.events.add()
            for name in ("state", "service", "host", "description"):
                if rng.random() < 0.5:
                    setattr(p, name, rng.choice(words))
            p.tags.extend(rng.choice(words) for _ in range(rng.randint(0, 3)))
            if rng.random() < 0.5:
                p.ttl = rng.choice([0.0, 1.5, 60.0, 3e38, float("inf")])
            for _ in range(rng.randint(0, 2)):
                p.attributes.add(key=rng.choice(words), value=rng.choice(words))
            if rng.random() < 0.5:
                p.time = rng.randint(-(2**63), 2**63 - 1)
            if rng.random() < 0.5:
                p.time_micros = rng.randint(-(2**40), 2**52)
            if rng.random() < 0.4:
                p.metric_sint64 = rng.randint(-(2**63), 2**63 - 1)
            if rng.random() < 0.4:
                p.metric_d = rng.uniform(-1e9, 1e9)
            if rng.random() < 0.4:
                p.metric_f = rng.choice([0.5, -2.0, 1e10])
        data = m.SerializeToString()
        got = decode_msg(data)
        assert got.ok == (m.ok if m.HasField("ok") else None)
        assert got.error == (m.error if m.HasField("error") else None)
        assert got.query == (m.query.string if m.HasField("query") else None)
        assert len(got.events) == len(m.events)
        for g, p in zip(got.events, m.events, strict=True):
            for name in ("state", "service", "host", "description"):
                assert getattr(g, name) == (getattr(p, name) if p.HasField(name) else None)
            assert g.tags == list(p.tags)
            assert g.attributes == {a.key: a.value for a in p.attributes}
            assert g.ttl == (p.ttl if p.HasField("ttl") else None)
            if p.HasField("time_micros"):
                assert g.time == p.time_micros / 1e6
            elif p.HasField("time"):
                assert g.time == float(p.time)
            else:
                assert g.time is None
            if p.HasField("metric_d"):
                assert g.metric == p.metric_d
            elif p.HasField("metric_sint64"):
                assert g.metric == p.metric_sint64
            elif p.HasField("metric_f"):
                assert g.metric == p.metric_f
            else:
                assert g.metric is None


def test_cross_check_differential_fuzz(pb):
    """Mutated messages: whatever protobuf rejects we reject too; whatever both accept
    decodes to the same values. (We are stricter on purpose: UTF-8 in strings, wrong
    wire types of known fields, Attribute.key required.)"""
    from google.protobuf.message import DecodeError

    rng = random.Random(11)
    for _ in range(3000):
        data = bytearray(rng.choice([BIG_MSG, C_CLIENT_MSG, STREAM[4:]]))
        for _ in range(rng.randint(1, 3)):
            op, i = rng.randrange(3), rng.randrange(len(data))
            if op == 0:
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i]
            else:
                data.insert(i, rng.randrange(256))
        data = bytes(data)
        theirs = pb["Msg"]()
        try:
            theirs.ParseFromString(data)
        except DecodeError:
            with pytest.raises(RiemannDecodeError):
                decode_msg(data)
            continue
        try:
            ours = decode_msg(data)
        except RiemannDecodeError as exc:
            assert exc.reason.startswith(("invalid UTF-8", "wrong wire type", "missing required")), exc
            continue
        assert ours.ok == (theirs.ok if theirs.HasField("ok") else None)
        assert ours.error == (theirs.error if theirs.HasField("error") else None)
        assert len(ours.events) == len(theirs.events)
        for g, p in zip(ours.events, theirs.events, strict=True):
            assert g.host == (p.host if p.HasField("host") else None)
            assert g.tags == list(p.tags)
            assert g.attributes == {a.key: a.value for a in p.attributes}
