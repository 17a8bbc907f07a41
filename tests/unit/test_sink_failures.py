"""Failures of the live pipeline and the sinks: what a damaged spool, a document the server
cannot read, an unwritable dead-letter file or a failed flush must not do (kill the sender
thread, block the spool for good, ack or lose records without a trace, count twice)."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import orjson

from streams.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink, record
from streams.sinks.spool import Spool


class FakeClient:
    """`bulk()` as Elasticsearch answers it: 201 per document it can parse, 400 for one it
    cannot, or for a document holding `"refuse": true` (a mapping error)."""

    def __init__(self) -> None:
        self.indexed: list[dict] = []
        self.lock = threading.Lock()

    def bulk(self, body: bytes) -> dict:
        lines = body.rstrip(b"\n").split(b"\n")
        items = []
        for source in lines[1::2]:
            try:
                doc = orjson.loads(source)
            except orjson.JSONDecodeError:
                items.append({"create": {"status": 400, "error": {"type": "document_parsing_exception",
                                                                  "reason": "failed to parse"}}})
                continue
            if doc.get("refuse"):
                items.append({"create": {"status": 400, "error": {"type": "mapper_parsing_exception",
                                                                  "reason": "refused"}}})
                continue
            with self.lock:
                self.indexed.append(doc)
            items.append({"create": {"status": 201}})
        return {"errors": any(i["create"]["status"] != 201 for i in items), "items": items}


def sink(tmp_path, client, dead_letter=None):
    settings = ElasticsearchSettings(backoff_initial=0.01, backoff_max=0.05, flush_seconds=0.02, close_timeout=2)
    return ElasticsearchSink(settings, tmp_path / "spool", dead_letter or tmp_path / "dlq.ndjson", client=client)


def doc(n, **extra):
    return {"@timestamp": "2026-11-24T00:00:00.000Z", "event": {"dataset": "sshd.log"}, "n": n, **extra}


def dead_letters(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_document_the_server_cannot_parse_is_dead_lettered_and_the_sender_goes_on(tmp_path):
    client = FakeClient()
    es = sink(tmp_path, client)
    es.write(doc(1), "a")
    es.spool.append(b"streams-sshd.log-2026.11.24\tb\t{not json}\n")  # a damaged document
    es.flush()
    assert es.wait_delivered(3)
    es.write(doc(2), "c")
    assert es.wait_delivered(3), "the sender thread died on the dead letter"
    assert [d["n"] for d in client.indexed] == [1, 2]
    dead = dead_letters(tmp_path / "dlq.ndjson")
    assert len(dead) == 1 and dead[0]["status"] == 400 and dead[0]["_id"] == "b"
    assert dead[0]["index"] == "streams-sshd.log-2026.11.24" and "{not json}" in dead[0]["record"]
    assert es.stats["dead_lettered"] == 1 and es.stats["sent"] == 2
    assert es.close()


def test_a_damaged_spool_record_is_dead_lettered_not_resent_forever(tmp_path):
    client = FakeClient()
    es = sink(tmp_path, client)
    es.spool.append(b"no tabs in here\n")
    es.write(doc(1), "a")
    es.flush()
    assert es.wait_delivered(3), "a damaged record blocks the spool for good"
    assert [d["n"] for d in client.indexed] == [1]
    dead = dead_letters(tmp_path / "dlq.ndjson")
    assert len(dead) == 1 and dead[0]["record"] == "no tabs in here" and dead[0]["status"] == 0
    assert es.close()


def test_an_unwritable_dead_letter_file_keeps_the_document_and_the_sender_alive(tmp_path):
    client = FakeClient()
    dlq = tmp_path / "dlq.ndjson"
    dlq.mkdir()  # cannot be opened as a file
    es = sink(tmp_path, client, dlq)
    es.write(doc(1, refuse=True), "a")
    es.write(doc(2), "b")
    es.flush()
    assert not es.wait_delivered(0.5)  # kept: neither dead-lettered nor dropped
    assert es._thread.is_alive()
    assert es.stats["dead_lettered"] == 0
    dlq.rmdir()  # the operator makes room
    assert es.wait_delivered(3)
    dead = dead_letters(dlq)
    assert [(d["_id"], d["event"]["n"]) for d in dead] == [("a", 1)]
    assert es.stats["dead_lettered"] == 1
    assert [d["n"] for d in client.indexed] == [2]
    assert es.close()


def test_a_record_torn_by_a_crash_does_not_block_the_spool(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    # the last segment of a process that died mid-write: one whole record, then a torn one
    good = record("streams-sshd.log-2026.11.24", "a", doc(1))
    (spool_dir / "000000000001.spool").write_bytes(good + b'streams-sshd.log-2026.11.24\tb\t{"n":')
    client = FakeClient()
    es = sink(tmp_path, client)
    es.write(doc(2), "c")
    es.flush()
    assert es.wait_delivered(3), "the spool never got past the torn record"
    assert [d["n"] for d in client.indexed] == [1, 2]
    dead = dead_letters(tmp_path / "dlq.ndjson")
    assert len(dead) == 1 and dead[0]["_id"] == "b" and dead[0]["record"].endswith('{"n":')
    assert es.close()


def test_records_appended_after_the_segments_were_removed_are_all_read(tmp_path):
    sp = Spool(tmp_path)
    for i in range(5):
        sp.append(b"r%d\n" % i)
    sp.flush()
    sp.commit(sp.read(3, 1 << 20)[1])
    sp.close()
    for f in tmp_path.glob("*.spool"):  # the spool emptied by hand; `position` left behind
        f.unlink()
    again = Spool(tmp_path)
    again.append(b"new1\n")
    again.append(b"new2\n")
    again.flush()
    got, pos = again.read(100, 1 << 20)
    assert got == [b"new1\n", b"new2\n"]
    again.commit(pos)
    assert again.pending() == 0


# -- the live pipeline ----------------------------------------------------------------------------

LINE = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port {} ssh2"


def live(tmp_path):
    from streams.parse.dispatch import LineParser
    from streams.pipeline.live import LivePipeline
    from streams.telemetry import Telemetry
    return LivePipeline(LineParser(year=2026), tmp_path, Telemetry())


def batch(n, acks, listener="relp"):
    from streams.pipeline.live import Received
    return [Received(listener, 1764000000.0, text=LINE.format(i), ack=lambda ok, i=i: acks.append((i, ok)))
            for i in range(n)]


def test_a_failed_flush_counts_each_event_once_as_failed_and_naks(tmp_path):
    from streams.pipeline.live import Received
    p = live(tmp_path)

    def full_disk():
        raise OSError(28, "No space left on device")
    p.sink.flush = full_disk
    acks: list = []
    p.process([*batch(2, acks), Received("syslog_udp", 1764000000.0, text=LINE.format(9))])
    assert acks == [(0, False), (1, False)]
    es = p.telemetry.snapshot()["sink.elasticsearch_files"]
    assert (es["sent"], es["failed"], es["dead_lettered"]) == (0, 3, 0)


def test_a_flush_that_fails_otherwise_naks_the_batch_too(tmp_path):
    p = live(tmp_path)

    def closed():
        raise ValueError("flush of closed file")
    p.sink.flush = closed
    acks: list = []
    p.process(batch(2, acks))
    assert acks == [(0, False), (1, False)]
    assert p.telemetry.snapshot()["sink.elasticsearch_files"]["failed"] == 2


class _FailingClose:
    """A buffered file on a full disk: close() closes it, then raises (its flush failed)."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        return self.f.write(data)

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()
        raise OSError(28, "No space left on device")


def test_events_are_written_again_after_a_sighup_whose_close_failed(tmp_path):
    p = live(tmp_path)
    acks: list = []
    p.process(batch(1, acks))
    files = p.sink.files
    (index,) = files
    files[index]._f = _FailingClose(files[index]._f)
    p.reopen()  # SIGHUP on a full disk: must neither raise nor keep the closed file
    p.process(batch(2, acks))
    assert acks == [(0, True), (0, True), (1, True)]
    assert not (tmp_path / "dead-letter.ndjson").exists()
    p.close()
    assert len((tmp_path / "elasticsearch" / f"{index}.ndjson").read_text().splitlines()) == 6


def test_an_event_that_waited_over_a_flush_never_rewrites_a_written_point(tmp_path):
    """Counted by arrival: one received before a flush but processed after it goes to the
    interval still open; before, it made a second point for the flushed interval, which
    Graphite keeps instead of the first (the count went down from 2 to 1)."""
    from streams.clock import ManualClock
    from streams.parse.dispatch import LineParser
    from streams.pipeline.live import LivePipeline, Received, Schedule
    from streams.telemetry import Telemetry
    clock = ManualClock(1000.5)
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), clock=clock,
                     schedule=Schedule(flush=10, telemetry_metrics=False))
    p.process([Received("relp", 995.0, text=LINE.format(1))])
    p.flush_metrics()
    p.process([Received("relp", 999.9, text=LINE.format(2))])  # received before the flush
    clock.set(1010.5)
    p.flush_metrics()
    lines = [x.split() for x in (tmp_path / "graphite.txt").read_text().splitlines() if ".events " in x]
    keys = [(path, ts) for path, _, ts in lines]
    assert len(keys) == len(set(keys)), lines
    assert sum(int(v) for _, v, _ in lines) == 2


class _UnflushableFile:
    """A buffered file on a full disk: what was written stays in its buffer, close() fails."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        return len(data)

    def flush(self):
        raise OSError(28, "No space left on device")

    def close(self):
        self.f.close()
        raise OSError(28, "No space left on device")


def test_a_line_lost_when_its_file_is_closed_to_make_room_is_not_acked(tmp_path):
    p = live(tmp_path)
    p.sink.max_open = 1
    acks: list = []
    p.process(batch(1, acks))  # the file of 2026.11.24 is open
    (index,) = p.sink.files
    p.sink.files[index]._f = _UnflushableFile(p.sink.files[index]._f)
    from streams.pipeline.live import Received
    same_day, next_day = LINE.format(7), LINE.format(8).replace("Nov 24", "Nov 25")
    p.process([Received("relp", 1764000000.0, text=t, ack=lambda ok, t=t: acks.append((t, ok)))
               for t in (same_day, next_day)])  # the second one closes the first file: its line is lost
    assert acks[1] == (same_day, False)


def test_expired_events_a_shutdown_kept_from_the_full_queue_are_written_at_close(tmp_path):
    """The reaper removes due entries from the index before queueing their expired events;
    a shutdown that cancels it while the queue is full must not lose the rest of them."""
    import asyncio

    from streams.clock import ManualClock
    from streams.event import Event
    from streams.index import TTLIndex
    from streams.index.feed import IndexFeed
    from streams.index.service import IndexService
    from streams.parse.dispatch import LineParser
    from streams.pipeline.live import LivePipeline, Received
    from streams.telemetry import Telemetry

    clock = ManualClock(1000.0)
    index = IndexService(TTLIndex(clock), IndexFeed(), clock)
    for i in range(10):
        index.index.insert(Event(time=1000.0, host=f"h{i}", service="cpu", state="ok", ttl=5.0))
    clock.advance(10)
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), queue_size=4, batch_size=2,
                     index=index, clock=clock)

    async def scenario() -> None:   # no worker: the queue stays full
        await p.put([Received("relp", 1764000000.0, text=LINE.format(i)) for i in range(4)])
        reaper = asyncio.ensure_future(p.reap())
        await asyncio.sleep(0.05)
        assert not reaper.done() and len(index.index) == 0   # all taken out, none queued
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper

    asyncio.run(scenario())
    p.close()
    written = b"".join(f.read_bytes() for f in (tmp_path / "elasticsearch").glob("*.ndjson"))
    assert sorted(json.loads(x)["host"]["name"] for x in written.splitlines()[1::2]) == sorted(f"h{i}" for i in range(10))
    assert all(b'"state":"expired"' in x for x in written.splitlines()[1::2])


class TooLarge(Exception):
    status_code = 413   # as elasticsearch-py's ApiError carries it


class SizeLimitedClient(FakeClient):
    """A proxy in front of Elasticsearch with a body size limit (nginx: client_max_body_size)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sizes: list[int] = []

    def bulk(self, body: bytes) -> dict:
        self.sizes.append(len(body))
        if len(body) > self.limit:
            raise TooLarge("413 Request Entity Too Large")
        return super().bulk(body)


def test_a_body_over_the_servers_size_limit_is_split_and_later_batches_are_smaller(tmp_path):
    client = SizeLimitedClient(limit=20_000)
    es = sink(tmp_path, client)

    def wait_for(indexed: int) -> None:
        for _ in range(500):
            if len(client.indexed) == indexed and es.stats["dead_lettered"] == 1:
                return
            time.sleep(0.01)

    for i in range(200):
        es.write(doc(i, pad="x" * 200), f"id{i}")
    es.write(doc(999, pad="y" * 30_000), "huge")   # alone over the limit: no resend can pass
    es.flush()
    wait_for(200)
    refused = sum(size > client.limit for size in client.sizes)
    assert refused >= 2   # the first batch, then the huge document alone
    for i in range(200, 400):
        es.write(doc(i, pad="x" * 200), f"id{i}")
    es.flush()
    wait_for(400)
    assert es.close()
    assert sorted(d["n"] for d in client.indexed) == list(range(400))
    assert [(d["_id"], d["status"]) for d in dead_letters(tmp_path / "dlq.ndjson")] == [("huge", 413)]
    assert sum(size > client.limit for size in client.sizes) == refused   # later batches fit at once


def test_a_record_longer_than_the_read_budget_is_read_whole(tmp_path):
    spool = Spool(tmp_path / "s")
    big = b"x" * 300_000 + b"\n"
    for rec in (b"a\n", big, b"b\n"):
        spool.append(rec)
    spool.flush()
    got = []
    for _ in range(5):
        records, pos = spool.read(10, 1000)
        got += records
        spool.commit(pos)
    assert got == [b"a\n", big, b"b\n"]
    spool.close()


def test_an_event_written_before_the_index_failed_on_it_is_not_dead_lettered_too(tmp_path):
    from streams.pipeline.live import LivePipeline

    class BrokenIndex:
        def observe_side(self, *a):
            raise KeyError("index bug")

    from streams.parse.dispatch import LineParser
    from streams.pipeline.live import Received
    from streams.telemetry import Telemetry
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry())
    p.index = BrokenIndex()
    acks: list = []
    ban = "2026-11-24 00:47:24,273 fail2ban.actions [812]: NOTICE  [sshd] Ban 81.2.69.{}"   # moves an index count
    p.process([Received("relp", 1764000000.0, text=ban.format(i), ack=lambda ok, i=i: acks.append((i, ok)))
               for i in range(2)])
    es = p.telemetry.component("sink.elasticsearch_files")
    assert sorted(acks) == [(0, True), (1, True)]
    assert (es["sent"], es["dead_lettered"], es["failed"]) == (2, 0, 0)
    assert not (tmp_path / "dead-letter.ndjson").exists()
    written = b"".join(f.read_bytes() for f in (tmp_path / "elasticsearch").glob("*.ndjson"))
    assert len(written.splitlines()) == 4   # two events, each once
    assert p.telemetry.component("relp")["derive_errors"] == 2


def _written(out) -> list[str]:
    return [json.loads(x)["event"]["original"] for f in sorted((out / "elasticsearch").glob("*.ndjson"))
            for x in f.read_text().splitlines()[1::2]]


def test_an_output_directory_removed_while_running_loses_no_acked_line(tmp_path):
    """`rm -rf out/` while running: the open files have no name any more, and lines written
    into them were acked and lost. The batch that finds its file deleted writes itself again
    into a recreated one before its acks go out."""
    import shutil
    out = tmp_path / "out"
    p = live(out)
    acks: list = []
    p.process(batch(3, acks))
    shutil.rmtree(out)
    p.process(batch(2, acks))
    assert acks == [(0, True), (1, True), (2, True), (0, True), (1, True)]
    assert _written(out) == [LINE.format(0), LINE.format(1)]   # the deleted file's lines went with it
    assert p.problems() == [] and p.telemetry.snapshot()["sink.elasticsearch_files"]["recreated"] == 1


def test_after_rm_rf_and_sighup_the_outputs_are_recreated(tmp_path):
    import shutil
    out = tmp_path / "out"
    p = live(out)
    acks: list = []
    p.process(batch(1, acks))
    shutil.rmtree(out)
    p.reopen()   # SIGHUP, as logrotate would send
    p.process(batch(2, acks))
    p.flush_metrics()
    assert acks == [(0, True), (0, True), (1, True)] and p.problems() == []
    assert _written(out) == [LINE.format(0), LINE.format(1)] and (out / "graphite.txt").exists()


def test_outputs_failing_make_the_pipeline_report_a_problem_until_a_batch_is_written(tmp_path):
    p = live(tmp_path)
    acks: list = []
    real_flush = p.sink.flush

    def full_disk():
        raise OSError(28, "No space left on device")
    p.sink.flush = full_disk
    p.process(batch(2, acks))
    (problem,) = p.problems()
    assert "No space left on device" in problem
    p.sink.flush = real_flush
    p.process(batch(1, acks))
    assert p.problems() == [] and acks == [(0, False), (1, False), (0, True)]


class PressureClient(FakeClient):
    """Elasticsearch's indexing pressure (`indexing_pressure.memory.limit`): an item whose
    shard operation is over the limit gets a 429 as Elasticsearch 9.3 words it (measured
    with the real server and a 16 MiB document), whatever the retry."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.requests = 0

    def bulk(self, body: bytes) -> dict:
        self.requests += 1
        lines = body.rstrip(b"\n").split(b"\n")
        if all(len(s) * 4 <= self.limit for s in lines[1::2]):
            return super().bulk(body)
        items = []
        for source in lines[1::2]:
            if len(source) * 4 > self.limit:
                reason = (f"rejected execution of primary operation [coordinating_and_primary_bytes={len(body)}, "
                          f"replica_bytes=0, all_bytes={len(body)}, primary_operation_bytes={len(body) * 4}, "
                          f"max_primary_bytes={self.limit}]")
                items.append({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                                                  "reason": reason}}})
            else:
                self.indexed.append(orjson.loads(source))
                items.append({"create": {"status": 201}})
        return {"errors": True, "items": items}


def test_a_document_over_the_servers_indexing_pressure_limit_is_dead_lettered_not_retried_forever(tmp_path):
    # the 429 of a document alone over the limit was retried forever: the replay never ended
    client = PressureClient(limit=40_000)
    es = sink(tmp_path, client)
    es.write(doc(1), "a")
    es.write(doc(2, pad="y" * 20_000), "huge")
    es.write(doc(3), "b")
    es.flush()
    assert es.wait_delivered(timeout=30)   # a liveness bound: it used to never return
    assert es.close()
    assert sorted(d["n"] for d in client.indexed) == [1, 3]
    dead = dead_letters(tmp_path / "dlq.ndjson")
    assert [(d["_id"], d["status"]) for d in dead] == [("huge", 429)]
    assert "max_primary_bytes" in dead[0]["error"]["reason"] and dead[0]["event"]["n"] == 2
    assert client.requests < 10


def test_a_plain_429_is_still_retried():
    from streams.sinks.elasticsearch import over_limit
    assert not over_limit({"type": "es_rejected_execution_exception", "reason": "rejected execution of "
                           "primary operation [coordinating_and_primary_bytes=60000000, replica_bytes=0, "
                           "all_bytes=60000000, primary_operation_bytes=1000, max_primary_bytes=53687091]"})
    assert not over_limit({"type": "circuit_breaking_exception", "reason": "[parent] Data too large"})
    assert over_limit("ApiError(429, 'es_rejected_execution_exception', 'rejected execution of coordinating "
                      "operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "
                      "coordinating_operation_bytes=70000000, max_coordinating_and_primary_bytes=53687091]')")


def test_a_record_bigger_than_a_spool_segment_is_delivered(tmp_path):
    spool = Spool(tmp_path / "s", segment_bytes=1000)
    big = b"x" * 200_000 + b"\n"   # also over the 64 KiB the reader asks at least
    records = [b"a\n", big, b"b\n", big, big, b"c\n"]
    for rec in records[:3]:
        spool.append(rec)
    spool.flush()
    got = []

    def drain():
        for _ in range(10):
            recs, pos = spool.read(10, 1000)
            got.extend(recs)
            spool.commit(pos)

    drain()
    for rec in records[3:]:
        spool.append(rec)
    spool.close()
    again = Spool(tmp_path / "s", segment_bytes=1000)   # after a restart too
    spool = again
    drain()
    assert got == records and again.pending() == 0
    again.close()


def test_at_most_max_open_files_are_open_even_when_one_batch_spans_many_days(tmp_path):
    """A sender whose timestamps span many days in one batch must not open one descriptor
    per day: the descriptors kept for the outputs are bounded."""
    from streams.pipeline.live import Received
    p = live(tmp_path)
    p.sink.max_open = 4
    acks: list = []
    days = [LINE.format(d).replace("Nov 24", f"Oct {d + 1:2d}") for d in range(20)]
    p.process([Received("relp", 1764000000.0, text=t, ack=lambda ok: acks.append(ok)) for t in days])
    assert sum(out.is_open for out in p.sink.files.values()) == 4 and acks == [True] * 20
    assert len(list((tmp_path / "elasticsearch").glob("*.ndjson"))) == 20


def test_the_dead_letters_of_a_refused_batch_are_not_written_with_the_next_one(tmp_path):
    """A batch whose flush fails is refused whole (its sender resends it): its dead letters
    must go with it, not be written later beside the resent copy."""
    from streams.event import Event
    from streams.pipeline.live import Received
    p = live(tmp_path)
    acks: list = []

    def unwritable(service):   # an event whose document cannot be written: dead-lettered
        return Received("riemann", 1764000000.0, event=Event(service=service, fields={"x": object()}),
                        ack=lambda ok: acks.append(ok))
    real_flush = p.sink.flush

    def full_disk():
        raise OSError(28, "No space left on device")
    p.sink.flush = full_disk
    p.process([unwritable("x")])
    p.sink.flush = real_flush
    p.process([unwritable("y")])
    lines = (tmp_path / "dead-letter.ndjson").read_text().splitlines()
    assert acks == [False, True] and ["service='y'" in json.loads(x)["original"] for x in lines] == [True]
