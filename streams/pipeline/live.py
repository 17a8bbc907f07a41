"""The in-process live pipeline: listeners -> bounded queue -> one worker -> sinks.

Listeners (`streams.ingest`) hand over lists of `Received` records, one list per socket
read, frame or datagram (queue operations and counter updates per record were a large
part of the cost around the parser); one worker task takes whole lists off the queue until
it holds `batch_size` records and runs the same stages as `streams replay`: parse (syslog
and RELP messages go through `LineParser.parse`; Riemann events are already structured), GeoIP,
derived metrics, the TTL index, then the document sink: the Elasticsearch bulk NDJSON
files in `DIR/elasticsearch`, or, with `[output.elasticsearch] url`, the Elasticsearch
sink's disk spool (its sender thread delivers from there).

Periodic tasks: every `flush_seconds` the metrics of the intervals that ended (counts by
arrival, the index gauges, the pipeline's own counters) are appended to `DIR/graphite.txt`,
and the GeoIP databases are checked for a replaced file; every `reap_seconds` the index's
due entries come back into the queue as `state: "expired"` events (so they reach the
outputs and the subscribers); every `snapshot_seconds` the index is saved.

Backpressure: the queue is bounded in records (`RecordQueue`). A TCP/RELP reader awaits
`put()` when its records do not fit, so it stops reading its socket and the sender's TCP
window closes: nothing is dropped. A UDP datagram cannot wait: `offer()` refuses it when
the queue is full, and the listener counts it as dropped.

Delivery guarantee of an ack (RELP `rsp 200`)
---------------------------------------------
A record may carry an `ack(ok)` callback (`Received.ack`). The worker
calls it only after the batch holding the record was written by the sink (the bulk files,
or the Elasticsearch spool) and flushed to the OS (`f.flush()`): the message is in the
kernel's page cache,
so it survives a crash of `streams run` but NOT a crash of the machine or a power loss
(nothing is fsynced). A record whose processing or writing failed is acked with
`ok=False` (RELP answers `500`, the sender keeps the message). On shutdown the queue is
drained first, so what was taken is written and acked; whatever a connection had not yet
acked when it closes is resent by the sender: duplicates are possible, loss is not (and
in Elasticsearch a resent message has the same `_id`: one document).

Documents carry no Python objects: `ev.to_doc()`, plus `@timestamp` from the receive time
(tagged `_timestamp_from_ingest`) when the message had none, as replay does. Riemann
events get `event.dataset = "riemann"`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from .._native import settle
from ..clock import Clock, SystemClock
from ..enrich.geoip import GeoIP
from ..enrich.metrics import DerivedMetrics
from ..event import Event, format_timestamp
from ..index.service import IndexService
from ..parse.dispatch import LineParser
from ..sinks.append_file import AppendFile
from ..sinks.bulk_files import BulkFileSink, IndexNamer
from ..sinks.elasticsearch import ElasticsearchSink
from ..sinks.graphite_file import GraphiteFileSink
from ..telemetry import Telemetry

log = logging.getLogger("streams.live")

Ack = Callable[[bool], None]
ES_SINK = "sink.elasticsearch_files"   # documents handed to the sink (the files, or the spool)
ES_NETWORK_SINK = "sink.elasticsearch"  # what the Elasticsearch server answered
CARBON_SINK = "sink.carbon"
GRAPHITE_SINK = "sink.graphite_file"
INDEX_LISTENER = "index"  # the reaper's expired events re-enter the queue under this name


@dataclass(slots=True)
class Received:
    """One message handed over by a listener: a syslog line (`text`, parsed by the worker)
    or an already structured Riemann `event`."""

    listener: str
    received_at: float
    text: str | None = None
    event: Event | None = None
    tags: tuple[str, ...] = ()
    peer: Any = None
    ack: Ack | None = None


class RecordQueue:
    """A FIFO of record lists bounded by the number of records, not of lists.

    `put()` waits while the list does not fit (`size + len(records) > maxsize`) unless the
    queue is empty, so a list larger than the whole queue still goes through, alone: the
    records held never exceed max(maxsize, the largest list). `join()` waits until every
    record put was marked done with `task_done(n)`.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._lists: deque[list[Received]] = deque()
        self._size = 0
        self._unfinished = 0
        self._not_empty = asyncio.Event()
        self._room = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()

    def qsize(self) -> int:
        """Records queued (not yet taken by the worker)."""
        return self._size

    def _fits(self, n: int) -> bool:
        return not self._size or self._size + n <= self.maxsize

    async def put(self, records: list[Received]) -> None:
        while not self._fits(len(records)):
            self._room.clear()
            await self._room.wait()
        self._push(records)

    def put_nowait(self, records: list[Received]) -> bool:
        if not self._fits(len(records)):
            return False
        self._push(records)
        return True

    def _push(self, records: list[Received]) -> None:
        n = len(records)
        self._lists.append(records)
        self._size += n
        self._unfinished += n
        self._finished.clear()
        self._not_empty.set()

    async def get(self) -> list[Received]:
        while not self._lists:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self._pop()

    def get_nowait(self, most: int | None = None) -> list[Received] | None:
        """The next list, if there is one (holding at most `most` records when given)."""
        lists = self._lists
        if not lists or (most is not None and len(lists[0]) > most):
            return None
        return self._pop()

    def _pop(self) -> list[Received]:
        records = self._lists.popleft()
        self._size -= len(records)
        self._room.set()   # the waiting readers check again whether theirs fits now
        return records

    def task_done(self, n: int) -> None:
        self._unfinished -= n
        if self._unfinished <= 0:
            self._finished.set()

    async def join(self) -> None:
        await self._finished.wait()


class _Unprocessable(Exception):
    """A record the native pipeline could not take (its reason as the core gave it)."""


class AppendingBulkFileSink(BulkFileSink):
    """The bulk-file sink of a long-running process: a batch's lines are collected per file
    and written by `flush()`, which makes sure they are in a file that still has its name
    (`AppendFile`); files are always opened to append (a restart or a SIGHUP reopen never
    truncates what is there), at most `max_open` at once (the least recently written one is
    closed first)."""

    def __init__(self, *args: Any, stats: dict[str, int] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stats = stats   # where a file found deleted and written anew is counted (`recreated`)
        # the files open or holding a batch, least recently written first
        self.files: dict[str, AppendFile] = {}   # type: ignore[assignment]

    def _file(self, index: str) -> AppendFile:   # type: ignore[override]
        out = self.files.get(index)
        if out is None:
            out = self.files[index] = AppendFile(self.directory / f"{index}.ndjson", self.buffer_size, self.stats)
            self.counts.setdefault(index, 0)
        return out

    def flush(self) -> None:
        """Every file's batch to the OS; the first error is raised after the others were tried.
        The open ones first: they make room for the others once written."""
        error: OSError | None = None
        files = self.files
        for index in sorted((i for i, out in files.items() if out.pending), key=lambda i: not files[i].is_open):
            out = files[index]
            if not out.is_open:
                self._make_room()
            try:
                out.flush()
            except OSError as e:
                error = error or e
            files[index] = files.pop(index)   # the most recently written last
        if error is not None:
            raise error

    def _make_room(self) -> None:
        """Close written files, least recently written first, until one more may open."""
        open_files = [i for i, out in self.files.items() if out.is_open]
        while len(open_files) >= self.max_open:
            index = next((i for i in open_files if not self.files[i].pending), None)
            if index is None:
                return
            open_files.remove(index)
            self.files.pop(index).close_file()

    def reopen(self) -> None:
        """SIGHUP: close the files; the next flush reopens them (appending), recreating the
        directory if it is gone."""
        for out in self.files.values():
            out.close_file()


def _settle(acks: list[tuple[int, Ack]], refused: set[int], failed: bool) -> None:
    """Resolve a batch's acks (in the core: no Python per record): ok unless the batch
    failed or the record was refused; one callback failing does not keep the others from
    their answer."""
    for error in settle(acks, refused, failed):
        log.error("ack callback failed: %s", error, exc_info=error)


@dataclass
class LiveStats:
    events: int = 0
    batches: int = 0
    datasets: dict[str, int] = field(default_factory=dict)


class MetricsWriter(Protocol):
    def write(self, points: list[tuple[str, float, int]]) -> int: ...
    def close(self) -> bool: ...


@dataclass
class Schedule:
    """Seconds between the periodic tasks (0 turns one off)."""

    flush: float = 10.0
    reap: float = 10.0
    snapshot: float = 60.0
    telemetry_metrics: bool = True


class LivePipeline:
    def __init__(self, parser: LineParser, output: Path, telemetry: Telemetry, *,
                 geoip: GeoIP | None = None, metrics: DerivedMetrics | None = None,
                 namer: IndexNamer | None = None, queue_size: int = 10_000, batch_size: int = 500,
                 index: IndexService | None = None, clock: Clock | None = None,
                 schedule: Schedule | None = None, sink: ElasticsearchSink | None = None,
                 metrics_sink: MetricsWriter | None = None) -> None:
        self.parser = parser
        self.geoip = geoip
        self.output = output
        self.telemetry = telemetry
        self.metrics = metrics or DerivedMetrics()
        self.index = index
        self.clock = clock or SystemClock()
        self.schedule = schedule or Schedule()
        self._bucket = int(self.schedule.flush) or 10  # seconds per metrics bucket (by arrival)
        self._unreaped: list[Received] = []  # expired events a shutdown kept from the queue
        self._open_bucket = 0  # the first bucket not flushed yet (counts never go to an earlier one)
        self.hostname = socket.gethostname().split(".")[0] or "localhost"
        self._es = telemetry.component(ES_SINK)
        self._es.update(failed=0, dead_lettered=0, recreated=0)
        self.sink: AppendingBulkFileSink | ElasticsearchSink
        if sink is not None:
            sink.block_when_full = False  # the worker awaits room instead of blocking the loop
            self.sink = sink
        else:
            self.sink = AppendingBulkFileSink(output / "elasticsearch", namer, stats=self._es)
        self.graphite: MetricsWriter = metrics_sink or GraphiteFileSink(output / "graphite.txt")
        self.pipeline = parser.batch_pipeline(self.sink, self._bucket, geoip)
        self._tasks: list[asyncio.Task] = []
        self.queue = RecordQueue(queue_size)
        self.batch_size = batch_size
        self.stats = LiveStats()
        telemetry.component(GRAPHITE_SINK)
        self._worker: asyncio.Task | None = None
        self._dlq = AppendFile(output / "dead-letter.ndjson", stats=self._es)
        self.output_problem: str | None = None   # set while writing the outputs fails (for /health)

    # -- intake (listeners) --------------------------------------------------------------

    async def put(self, records: list[Received]) -> None:
        """Queue the records of one read (all from one listener), waiting while they do
        not fit (TCP/RELP backpressure)."""
        if records:
            await self.queue.put(records)
            self._count_in(records)

    def offer(self, records: list[Received]) -> bool:
        """Queue the records of one datagram if there is room (UDP); False when they had
        to be dropped."""
        if not records:
            return True
        if not self.queue.put_nowait(records):
            return False
        self._count_in(records)
        return True

    def _count_in(self, records: list[Received]) -> None:
        c = self.telemetry.component(records[0].listener)
        c["accepted"] += len(records)
        c["queued"] += len(records)

    # -- the worker ----------------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="live-pipeline-worker")
        sched = self.schedule
        periodic: list[tuple[str, float, Callable[[], object]]] = [("metrics-flush", sched.flush, self.flush_metrics)]
        if self.index is not None:
            periodic += [("index-reaper", sched.reap, self.reap), ("index-snapshot", sched.snapshot, self.save_index)]
        for name, every, fn in periodic:
            if every > 0:
                self._tasks.append(asyncio.create_task(self._every(every, fn, name), name=name))

    async def _every(self, seconds: float, fn: Callable[[], object | Awaitable[object]], name: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                res = fn()
                if inspect.isawaitable(res):
                    await res
            except Exception:  # a failed round is logged; the next one runs
                log.exception("periodic task failed", extra={"task": name})

    async def drain(self) -> None:
        """Wait until every queued record was written (and acked)."""
        await self.queue.join()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _work(self) -> None:
        queue = self.queue
        has_room = getattr(self.sink, "has_room", None)
        while True:
            records = await queue.get()
            if has_room is not None and not has_room():
                # the sink's spool is full (its server is down or slow): wait, do not read on;
                # the queue fills and the listeners stop reading: backpressure, not loss
                self._es["backpressure_waits"] += 1
                while not has_room():
                    await asyncio.sleep(0.05)
            batch = self._take(records)
            try:
                self.process(batch)
            except Exception:  # never let the worker die: the batch is nak'ed, counted
                log.exception("batch processing failed")
                self._es["failed"] += len(batch)
                _settle([(pos, item.ack) for pos, item in enumerate(batch) if item.ack is not None], set(), True)
            finally:
                queue.task_done(len(batch))

    def _take(self, records: list[Received] | None) -> list[Received]:
        """`records` and the lists queued behind it that fit in `batch_size` records (whole
        lists only: one larger list is a batch alone); the listeners' `queued` counters go
        down as the records leave the queue."""
        batch: list[Received] = []
        tele = self.telemetry
        while records is not None:
            tele.component(records[0].listener)["queued"] -= len(records)
            batch += records
            records = self.queue.get_nowait(self.batch_size - len(batch))
        return batch

    def process(self, batch: list[Received]) -> None:
        """Run the stages over a batch — one call of the native pipeline for its lines —,
        flush the sink, then resolve the acks. Each record is counted once: `sent` or
        `dead_lettered` once flushed, else `failed`."""
        es = self._es
        unusable: dict[int, Exception] = {}   # structured events whose document cannot be made
        b = self.pipeline.live(batch, functools.partial(self._structured, unusable=unusable),
                               open_bucket=self._open_bucket, feed=self._feed_level())
        bad: dict[int, Exception] = {pos: unusable.get(pos) or _Unprocessable(why) for pos, why in b["failed"]}
        write_error: Exception | None = None
        for index, data, n, positions in b["chunks"]:
            try:
                self.sink.write_chunk(index, data, n)
            except Exception as e:  # noqa: BLE001 - its records are dead-lettered below
                write_error = e if isinstance(e, OSError) else write_error
                for pos in memoryview(positions).cast("I"):
                    bad[pos] = e
        self._derive(batch, b, bad)
        refused: set[int] = set()   # nak'ed: not even in the dead-letter file
        dead = failed = 0
        for pos, e in bad.items():
            item = batch[pos]
            self.telemetry.component(item.listener)["errors"] += 1
            log.error("event could not be processed or written: %s", e,
                      extra={"listener": item.listener, "error": type(e).__name__})
            # kept in the dead-letter file, it counts as handed on (a RELP sender would
            # otherwise resend the same message forever); if even that fails: nak
            if self._dead_letter(item, e):
                dead += 1
            else:
                failed += 1
                refused.add(pos)
        sent = len(batch) - dead - failed
        batch_failed = False
        try:
            self.sink.flush()
            self._dlq.flush()
        except Exception as e:  # noqa: BLE001 - not in the OS's hands: nothing of the batch is durable
            log.error("flushing the output files failed: %s", e)
            self._dlq.discard()   # the batch is refused whole: its senders resend it, dead letters too
            write_error = e
            failed += sent + dead
            sent = dead = 0
            batch_failed = True
        es["sent"] += sent
        es["dead_lettered"] += dead
        es["failed"] += failed
        self.stats.batches += 1
        self.stats.events += b["events"]
        for ds, n in b["datasets"].items():
            self.stats.datasets[ds] = self.stats.datasets.get(ds, 0) + n
        self._outputs_state(write_error, failed)
        _settle(b["acks"], refused, batch_failed)

    def _outputs_state(self, error: Exception | None, failed: int) -> None:
        """What /health says of the outputs: failing from a batch that could not be written
        until a batch is written whole again."""
        if error is None and not failed:
            if self.output_problem is not None:
                log.info("outputs written again", extra={"after": self.output_problem})
            self.output_problem = None
        elif self.output_problem is None:
            self.output_problem = f"writing the outputs fails: {type(error).__name__ if error else 'error'}: {error}"

    def _dead_letter(self, item: Received, error: Exception) -> bool:
        """One NDJSON line in DIR/dead-letter.ndjson (written with the batch): the message as
        received and why."""
        try:
            record = {"@timestamp": format_timestamp(item.received_at), "listener": item.listener,
                      "peer": str(item.peer), "error": f"{type(error).__name__}: {error}",
                      "original": item.text if item.text is not None else repr(item.event)}
            self._dlq.write(orjson.dumps(record) + b"\n")
            return True
        except Exception:  # noqa: BLE001 - the caller naks and counts
            log.exception("dead-letter record failed", extra={"listener": item.listener})
            return False

    def _feed_level(self) -> int:
        """The side records the index feed reads: none without an index, every line's for
        its `logs` source, else those of the lines that move a count."""
        if self.index is None:
            return 0
        feed = getattr(self.index, "feed", None)
        return 2 if "logs" in getattr(feed, "sources", ()) else 1

    def _structured(self, item: Received, pos: int, *, unusable: dict[int, Exception]) -> tuple[dict, str] | None:
        """A Riemann event's document and the text its `_id` is made of; None (and the
        reason in `unusable`) when it cannot be made: the core then fails that record."""
        ev = item.event
        try:
            if item.tags:
                ev.tags.extend(item.tags)
            ev.fields.setdefault("event", {}).setdefault("dataset", "riemann")
            return ev.to_doc(), ev.service or ""
        except Exception as e:  # noqa: BLE001 - dead-lettered with its reason
            unusable[pos] = e
            return None

    def _derive(self, batch: list[Received], b: dict, bad: dict[int, Exception]) -> None:
        """The TTL index from the batch's side records; the structured events (Riemann's)
        one by one: their metric passes through, their state is an entry. (The native
        pipeline keeps the derived counts until a flush takes them.)"""
        index = self.index
        if index is not None:
            for side in b["side"]:
                item = batch[side[0]]
                try:
                    index.observe_side(side[1:], item.received_at)
                except Exception as e:  # noqa: BLE001
                    self._derive_failed(item, e)
        for pos, doc in b["structured"]:
            if pos in bad:
                continue
            item = batch[pos]
            ev = item.event
            try:
                if ev.metric is not None and ev.service is not None:
                    arrived = int(item.received_at)
                    self.metrics.point(ev.host or "unknown", "riemann", ev.service, ev.metric, ev.time or arrived)
                if index is not None and item.listener != INDEX_LISTENER:
                    index.observe(ev, doc, item.received_at)
            except Exception as e:  # noqa: BLE001
                self._derive_failed(item, e)

    def _derive_failed(self, item: Received, error: Exception) -> None:
        """Metrics or index could not take an event that was written: counted in the
        listener's `errors` and `derive_errors`, logged (the first ten with a traceback)."""
        c = self.telemetry.component(item.listener)
        c["errors"] += 1
        c["derive_errors"] += 1
        n = c["derive_errors"]
        log.error("metrics or index failed on a written event: %s", error, exc_info=n <= 10,
                  extra={"listener": item.listener, "error": type(error).__name__, "derive_errors": n})

    # -- outputs -------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What keeps the outputs from being healthy now (for /health)."""
        found = [self.output_problem]
        for sink in (self.sink, self.graphite):
            problem = getattr(sink, "problem", None)
            if problem is not None:
                found.append(problem())
        return [p for p in found if p]

    def reopen(self) -> None:
        """SIGHUP: close the output files; they are reopened (appending) on the next write.
        The Elasticsearch sink keeps delivering (only its dead-letter file is reopened)."""
        self.sink.reopen()
        self._dlq.close_file()
        log.info("output files closed for reopening")

    def flush_metrics(self, final: bool = False) -> int:
        """Append the points of the intervals that ended (all of them when `final`), with the
        gauges of the interval that just ended; GeoIP gets its look for a new database."""
        now = self.clock.now()
        flush = self._bucket
        current = int(now) - int(now) % flush
        stamp = current - flush
        host, m = self.hostname, self.metrics
        if self.index is not None:
            for name, value in self.index.gauges().items():
                m.point(host, "index", name, value, stamp)
        if self.schedule.telemetry_metrics:
            for component, counters in self.telemetry.snapshot().items():
                for name, value in counters.items():
                    m.point(host, "telemetry", f"{component}.{name}", value, stamp)
            m.point(host, "telemetry", "queue.depth", self.queue.qsize(), stamp)
            if self.geoip is not None:
                for name, value in self.geoip.stats().items():
                    if isinstance(value, int | float):
                        m.point(host, "telemetry", f"geoip.{name}", value, stamp)
        if self.geoip is not None:
            self.geoip.maybe_reload(now)
        m.add(self.pipeline.take_metrics(None if final else current))   # what the batches counted
        points = m.take(None if final else current)
        self._open_bucket = max(self._open_bucket, current)
        tele = self.telemetry.component(GRAPHITE_SINK)
        try:
            n = self.graphite.write(points)
        except OSError as e:
            tele["failed"] += len(points)
            log.error("writing the metrics failed: %s", e, extra={"points": len(points)})
            return 0
        tele["sent"] += n
        return n

    async def reap(self) -> int:
        """The index's due entries go back into the stream as expired events."""
        assert self.index is not None
        expired = self.index.reap()
        now = self.clock.now()
        step = self.batch_size  # a mass expiry must not hold the RELP acks of one batch back
        for i in range(0, len(expired), step):
            try:
                await self.put([Received(INDEX_LISTENER, now, event=ev) for ev in expired[i:i + step]])
            except asyncio.CancelledError:
                # shutdown while waiting for room (a put is all or nothing): these have left
                # the index and its snapshot already, so close() writes them
                self._unreaped = [Received(INDEX_LISTENER, now, event=ev) for ev in expired[i:]]
                raise
        return len(expired)

    def save_index(self) -> None:
        if self.index is not None:
            if self.index.snapshot is not None:   # the output directory may have been removed
                self.index.snapshot.parent.mkdir(parents=True, exist_ok=True)
            self.index.save()

    def close(self) -> int:
        """Close the bulk files, write the last metrics, save the index; returns the points written."""
        if self._unreaped:
            batch, self._unreaped = self._unreaped, []
            self.telemetry.component(INDEX_LISTENER)["accepted"] += len(batch)
            self.process(batch)
        self.sink.close()
        self._dlq.close()
        n = self.flush_metrics(final=True)
        if not self.graphite.close():
            log.warning("metric points left undelivered at shutdown", extra={"points": n})
        self.save_index()
        return n
