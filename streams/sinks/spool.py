"""A bounded, segmented, append-only disk queue between the pipeline and a network sink.

The pipeline appends records (opaque bytes, each ending with LF) and flushes them to the
OS; from then on a record survives a crash of the process, so the RELP ack may go out.
A sender thread reads the oldest records, delivers them, then `commit()`s: the read
position is saved in `DIR/position` (segment number and byte offset) and segments wholly
delivered are deleted. After a crash the sender starts again from the saved position, so
a record is delivered at least once; the sink's deterministic document ids make a
resend a no-op at the server.

Bounded by `max_bytes`: `append()` waits (the caller's backpressure) while the spool is
over its limit, up to `timeout`, then raises `SpoolFull`. Segment files are
`<number>.spool`, a new one every `segment_bytes`, so a delivered prefix can be dropped
without rewriting anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("streams.spool")

_SUFFIX = ".spool"


class SpoolFull(Exception):
    """The spool stayed over its size limit for the whole wait."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int = 1 << 30, segment_bytes: int = 16 << 20) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._cond = threading.Condition()
        self._closed = False
        segments = sorted(int(p.stem) for p in directory.glob(f"*{_SUFFIX}") if p.stem.isdigit())
        self._read = self._load_position(segments)
        self._write_segment = (segments[-1] + 1) if segments else max(1, self._read.segment)
        self._writer: BinaryIO | None = None
        self._written = 0  # bytes in the current write segment
        self.bytes = sum(self._path(s).stat().st_size for s in segments) - (
            self._read.offset if self._read.segment in segments else 0)
        self.appended = 0
        self.waits = 0

    # -- the pipeline's side --------------------------------------------------------------

    def append(self, record: bytes, timeout: float | None = None, block: bool = True, count: int = 1) -> None:
        """Add a record (or `count` records, each a line); over the limit, wait (up to
        `timeout`) unless `block` is False (an asyncio caller waits for `has_room()` itself,
        before a batch)."""
        with self._cond:
            if block and self.bytes >= self.max_bytes:
                self.waits += 1
                if not self._cond.wait_for(lambda: self.bytes < self.max_bytes or self._closed, timeout):
                    raise SpoolFull(f"spool {self.directory} over {self.max_bytes} bytes for {timeout}s")
            w = self._writer
            if w is None or self._written >= self.segment_bytes:
                w = self._rotate()
            w.write(record)
            self._written += len(record)
            self.bytes += len(record)
            self.appended += count

    def wait_room(self, timeout: float) -> bool:
        """Wait up to `timeout` for the spool to be under its limit (True) or closed."""
        with self._cond:
            return self._cond.wait_for(lambda: self.bytes < self.max_bytes or self._closed, timeout)

    def flush(self) -> None:
        """Hand what was appended to the OS and wake the reader."""
        with self._cond:
            if self._writer is not None:
                self._writer.flush()
            self._cond.notify_all()

    def _rotate(self) -> BinaryIO:
        if self._writer is not None:
            self._writer.close()
            self._write_segment += 1
        self._writer = self._path(self._write_segment).open("ab", buffering=256 * 1024)
        self._written = 0
        return self._writer

    # -- the sender's side ----------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int, wait: float = 0.0) -> tuple[list[bytes], Position]:
        """Up to `max_records` records (and about `max_bytes`) from the read position, and
        the position after them (give it to `commit()` once they are delivered)."""
        with self._cond:
            if self.bytes == 0 and wait > 0 and not self._closed:
                self._cond.wait(wait)
            if self._writer is not None:
                self._writer.flush()
        records: list[bytes] = []
        pos = self._read
        size = 0
        while len(records) < max_records and size < max_bytes:
            path = self._path(pos.segment)
            # a segment below the write segment is complete: its writer was closed (flushed)
            # before the write segment moved on, so this is known before reading it
            finished = pos.segment < self._write_segment
            want = max(max_bytes - size, 64 * 1024)
            while True:
                try:
                    with path.open("rb") as f:
                        f.seek(pos.offset)
                        data = f.read(want)
                except FileNotFoundError:
                    data = b""
                end = data.rfind(b"\n") + 1
                if end or len(data) < want:
                    break
                want *= 2  # one record longer than the budget: read it whole, or it blocks the spool
            if not end and finished and data and len(data) < want:
                # the end of a finished segment without its LF: a record torn by a crash or a
                # full disk. Handed on as it is (the sink dead-letters what it cannot read):
                # skipping over it silently would lose it, waiting for its LF blocks forever
                log.warning("spool: incomplete record at the end of a segment", extra={
                    "segment": str(path), "offset": pos.offset, "bytes": len(data)})
                records.append(data + b"\n")
                size += len(data)
                pos = Position(pos.segment + 1, 0)
                continue
            if end:
                chunk = data[:end]
                start = 0
                while start < end and len(records) < max_records and size < max_bytes:
                    nl = chunk.index(b"\n", start) + 1
                    records.append(chunk[start:nl])
                    size += nl - start
                    start = nl
                pos = Position(pos.segment, pos.offset + start)
                if len(records) >= max_records or size >= max_bytes:
                    break
                continue
            # nothing complete here: go on to the next segment only if this one is finished
            if pos.segment < self._write_segment and self._segment_done(pos):
                pos = Position(pos.segment + 1, 0)
                continue
            break
        return records, pos

    def _segment_done(self, pos: Position) -> bool:
        try:
            return self._path(pos.segment).stat().st_size <= pos.offset
        except FileNotFoundError:
            return True

    def commit(self, pos: Position) -> None:
        """Everything before `pos` is delivered: forget it."""
        with self._cond:
            old = self._read
            if pos <= old:
                return
            freed = 0
            for seg in range(old.segment, pos.segment):
                p = self._path(seg)
                with contextlib.suppress(FileNotFoundError):
                    freed += p.stat().st_size - (old.offset if seg == old.segment else 0)
                    p.unlink()
            freed += pos.offset - (old.offset if pos.segment == old.segment else 0)
            self._read = pos
            self.bytes = max(0, self.bytes - freed)
            if pos.segment == self._write_segment and pos.offset >= self._written:
                self.bytes = 0  # caught up with the writer: whatever the arithmetic says
            self._save_position(pos)
            self._cond.notify_all()

    def pending(self) -> int:
        return self.bytes

    def has_room(self) -> bool:
        return self.bytes < self.max_bytes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._cond.notify_all()

    # -- files ------------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{_SUFFIX}"

    def _load_position(self, segments: list[int]) -> Position:
        try:
            seg, off = (self.directory / "position").read_text().split()
            pos = Position(int(seg), int(off))
        except (OSError, ValueError):
            return Position(segments[0] if segments else 1, 0)
        if pos.segment in segments:
            return pos
        # its segment is gone (delivered and deleted, or removed by hand): the offset into it
        # means nothing; start at the oldest segment after it (or at its start, where the
        # writer starts again), never at an offset into records that were never read
        later = [s for s in segments if s > pos.segment]
        return Position(later[0] if later else segments[0] if segments else max(1, pos.segment), 0)

    def _save_position(self, pos: Position) -> None:
        tmp = self.directory / "position.tmp"
        tmp.write_text(f"{pos.segment} {pos.offset}\n")
        os.replace(tmp, self.directory / "position")
