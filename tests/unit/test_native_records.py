"""The listeners' records, made by the native framer and RELP parser, against what the
Python listeners made of each frame before (`decode_line`, then the tags): text, tags, the
blank ones counted `empty`, the errors listed, for fuzzed streams cut at random."""

import random

from streams._native import decode_line as native_decode_line
from streams.inputs import decode_line
from streams.pipeline.live import Received
from streams.protocols.framing import SyslogFramer, datagram_frame, datagram_record
from streams.protocols.relp import RelpServerConnection, Syslog, build_frame
from tests.fuzz import mutate, random_chunks

PEER = ("192.0.2.1", 514)
NOW = 1.7e9
PIECES = [b"<13>ok", b"caf\xc3\xa9", b"\xff\xfe", b"\x00", b"\r", b"\n", b"\r\n", b" ", b"\t", b"\xe2\x80\xa8",
          b"\xe3\x80\x80", b"\x1c", b"\xed\xa0\x80", b"\xc3", b"5 <", b"x" * 40]


def old_record(frame):
    """The old `streams.ingest.syslog.frame_record`."""
    text, problems = decode_line(frame.data)
    if not text or text.isspace():
        return None
    if frame.truncated:
        problems += ("_message_truncated",)
    if frame.error:
        problems += ("_framing_error",)
    return Received("tcp", NOW, text=text, tags=problems, peer=PEER)


def message(rng) -> bytes:
    return b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6)))


def test_decode_line_is_pythons():
    rng = random.Random(15)
    for _ in range(5000):
        raw = message(rng) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 12))
        assert native_decode_line(raw) == decode_line(raw), raw


def test_syslog_records_as_the_python_listener_made_them():
    rng = random.Random(6587)
    for _ in range(1500):
        msgs = [message(rng) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.5:
            data = b"".join(b"%d %s" % (len(m), m) for m in msgs)
        else:
            data = b"".join(m.replace(b"\n", b"") + b"\n" for m in msgs)
        if rng.random() < 0.3:
            data = mutate(rng, data, b"0123456789 <\n\r\xff")
        size = rng.choice((16, 40, 1000))
        chunks = random_chunks(rng, data)
        frames, framer = [], SyslogFramer(max_size=size)
        for c in chunks:
            frames += framer.receive_data(c)
        frames += framer.end_of_stream()
        expected = [old_record(f) for f in frames]
        got, n, empty, errors, fast = [], 0, 0, [], SyslogFramer(max_size=size)
        for c in chunks:
            r = fast.receive_records(c, Received, "tcp", NOW, PEER)
            got += r[0]
            n, empty, errors = n + r[1], empty + r[2], errors + r[3]
        r = fast.end_of_stream_records(Received, "tcp", NOW, PEER)
        got, n, empty, errors = got + r[0], n + r[1], empty + r[2], errors + r[3]
        assert got == [r for r in expected if r is not None], data
        assert (n, empty) == (len(frames), expected.count(None)), data
        assert errors == [f.error for f in frames if f.error], data
        for c in chunks:
            frame = datagram_frame(c, size)
            assert datagram_record(c, size, Received, "tcp", NOW, PEER) == (frame and old_record(frame)), c


def test_relp_records_as_the_python_listener_made_them():
    rng = random.Random(5424)
    offers = b"relp_version=0\nrelp_software=x\ncommands=syslog"
    for _ in range(500):
        msgs = [message(rng) for _ in range(rng.randint(1, 8))]
        data = build_frame(1, "open", offers) + b"".join(build_frame(t, "syslog", m) for t, m in enumerate(msgs, 2))
        if rng.random() < 0.3:
            data = mutate(rng, data, b"0123456789 \n\r\xff")
        chunks = random_chunks(rng, data)
        events, conn = [], RelpServerConnection()
        for c in chunks:
            events += conn.receive_data(c)
        fast = RelpServerConnection(nak_reason="could not")
        records, others = [], []
        for c in chunks:
            r, o = fast.receive_records(c, Received, "relp", NOW, PEER)
            records += r
            others += o
        syslogs = [e for e in events if isinstance(e, Syslog)]
        assert others == [e for e in events if not isinstance(e, Syslog)]
        assert fast.pending == len(records) == len(syslogs)
        for rec, ev in zip(records, syslogs, strict=True):
            text, problems = decode_line(ev.message)
            assert (rec.listener, rec.received_at, rec.text, rec.event, rec.tags, rec.peer) == (
                "relp", NOW, text or "", None, problems, PEER)
            assert rec.ack.txnr == ev.txnr
        assert fast.unacked == conn.unacked


def test_relp_acks_notify_and_keep_txnr_order():
    calls = []
    conn = RelpServerConnection(notify=lambda *a: calls.append(a), nak_reason="could not store")
    conn.receive_data(build_frame(1, "open", b"relp_version=0\ncommands=syslog"))
    conn.answer_open(1)
    records, events = conn.receive_records(b"".join(build_frame(t, "syslog", b"<13>m%d" % t) for t in (2, 3, 4)),
                                           Received, "relp", NOW, PEER)
    assert events == [] and conn.pending == 3 and [r.text for r in records] == ["<13>m2", "<13>m3", "<13>m4"]
    records[1].ack(False)                     # held behind 2: nothing to write yet
    assert calls == [(False, False, False)] and conn.take_replies() == b""
    records[0].ack(True)                      # 2 and 3 leave: the first reply wakes the writer
    assert calls[-1] == (True, True, False)
    records[2].ack(True)                      # the last one: settled (the outbox was not empty)
    assert calls[-1] == (True, False, True) and conn.pending == 0
    assert conn.take_replies() == b"2 rsp 6 200 OK\n3 rsp 19 500 could not store\n4 rsp 6 200 OK\n"
    assert conn.take_replies() == b""
