"""The Elasticsearch sink: documents spooled to disk, delivered by a sender thread with
`_bulk`, every item's answer classified.

Write path: `write(doc, doc_id)` appends one record to the spool (`DIR/spool/elasticsearch`)
and `flush()` hands the records to the OS; that is the point a RELP ack may go out. The
spool is bounded: when Elasticsearch is down or slow it fills, `write()` waits, the live
pipeline's queue fills and the listeners stop reading (the RELP acks wait): backpressure,
not loss. When the server is back, the spool drains oldest first.

Sender: reads up to `batch_size` records (or `batch_bytes`) as soon as there are any, or
waits up to `flush_seconds` for more; sends them as `create` actions with the documents'
deterministic `_id`, so a resend after a crash or a retry never duplicates a document.
Each item of the answer is classified:

- 2xx: indexed (`sent`);
- 409: the document is already there (a resend): counted (`duplicates`), dropped;
- 400/404 (mapping or parse errors, a closed index): never retried: the original event,
  its index and the server's reason go to the dead-letter file (`dead_lettered`);
- 429, 5xx, anything else: retried with capped exponential backoff and full jitter,
  only the failed items resent (`retried`);
- connection errors and whole-request failures: the whole batch is retried the same way;
  the cluster going away and coming back is logged once each;
- 413 on the whole request (over `http.max_content_length` or a proxy's body limit): the
  batch is sent in halves and later batches are read smaller; a single document over
  the limit is dead-lettered;
- 429 whose reason says the operation alone is over the node's indexing-pressure limit
  (`indexing_pressure.memory.limit`, 10 % of the heap: a document of some 13 MB on a 512 MB
  heap): no retry can pass, so it is handled as a 413 is (halves, then dead-lettered).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..addresses import masked
from ..sinks.bulk_files import IndexNamer
from .backoff import backoff
from .es_templates import body_of, status_of
from .spool import Spool, SpoolFull
from .stall import Progress

log = logging.getLogger("streams.sink.elasticsearch")


@dataclass
class ElasticsearchSettings:
    url: str = "http://127.0.0.1:9200"
    batch_size: int = 1000
    batch_bytes: int = 5 << 20
    flush_seconds: float = 1.0
    spool_max_bytes: int = 1 << 30
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    request_timeout: float = 30.0
    close_timeout: float | None = 10.0  # None: close() waits until everything is delivered
    # waiting to deliver (close(), or write() into a full spool), give up after this many
    # seconds in which no document was delivered (replay's bounded wait); None: never
    stall_timeout: float | None = None
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def record(index: str, doc_id: str, doc: dict) -> bytes:
    """One spool record: index TAB id TAB document, one line (orjson never writes a raw LF)."""
    return index.encode() + b"\t" + doc_id.encode() + b"\t" + orjson.dumps(doc) + b"\n"


def bulk_lines(rec: bytes) -> bytes:
    index, doc_id, doc = rec.split(b"\t", 2)
    return b'{"create":{"_index":"' + index + b'","_id":"' + doc_id + b'"}}\n' + doc


def make_client(s: ElasticsearchSettings) -> Any:
    """The official client (its major version is the server's); retries are ours, per item.
    Its transport logs every request (INFO) and every failure (WARNING): during an outage that
    is a line per retry; the sink says it once, so the transport only gets to say errors."""
    from elasticsearch import Elasticsearch
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    kw: dict[str, Any] = {"request_timeout": s.request_timeout, "max_retries": 0, **s.extra}
    if s.api_key:
        kw["api_key"] = s.api_key
    elif s.username:
        kw["basic_auth"] = (s.username, s.password or "")
    return Elasticsearch(s.url, **kw)


# Elasticsearch's indexing pressure refusing an operation bigger than its limit, e.g.
# "rejected execution of primary operation [..., primary_operation_bytes=67371796,
# max_primary_bytes=53687091]" (9.3): waiting does not make it smaller
_OVER_LIMIT = re.compile(r"_operation_bytes=(\d+), max_\w*_bytes=(\d+)")


def over_limit(error: Any) -> bool:
    """Whether a 429's reason says the operation alone is over the server's limit."""
    reason = error.get("reason") if isinstance(error, dict) else error
    m = _OVER_LIMIT.search(str(reason))
    return m is not None and int(m[1]) > int(m[2])


@dataclass
class Outcome:
    """What one `_bulk` answer says about each record sent."""

    sent: int = 0
    duplicates: int = 0
    dead: list[tuple[bytes, int, Any]] = field(default_factory=list)   # (record, status, error)
    retry: list[bytes] = field(default_factory=list)
    too_large: list[tuple[bytes, Any]] = field(default_factory=list)   # (record, error): 429 over the limit


def classify(records: list[bytes], response: dict) -> Outcome:
    """Pure: the answer's items are in the order of the actions sent."""
    out = Outcome()
    items = response.get("items") or []
    if len(items) != len(records):  # a truncated answer: resend what has no answer
        out.retry.extend(records[len(items):])
    for rec, item in zip(records, items, strict=False):
        res = next(iter(item.values())) if item else {}
        status = int(res.get("status", 0))
        if 200 <= status < 300:
            out.sent += 1
        elif status == 409:
            out.duplicates += 1
        elif status in (400, 404):
            out.dead.append((rec, status, res.get("error")))
        elif status == 429 and over_limit(res.get("error")):
            out.too_large.append((rec, res.get("error")))
        else:
            out.retry.append(rec)
    return out


class OutputStalled(Exception):
    """Elasticsearch took nothing for `stall_timeout` seconds (what is spooled stays spooled)."""


class OutputAborted(Exception):
    """`abort()` was called (a signal) while waiting for room in the spool."""


class ElasticsearchSink:
    """`write()`/`flush()`/`close()` like the bulk-file sink; delivery runs in a thread."""

    def __init__(self, settings: ElasticsearchSettings, spool_dir: Path, dead_letter: Path,
                 namer: IndexNamer | None = None, counters: dict[str, int] | None = None,
                 client: Any = None, prepare: Callable[[Any], object] | None = None) -> None:
        self.settings = settings
        self.shown_url = masked(settings.url)   # what logs and /health say: no password
        self.namer = namer or IndexNamer()
        self.spool = Spool(spool_dir, settings.spool_max_bytes)
        self.dead_letter_path = dead_letter
        self._dlq: BinaryIO | None = None
        self._reopen_dlq = False  # set by reopen(); the sender thread, which owns the file, acts on it
        self._batch_bytes = settings.batch_bytes  # lowered when the server answers 413 (too large)
        self.counts: dict[str, int] = {}
        self.stats = counters if counters is not None else {}
        for k in ("sent", "duplicates", "dead_lettered", "retried", "failed", "requests", "spooled", "errors"):
            self.stats.setdefault(k, 0)
        self.client = client if client is not None else make_client(settings)
        # run once against the server before the first document (index templates), retried
        # with backoff until it succeeds: a document indexed before its template is mapped wrong
        self._prepare = prepare
        self._stop = threading.Event()
        self._abort = False   # set by abort(), from a signal handler: no lock taken there
        self._up: bool | None = None
        self._thread = threading.Thread(target=self._run, name="es-sender", daemon=True)
        self._thread.start()

    # -- the pipeline's side ----------------------------------------------------------------

    # an asyncio caller sets this False and awaits `has_room()` before each batch instead
    block_when_full = True

    chunk_format = "spool"   # what the native pipeline writes for write_chunk()

    def write_chunk(self, index: str, data: bytes, count: int, timeout: float | None = None) -> None:
        """`count` spool records of one index, as the native pipeline wrote them. A full spool
        waits (`block_when_full`) up to `timeout` (SpoolFull), or while documents are delivered
        at least every `stall_timeout` (OutputStalled), or until `abort()` (OutputAborted)."""
        if self.block_when_full and not self.spool.has_room():
            self._wait_room(timeout)
        self.spool.append(data, timeout, self.block_when_full, count)
        self.counts[index] = self.counts.get(index, 0) + count
        self.stats["spooled"] += count

    def write(self, doc: dict, doc_id: str, timeout: float | None = None) -> None:
        """Spool one document (the pipelines write chunks; this is for a single one)."""
        index = self.namer.for_doc(doc)
        self.write_chunk(index, record(index, doc_id, doc), 1, timeout)

    def _wait_room(self, timeout: float | None) -> None:
        start = time.monotonic()
        progress = Progress(self._delivered, self.settings.stall_timeout, start)
        while not self.spool.wait_room(0.1):
            now = time.monotonic()
            if self._abort:
                raise OutputAborted("elasticsearch: stopped while waiting for room in the spool")
            if progress.stalled(now):
                raise OutputStalled(self.stall_message())
            if timeout is not None and now - start > timeout:
                return   # append() raises SpoolFull

    def flush(self) -> None:
        self.spool.flush()

    def has_room(self) -> bool:
        return self.spool.has_room()

    def problem(self) -> str | None:
        """Why /health is not ok because of this sink, if it is: the spool full (the intake
        waits), or the server unreachable or failing (events wait in the spool)."""
        if not self.spool.has_room():
            return f"elasticsearch spool full ({self.spool.pending()} bytes): the intake waits"
        if self._up is False:
            return f"elasticsearch {self.shown_url} unreachable or failing: {self.spool.pending()} bytes spooled"
        return None

    def wait_delivered(self, timeout: float | None = None) -> bool:
        """Block until the spool is empty (True), or `timeout` passed, or nothing was delivered
        for `stall_timeout` (`stalled` set), or `abort()` was called (False)."""
        start = time.monotonic()
        said = start
        progress = Progress(self._delivered, self.settings.stall_timeout, start)
        self.spool.flush()
        while self.spool.pending() > 0:
            now = time.monotonic()
            if (timeout is not None and now - start > timeout) or self._abort:
                return False
            if progress.stalled(now):
                self.stalled = True
                return False
            if now - said > 10:
                said = now
                log.info("waiting for elasticsearch to take the spooled events", extra={
                    "spool_bytes": self.spool.pending(), "sent": self.stats["sent"], "url": self.shown_url})
            time.sleep(0.02)
        return True

    stalled = False   # wait_delivered() gave up: nothing was delivered for stall_timeout

    def _delivered(self) -> int:
        """Documents delivered: indexed, known already, or dead-lettered."""
        st = self.stats
        return st["sent"] + st["duplicates"] + st["dead_lettered"]

    def abort(self) -> None:
        """Stop waiting for Elasticsearch (a signal): what is spooled stays for the next start.
        Safe from a signal handler: it sets a flag, the waits look at it."""
        self._abort = True

    def stall_message(self) -> str:
        return (f"elasticsearch took no document for {self.settings.stall_timeout:g} s; "
                f"{self.spool.pending()} bytes stay in {self.spool.directory}, delivered by the next replay or "
                "run with this output folder")

    def reopen(self) -> None:
        """SIGHUP (log rotation): the dead-letter file is reopened at its next write; the
        sender and the spool go on."""
        self._reopen_dlq = True

    def close(self) -> bool:
        """Deliver what is spooled (up to `close_timeout`; the rest stays spooled for the
        next start), stop the sender. True when nothing was left behind."""
        done = self.wait_delivered(self.settings.close_timeout)
        if not done and not (self.stalled or self._abort):   # else the caller says why
            log.warning("elasticsearch: events left in the spool, delivered at the next start",
                        extra={"spool_bytes": self.spool.pending(), "spool": str(self.spool.directory)})
        self._stop.set()
        self._thread.join(timeout=5)
        self.spool.close()
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None
        return done

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        s = self.settings
        attempt = 0
        while self._prepare is not None and not self._stop.is_set():
            try:
                self._prepare(self.client)
                self._prepare = None
                self._back_up()
            except Exception as e:  # noqa: BLE001 - unreachable or refusing: wait, retry
                self._down(e)
                self._stop.wait(backoff(attempt, s.backoff_initial, s.backoff_max))
                attempt += 1
        attempt = 0
        while not self._stop.is_set():
            try:
                records, pos = self.spool.read(s.batch_size, self._batch_bytes, wait=s.flush_seconds)
                if not records:
                    self._stop.wait(0.05)  # never a busy loop, whatever the spool's byte count says
                    continue
                if not self._deliver(records):
                    break  # stopping: the undelivered records stay in the spool (not committed)
                self.spool.commit(pos)
                attempt = 0
            except Exception:  # a bug or an unreadable spool must not end delivery for good
                log.exception("elasticsearch sender: unexpected error; the batch stays spooled and is retried")
                self.stats["errors"] += 1
                self._stop.wait(backoff(attempt, s.backoff_initial, s.backoff_max))
                attempt += 1

    def _readable(self, records: list[bytes]) -> list[bytes]:
        """The records that can be sent; one the spool gave back damaged (torn by a crash or
        a full disk) is dead-lettered as it is instead of being sent again and again."""
        good = []
        for r in records:
            parts = r.rstrip(b"\n").split(b"\t", 2)
            if len(parts) == 3 and parts[0] and parts[1] and parts[2][:1] == b"{" and parts[2][-1:] == b"}":
                good.append(r)
            elif not self._dead(r, 0, "unreadable spool record (incomplete or damaged)"):
                raise OSError("a damaged spool record could not be dead-lettered")
        return good

    def _deliver(self, records: list[bytes]) -> bool:
        """Until every record is indexed, known, or dead-lettered: True; False when the sink
        stops first."""
        s = self.settings
        attempt = 0
        pending = self._readable(records)
        while pending:
            try:
                body = b"\n".join(bulk_lines(r.rstrip(b"\n")) for r in pending) + b"\n"
                self.stats["requests"] += 1
                resp = self.client.bulk(body=body)
                outcome = classify(pending, body_of(resp))
            except Exception as e:  # noqa: BLE001 - connection refused, timeouts, 429/5xx on the whole request
                status = status_of(e)
                if status in (400, 404):   # the whole request is bad: nothing will make it good
                    outcome = Outcome(dead=[(r, int(status), str(e)) for r in pending])
                elif status == 413 or (status == 429 and over_limit(e)):   # over a size limit
                    if len(pending) > 1:
                        return self._split(pending, len(body), e)
                    outcome = Outcome(dead=[(pending[0], status, str(e))])   # one document: no resend can pass
                else:
                    self._down(e)
                    outcome = Outcome(retry=pending)
            else:
                self._back_up()
                if outcome.too_large:  # each over the server's limit in this request
                    if len(pending) == 1:
                        outcome.dead += [(r, 429, err) for r, err in outcome.too_large]
                    elif not self._split([r for r, _ in outcome.too_large], len(body), outcome.too_large[0][1]):
                        return False
            st = self.stats
            st["sent"] += outcome.sent
            st["duplicates"] += outcome.duplicates
            pending = outcome.retry
            for rec, status, error in outcome.dead:
                if not self._dead(rec, status, error):
                    pending.append(rec)  # not kept anywhere yet: asked again, dead-lettered later
            if pending:
                st["retried"] += len(pending)
                if self._stop.wait(backoff(attempt, s.backoff_initial, s.backoff_max)):
                    return False
                attempt += 1
        return True

    def _split(self, records: list[bytes], body_bytes: int, e: Any) -> bool:
        """A 413 (Elasticsearch's `http.max_content_length`, or a proxy's limit such as
        nginx's 1 MiB `client_max_body_size`), or a 429 over the indexing-pressure limit: send the halves, and read smaller batches
        from now on, so that the limit is not hit again and again."""
        if body_bytes // 2 < self._batch_bytes:
            self._batch_bytes = max(body_bytes // 2, 1)
            log.warning("elasticsearch refused a bulk request as too large: batches of at most %d bytes "
                        "from now on", self._batch_bytes, extra={"url": self.shown_url, "error": str(e)})
        half = len(records) // 2
        return self._deliver(records[:half]) and self._deliver(records[half:])

    def _down(self, e: Exception) -> None:
        if self._up is not False:   # a warning: nothing is lost yet (giving up is the caller's error)
            log.warning("elasticsearch unreachable or failing; events wait in the spool: %s", e,
                      extra={"url": self.shown_url, "spool_bytes": self.spool.pending()})
        self._up = False

    def _back_up(self) -> None:
        if self._up is False:
            log.info("elasticsearch reachable again; delivering the spool", extra={
                "url": self.shown_url, "spool_bytes": self.spool.pending()})
        self._up = True

    def _dead(self, rec: bytes, status: int, error: Any) -> bool:
        """One line in the dead-letter file: the original event, its index, id, status and the
        server's reason. False when it could not be written (logged; the caller keeps the record)."""
        parts = rec.rstrip(b"\n").split(b"\t", 2)
        entry: dict[str, Any] = {"index": None, "_id": None, "status": status, "error": error}
        if len(parts) == 3:
            entry["index"], entry["_id"] = parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")
        try:
            entry["event"] = orjson.loads(parts[2]) if len(parts) == 3 else None
        except orjson.JSONDecodeError:
            entry["event"] = None
        if entry["event"] is None:  # not a JSON document: the record as it was spooled
            entry["record"] = rec.rstrip(b"\n").decode("utf-8", "replace")
        try:
            if self._reopen_dlq and self._dlq is not None:
                self._dlq.close()
                self._dlq = None
            self._reopen_dlq = False
            if self._dlq is None:
                self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                self._dlq = self.dead_letter_path.open("ab")
            self._dlq.write(orjson.dumps(entry, default=str) + b"\n")
            self._dlq.flush()
        except (OSError, ValueError) as e:
            log.error("elasticsearch dead-letter file not writable; the document is kept and retried: %s", e,
                      extra={"path": str(self.dead_letter_path), "index": entry["index"], "_id": entry["_id"]})
            if self._dlq is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._dlq.close()
                self._dlq = None
            return False
        self.stats["dead_lettered"] += 1
        reason = error.get("reason") if isinstance(error, dict) else error
        log.warning("elasticsearch refused a document: dead-lettered", extra={
            "index": entry["index"], "_id": entry["_id"], "status": status, "reason": reason})
        return True


__all__ = ["ElasticsearchSettings", "ElasticsearchSink", "OutputAborted", "OutputStalled", "SpoolFull", "classify",
           "record"]
