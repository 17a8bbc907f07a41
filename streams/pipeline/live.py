"""The in-process live pipeline: listeners -> bounded queue -> one worker -> sinks.

Listeners (`streams.ingest`) hand over `Received` records; one worker task takes them off
the queue in batches and runs the same stages as `streams replay`: parse (syslog and RELP
messages go through `LineParser.parse`; Riemann events are already structured), GeoIP,
derived metrics, then the Elasticsearch bulk NDJSON files in `DIR/elasticsearch`. The
Graphite metrics are written to `DIR/graphite.txt` (appended) at shutdown.

Backpressure: the queue is bounded. A TCP/RELP reader awaits `put()` when it is full, so
it stops reading its socket and the sender's TCP window closes: nothing is dropped. A UDP
datagram cannot wait: `offer()` refuses it when the queue is full, and the listener counts
it as dropped.

Delivery guarantee of an ack (RELP `rsp 200`)
---------------------------------------------
A record may carry an `ack(ok)` callback (put into `ev.meta["ack"]` once parsed). The worker
calls it only after the batch holding the record was written by the bulk-file sink and
the files were flushed to the OS (`f.flush()`): the message is in the kernel's page cache,
so it survives a crash of `streams run` but NOT a crash of the machine or a power loss
(nothing is fsynced). A record whose processing or writing failed is acked with
`ok=False` (RELP answers `500`, the sender keeps the message). On shutdown the queue is
drained first, so what was taken is written and acked; whatever a connection had not yet
acked when it closes is resent by the sender: duplicates are possible, loss is not.

Documents carry no Python objects: `ev.to_doc()`, plus `@timestamp` from the receive time
(tagged `_timestamp_from_ingest`) when the message had none, as replay does. Riemann
events get `event.dataset = "riemann"`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..enrich.geoip import GeoIP
from ..enrich.metrics import DerivedMetrics
from ..event import Event, format_timestamp
from ..parse.dispatch import LineParser
from ..protocols.graphite import format_line
from ..sinks.bulk_files import BulkFileSink, IndexNamer, event_id
from ..telemetry import Telemetry

log = logging.getLogger("streams.live")

Ack = Callable[[bool], None]
ES_SINK = "sink.elasticsearch_files"
GRAPHITE_SINK = "sink.graphite_file"


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


class AppendingBulkFileSink(BulkFileSink):
    """The bulk-file sink of a long-running process: files are always opened to append
    (a restart or a SIGHUP reopen never truncates what is there), and `flush()` pushes
    the buffered lines to the OS."""

    def _file(self, index: str) -> BinaryIO:
        f = self.files.get(index)
        if f is None:
            if len(self.files) >= self.max_open:
                self.files.pop(next(iter(self.files))).close()
            f = self.files[index] = (self.directory / f"{index}.ndjson").open("ab", buffering=self.buffer_size)
            self.counts.setdefault(index, 0)
        return f

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()


@dataclass
class LiveStats:
    events: int = 0
    batches: int = 0
    datasets: dict[str, int] = field(default_factory=dict)


class LivePipeline:
    def __init__(self, parser: LineParser, output: Path, telemetry: Telemetry, *,
                 geoip: GeoIP | None = None, metrics: DerivedMetrics | None = None,
                 namer: IndexNamer | None = None, queue_size: int = 10_000, batch_size: int = 500) -> None:
        self.parser = parser
        self.geoip = geoip
        self.output = output
        self.telemetry = telemetry
        self.metrics = metrics or DerivedMetrics()
        self.sink = AppendingBulkFileSink(output / "elasticsearch", namer)
        self.queue: asyncio.Queue[Received] = asyncio.Queue(queue_size)
        self.batch_size = batch_size
        self.stats = LiveStats()
        self._run_id = secrets.token_hex(6)  # tells this run's documents from a restart's
        self._seq = 0
        self._es = telemetry.component(ES_SINK)
        self._es.update(failed=0)
        telemetry.component(GRAPHITE_SINK)
        self._worker: asyncio.Task | None = None
        self._dlq: BinaryIO | None = None
        self._es.update(dead_lettered=0)

    # -- intake (listeners) --------------------------------------------------------------

    async def put(self, item: Received) -> None:
        """Queue a record, waiting while the queue is full (TCP/RELP backpressure)."""
        await self.queue.put(item)
        c = self.telemetry.component(item.listener)
        c["accepted"] += 1
        c["queued"] += 1

    def offer(self, item: Received) -> bool:
        """Queue a record if there is room (UDP); False when it had to be dropped."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        c = self.telemetry.component(item.listener)
        c["accepted"] += 1
        c["queued"] += 1
        return True

    # -- the worker ----------------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="live-pipeline-worker")

    async def drain(self) -> None:
        """Wait until every queued record was written (and acked)."""
        await self.queue.join()

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _work(self) -> None:
        queue = self.queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                self.process(batch)
            except Exception:  # never let the worker die: the batch is nak'ed, counted
                log.exception("batch processing failed")
            finally:
                for _ in batch:
                    queue.task_done()

    def process(self, batch: list[Received]) -> None:
        """Run the stages over a batch, flush the sink, then resolve the acks."""
        acks: list[tuple[Ack, bool]] = []
        tele = self.telemetry
        es = self._es
        for item in batch:
            c = tele.component(item.listener)
            c["queued"] -= 1
            ok = True
            try:
                self._one(item)
            except Exception as e:
                c["errors"] += 1
                log.error("event could not be processed or written: %s", e,
                          extra={"listener": item.listener, "error": type(e).__name__})
                # kept in the dead-letter file, it counts as handed on (a RELP sender would
                # otherwise resend the same message forever); if even that fails: nak
                ok = self._dead_letter(item, e)
                es["dead_lettered" if ok else "failed"] += 1
            else:
                es["sent"] += 1
            if item.ack is not None:
                acks.append((item.ack, ok))
        try:
            self.sink.flush()
            if self._dlq is not None:
                self._dlq.flush()
        except OSError as e:
            log.error("flushing the output files failed: %s", e)
            es["failed"] += len(acks)
            acks = [(a, False) for a, _ in acks]
        self.stats.batches += 1
        for ack, ok in acks:
            try:
                ack(ok)
            except Exception:
                log.exception("ack callback failed")

    def _dead_letter(self, item: Received, error: Exception) -> bool:
        """One NDJSON line in DIR/dead-letter.ndjson: the message as received and why."""
        try:
            if self._dlq is None:
                self._dlq = (self.output / "dead-letter.ndjson").open("ab")
            record = {"@timestamp": format_timestamp(item.received_at), "listener": item.listener,
                      "peer": str(item.peer), "error": f"{type(error).__name__}: {error}",
                      "original": item.text if item.text is not None else repr(item.event)}
            self._dlq.write(orjson.dumps(record) + b"\n")
            return True
        except Exception:  # noqa: BLE001 - the caller naks and counts
            log.exception("dead-letter write failed", extra={"listener": item.listener})
            return False

    def _one(self, item: Received) -> None:
        if item.text is not None:
            ev = self.parser.parse(item.text)
            if item.tags:
                ev.tags.extend(item.tags)
            if self.geoip is not None:
                self.geoip.enrich(ev.fields, ev.tags)
            original = item.text
        else:
            ev = item.event
            assert ev is not None
            if item.tags:
                ev.tags.extend(item.tags)
            ev.fields.setdefault("event", {}).setdefault("dataset", "riemann")
            original = ev.service or ""
        meta = ev.meta
        meta["listener"] = item.listener
        meta["received_at"] = item.received_at
        meta["peer"] = item.peer
        meta["ack"] = item.ack
        doc = ev.to_doc()
        if "@timestamp" not in doc:
            doc["@timestamp"] = format_timestamp(item.received_at)
            ev.tags.append("_timestamp_from_ingest")
            doc["tags"] = ev.tags
        self._seq += 1
        self.sink.write(doc, event_id(f"{item.listener}:{self._run_id}", self._seq, original))
        self.metrics.observe(doc)
        dataset = (doc.get("event") or {}).get("dataset") or "unknown"
        self.stats.datasets[dataset] = self.stats.datasets.get(dataset, 0) + 1
        self.stats.events += 1

    # -- outputs -------------------------------------------------------------------------

    def reopen(self) -> None:
        """SIGHUP: close the output files; they are reopened (appending) on the next write."""
        self.sink.close()
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None
        log.info("output files closed for reopening")

    def close(self) -> int:
        """Close the bulk files and append the metrics to graphite.txt; returns the points written."""
        self.sink.close()
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None
        n = 0
        with (self.output / "graphite.txt").open("ab") as f:
            for name, value, ts in self.metrics.lines():
                f.write(format_line(name, value, ts))
                n += 1
        self.metrics.counts.clear()
        self.telemetry.component(GRAPHITE_SINK)["sent"] += n
        return n
