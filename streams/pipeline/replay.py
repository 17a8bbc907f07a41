"""The in-process pipeline for log replay: read -> parse -> enrich -> sinks, one loop.

A replay has all its input at hand, so it runs the stage functions in a plain loop
(no queues, no threads): that is the fastest shape for one core. Every line is
accounted for: it becomes exactly one event, and every problem is counted.

It stops early, keeping what it did, on `interrupt()` (a signal: reading stops at the next
line, waits for servers end) or when an output cannot take the events (Elasticsearch or
carbon took nothing for their `stall_timeout`, an output file not writable): `failures`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..clock import Clock, SystemClock
from ..enrich.geoip import GeoIP
from ..enrich.metrics import DerivedMetrics
from ..event import format_timestamp
from ..inputs import InputError, iter_blocks, open_input
from ..parse.dispatch import LineParser
from ..sinks.bulk_files import BulkFileSink
from ..sinks.elasticsearch import ElasticsearchSink, OutputAborted, OutputStalled
from ..sinks.graphite_file import write_points
from ..telemetry import UNLIMITED

log = logging.getLogger("streams.replay")

_MAX_TRACKED = 50_000  # addresses kept for the "top banned/attacking" tables


@dataclass
class ReplayStats:
    lines: int = 0
    empty: int = 0
    events: int = 0
    unreadable_files: list[str] = field(default_factory=list)
    datasets: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    banned: Counter = field(default_factory=Counter)
    attackers: Counter = field(default_factory=Counter)
    country: dict[str, str] = field(default_factory=dict)


class Replay:
    def __init__(self, parser: LineParser, output: Path, geoip: GeoIP | None = None,
                 metrics: DerivedMetrics | None = None, sink: BulkFileSink | ElasticsearchSink | None = None,
                 clock: Clock | None = None, metrics_sink: Any = None,
                 metrics_retention: float = 0.0, host: str | None = None) -> None:
        self.parser = parser
        self.host = host  # host.name of the lines that name none (see enrich/host.py)
        self.metrics_sink = metrics_sink  # e.g. Carbon; None: DIR/graphite.txt
        # seconds the metrics server keeps a point (its schema's longest retention): older
        # points of an archive are sent all the same, but counted and warned about; 0: unknown
        self.metrics_retention = metrics_retention
        self.geoip = geoip
        self.output = output
        self.metrics = metrics or DerivedMetrics()
        self.sink = sink or BulkFileSink(output / "elasticsearch")
        self.clock = clock or SystemClock()
        self.stats = ReplayStats()
        self.pipeline = parser.batch_pipeline(self.sink, self.metrics.bucket, geoip)
        self.interrupted: str | None = None   # the signal that stopped the replay
        self.failures: list[str] = []         # outputs that could not take the events
        self._halt = False                    # stop reading: interrupted, or an output failed
        self._blocked = False                 # in an input's open() or read(), which may wait for ever

    def interrupt(self, signal_name: str) -> None:
        """Stop at the next line and stop waiting for servers (what Elasticsearch has not
        taken stays in its spool). Called from a signal handler: it sets flags, and raises
        only out of an input's open or read (a FIFO or stdin with a quiet writer would
        otherwise keep the replay waiting), where nothing is half-written."""
        self.interrupted = signal_name
        self._halt = True
        for s in (self.sink, self.metrics_sink):
            abort = getattr(s, "abort", None)
            if abort is not None:
                abort()
        if self._blocked:
            self._blocked = False
            raise _Interrupted

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._blocked = True
        try:
            if self._halt:
                raise _Interrupted
            return fn(*args)
        finally:
            self._blocked = False

    def _fail(self, why: str) -> None:
        log.error("%s", why)
        self.failures.append(why)
        self._halt = True

    def process_file(self, path: str, progress: Callable[[int], None] | None = None) -> None:
        if self._halt:
            return
        try:
            stream = self._blocking(open_input, path)
        except OSError as e:
            log.error("cannot read %s: %s", path, e, extra=UNLIMITED)   # one line per file
            self.stats.unreadable_files.append(path)
            return
        except _Interrupted:
            return
        source = Path(path).name
        self.parser.new_input()  # a header-less first line does not continue the last file's entry
        try:
            with stream:
                self._process_lines(_Reader(stream, self), source, progress)
        except InputError as e:
            # a truncated or damaged archive (`.gz`), a read error: the lines before it were
            # processed; the file counts as unreadable (exit code 1), the next one goes on
            log.error("cannot read %s to its end: %s", path, e, extra=UNLIMITED)
            self.stats.unreadable_files.append(path)
        except OutputStalled as e:   # the spool full, nothing delivered for stall_timeout
            self._fail(str(e))
            self.sink.abort()   # type: ignore[union-attr]
        except (OutputAborted, _Interrupted):
            pass   # interrupted while waiting for room or for input: said by the caller
        except OSError as e:   # reading errors are InputError: this is an output that cannot be written
            self._fail(f"cannot write the outputs: {e}")

    def _process_lines(self, stream: BinaryIO | _Reader, source: str, progress: Callable[[int], None] | None) -> None:
        """Blocks of whole lines through the native pipeline (parse, GeoIP, host and time
        defaults, `_id`, index, output bytes, counts): Python sees each block, not a line."""
        stats, sink, clock = self.stats, self.sink, self.clock
        pipeline, set_now = self.pipeline, self.parser.set_now
        lineno = 1
        for block in iter_blocks(stream, progress, self.parser.max_line):
            if self._halt:
                break
            now = clock.now()
            set_now(now)
            b = pipeline.replay(block, source=source, first_line=lineno, now=now, host=self.host)
            lineno += b["lines"]
            stats.lines += b["lines"]
            stats.empty += b["empty"]
            stats.events += b["events"]
            stats.datasets.update(b["datasets"])
            stats.problems.update(b["problems"])
            for index, data, n, _ in b["chunks"]:
                sink.write_chunk(index, data, n)
            self._observe_security(b["security"])

    def _observe_security(self, rows: list[tuple[str, int, int, str | None]]) -> None:
        """A batch's (address, bans, failures, country) into the summary's top tables."""
        stats = self.stats
        for who, bans, failures, cc in rows:
            for counter, n in ((stats.banned, bans), (stats.attackers, failures)):
                if n:
                    counter[who] += n
                    if len(counter) > _MAX_TRACKED:  # keep memory flat on huge archives: drop the long tail
                        for ip, _ in counter.most_common()[_MAX_TRACKED // 2:]:
                            del counter[ip]
                            stats.country.pop(ip, None)
            if cc:
                stats.country[who] = cc

    def _past_retention(self, points: list[tuple[str, float, int]]) -> int:
        """Points older than the metrics server keeps: carbon (whisper) drops them without a
        word, so an archive replayed weeks later would leave a silent gap in Graphite."""
        if self.metrics_retention <= 0:
            return 0
        horizon = self.clock.now() - self.metrics_retention
        old = [ts for _, _, ts in points if ts < horizon]
        if old:
            log.warning("%d of %d metric points are older than the graphite retention (%g days): carbon drops "
                        "points its storage schema does not cover, so they will not show in Graphite; "
                        "set [output.graphite] retention_days to the longest retention of your "
                        "storage-schemas.conf", len(old), len(points), self.metrics_retention / 86400,
                        extra={"oldest": format_timestamp(min(old)), "horizon": format_timestamp(horizon)})
        return len(old)

    def _metrics_failure(self, n: int, path: Path) -> str:
        ms = self.metrics_sink
        st = getattr(ms, "settings", None)
        where, send = (f"carbon {st.host}:{st.port}", f"nc {st.host} {st.port} < {path}") if st else (
            "the metrics server", f"send {path}")
        why = f"took no point for {st.stall_timeout:g} s" if getattr(ms, "stalled", False) else \
            "did not take every point"
        return f"{where} {why}: all {n} metric points are in {path} ({send} delivers them)"

    def finish(self) -> dict[str, Any]:
        """Close the outputs: deliver what was read (up to the outputs' stall timeouts, or
        not at all once interrupted); the summary's output figures."""
        out: dict[str, Any] = {}
        try:
            delivered = self.sink.close()
        except OSError as e:
            delivered = None
            self._fail(f"cannot write the outputs: {e}")
        if delivered is False and getattr(self.sink, "stalled", False):
            self._fail(self.sink.stall_message())   # type: ignore[union-attr]
        self.metrics.add(self.pipeline.take_metrics())   # what the batches counted
        points = self.metrics.take()
        path = self.output / "graphite.txt"
        n = 0
        try:
            if self.metrics_sink is not None and not self._halt:
                out["metric_points_past_retention"] = self._past_retention(points)
                n = self.metrics_sink.write(points)
                if self.metrics_sink.close() is False:   # carbon down, or it gave up: none lost, all in the file
                    write_points(points, path)
                    if not self.interrupted:
                        self._fail(self._metrics_failure(len(points), path))
            else:
                n = write_points(points, path)
                if self.metrics_sink is not None:   # interrupted or failed: not sent, written
                    self.metrics_sink.close()
                    log.warning("the replay stopped early: its %d metric points are in %s, not sent", n, path)
        except OSError as e:   # a full disk, graphite.txt a folder: one line and exit 3
            self._fail(f"cannot write the metric points to {path}: {e}")
        out.update(metric_points=n, indices=len(self.sink.counts))
        stats = getattr(self.sink, "stats", None)
        if stats is not None:
            out["elasticsearch"] = dict(stats)
            if delivered is False:
                out["elasticsearch"]["left_in_spool_bytes"] = self.sink.spool.pending()  # type: ignore[union-attr]
        return out


class _Interrupted(Exception):
    """A signal while the replay waited in an input's open or read."""


class _Reader:
    """An input as `iter_blocks` reads it: each read is a point where a signal may stop it."""

    def __init__(self, stream: BinaryIO, replay: Replay) -> None:
        self._stream, self._replay = stream, replay

    def read1(self, n: int) -> bytes:
        return self._replay._blocking(getattr(self._stream, "read1", self._stream.read), n)
