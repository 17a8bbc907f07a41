"""The native Riemann decoder (`decode_fast`: native/src/riemann.rs, the pure decoder for
what it does not read) gives exactly the pure decoder's results and errors, and decodes
canonical client messages without it."""

import random

import pytest

from streams.event import Event
from streams.protocols import riemann
from streams.protocols.riemann import RiemannDecodeError, decode_fast, decode_msg, encode_msg

from .test_riemann_protocol import BIG_MSG, C_CLIENT_MSG, ROUND_TRIP, UNKNOWN_FIELDS, key, ld, msg_of, vi


@pytest.fixture(scope="module")
def native():
    return decode_fast


def outcome(decode, data: bytes) -> str:
    try:
        return repr(decode(data))   # repr: NaN metrics compare equal
    except RiemannDecodeError as e:
        return f"error: {e}"


SAMPLES = [
    BIG_MSG,
    C_CLIENT_MSG,
    encode_msg(ok=True, error="e", query="q", events=ROUND_TRIP),
    encode_msg(ok=False, error="", query="", events=[   # set to zero or empty: present all the same
        Event(time=0.0, host="", service="", state="", description="", metric=0, ttl=0.0, tags=[""],
              attributes={"": ""}), Event(time=-1.5, metric=0.0), Event(metric=-0.0, ttl=-0.0)]),
    *(unknown + msg_of(ld(4, "h") + unknown + ld(9, ld(1, "k") + unknown)) for unknown in UNKNOWN_FIELDS),
    msg_of(ld(4, "ok") + ld(3, b"ab\xff")),                 # invalid UTF-8
    msg_of(ld(9, ld(2, "v"))),                              # Attribute.key missing
    msg_of(key(4, 0) + b"\x01"),                            # host with a varint's wire type
    msg_of(ld(4, "a") + ld(4, "b")),                        # an optional field twice: the last wins
    msg_of(key(10, 0) + b"\x81\x80\x00"),                   # non-minimal varint
    vi(2, 7) + ld(5, b"") + ld(4, ld(2, b"\xff")),          # bool 7, empty Query, a deprecated State
    b"\x1a\x05abc",                                         # truncated
    b"\x0b" * 100,                                          # groups nested too deeply
]


@pytest.mark.parametrize("data", SAMPLES, ids=range(len(SAMPLES)))
def test_same_result_or_error_as_the_pure_decoder(native, data):
    assert outcome(native, data) == outcome(decode_msg, data)


def test_mutated_input_same_outcome_as_pure_decoder(native):
    rng = random.Random(23)
    for _ in range(3000):
        data = bytearray(rng.choice(SAMPLES[:4]))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            data[i:i + rng.randint(0, 1)] = bytes([rng.randrange(256)] * rng.randint(0, 1))
        assert outcome(native, bytes(data)) == outcome(decode_msg, bytes(data)), bytes(data).hex()


def test_canonical_input_needs_no_pure_decoder(native, monkeypatch):
    monkeypatch.setattr(riemann, "decode_msg", None)   # calling it would fail the test
    events = [Event(time=1700000000.5, host="web1", service="cpu", state="ok", metric=0.25, ttl=60.0,
                    description="d", tags=["a", "é"], attributes={"k": "v"}), Event(metric=3), Event()]
    assert native(encode_msg(events=events)).events == events
    assert native(encode_msg(ok=True, query="service = \"cpu\"")).query == 'service = "cpu"'
