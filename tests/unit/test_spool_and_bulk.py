"""The disk spool (bounded, segmented, resumable) and the classification of `_bulk` answers."""

from __future__ import annotations

import threading

import pytest

from streams.sinks.backoff import backoff
from streams.sinks.elasticsearch import bulk_lines, classify, record
from streams.sinks.spool import Spool, SpoolFull


def recs(n, start=0):
    return [f"r{i}\n".encode() for i in range(start, start + n)]


def test_records_come_back_in_order_across_segments_and_commit_frees_them(tmp_path):
    sp = Spool(tmp_path, max_bytes=10_000, segment_bytes=20)
    for r in recs(30):
        sp.append(r)
    sp.flush()
    got, pos = sp.read(12, 1 << 20)
    assert got == recs(12)
    sp.commit(pos)
    got2, pos2 = sp.read(100, 1 << 20)
    assert got2 == recs(18, 12)
    sp.commit(pos2)
    assert sp.pending() == 0
    assert len(list(tmp_path.glob("*.spool"))) <= 1  # delivered segments are deleted


def test_a_restart_resumes_after_the_last_commit(tmp_path):
    sp = Spool(tmp_path, segment_bytes=30)
    for r in recs(20):
        sp.append(r)
    sp.flush()
    got, pos = sp.read(5, 1 << 20)
    sp.commit(pos)
    got, _ = sp.read(5, 1 << 20)  # read but not committed: a crash before delivery
    sp.close()
    again = Spool(tmp_path, segment_bytes=30)
    assert again.read(100, 1 << 20)[0] == recs(15, 5)
    again.append(b"new\n")
    again.flush()
    assert again.read(100, 1 << 20)[0][-1] == b"new\n"


def test_full_spool_waits_then_raises_and_room_wakes_the_writer(tmp_path):
    sp = Spool(tmp_path, max_bytes=10)
    sp.append(b"0123456789\n")
    assert not sp.has_room()
    with pytest.raises(SpoolFull):
        sp.append(b"x\n", timeout=0.05)
    sp.append(b"y\n", block=False)  # an asyncio caller never blocks
    done = threading.Event()

    def writer():
        sp.append(b"z\n", timeout=5)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    sp.flush()
    _, pos = sp.read(10, 1 << 20)
    sp.commit(pos)
    t.join(5)
    assert done.is_set()


def test_bulk_lines_and_classification():
    r = record("streams-sshd.log-2026.11.24", "abc", {"a": 1})
    assert bulk_lines(r.rstrip(b"\n")) == b'{"create":{"_index":"streams-sshd.log-2026.11.24","_id":"abc"}}\n{"a":1}'
    records = [record("i", str(n), {"n": n}) for n in range(6)]
    answer = {"errors": True, "items": [
        {"create": {"status": 201}},
        {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "bad"}}},
        {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        {"create": {"status": 503}},
    ]}  # one item short: the sixth has no answer
    out = classify(records, answer)
    assert (out.sent, out.duplicates) == (1, 1)
    assert [(r, s) for r, s, _ in out.dead] == [(records[2], 400)]
    assert out.retry == [records[5], records[3], records[4]]


def test_backoff_is_capped_exponential_with_full_jitter():
    assert [backoff(a, 0.1, 5.0, rng=lambda: 1.0) for a in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff(3, 0.1, 5.0, rng=lambda: 0.0) == 0.0
