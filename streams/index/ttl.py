"""A Riemann-style TTL index: the latest event per `(host, service)`, expired by deadline.

Semantics (Riemann's `riemann.index` / `riemann.core/reaper`):

- one entry per `(host, service)`; a newer event replaces the older one;
- an event whose `state` is `"expired"` deletes its key and is not stored;
- an event without `time` gets `clock.now()` (written into the event);
- TTL: the event's own `ttl`, else `default_ttl` (60 s); an entry is due when
  `now - time > ttl` (strictly), i.e. when `deadline = time + ttl` is `< now`;
- `expire()` removes every due entry and returns, for each, a new event with only
  `host`, `service`, `state="expired"` and `time=now`, to be fed back into the streams.

Absurd values never raise and never lose the event; each is counted in `stats`:

- `ttl` negative, NaN or not a number: the default TTL applies (`bad_ttl`);
- `ttl` above `max_ttl` (one year by default), `inf` included: clamped to `max_ttl`
  (`clamped_ttl`);
- `time` NaN, infinite or not a number: replaced by `clock.now()` (`bad_time`).

A bad `ttl`/`time` is rewritten in the stored event to the value enforced, so what a query
or a snapshot shows is what the reaper uses; a missing `ttl` stays None (default applies).
"Latest" is the last inserted, as in Riemann: event times are not compared.

Expiry cost is proportional to the due entries, not to the index. Entries are queued by
deadline in buckets `resolution` seconds wide (0.1 s by default); a heapq of bucket numbers
says which bucket comes next. `expire()` pops only the buckets that have started and checks
each entry's own deadline, so it examines the due entries, the not yet due part of the one
bucket `now` falls in, and the entries moved as described next. Why not a heapq with one
(deadline, seq, key) item per entry: it was measured first; at 1M entries each pop sifts
through ~20 cache-missing levels (~7 us), and a pass with 1 % due cost ~80 % of a full scan.
Here the heap holds buckets (hundreds for the usual few TTLs) and the entries of a bucket are
a flat list walk. Sparse deadlines (many distinct long TTLs) degrade gracefully towards one
bucket per entry, i.e. a heap of floats.

Updates are lazy: an update that moves a deadline later (the usual case: a host reports
again) only rewrites the entry in place and queues nothing; its bucket, chosen for an
earlier deadline, is still early enough. When that bucket comes due the entry is found not
due and moved to the bucket of its current deadline (`requeued`): at most one move per entry
per TTL however often it is updated, and no garbage. Only a deadline moved earlier needs a
new entry, queued in its own bucket, the old one left behind stale (as a delete leaves one).
Stale references are skipped when met; when they exceed twice the live entries the buckets
are rebuilt from the dict, O(n) once per 2n stale references.

Bounded: at `max_entries`, inserting a new key evicts an entry of the earliest bucket, i.e.
with the earliest deadline to within `resolution`, in O(1) amortized (entries met there whose
deadline was moved later are requeued instead). The entry closest to expiry carries the
least remaining information; it may be the new event itself. If it is already due it is not
lost: its expired event comes out of the next `expire()` (counted as `expired`, unless the
key was inserted again meanwhile); otherwise it counts as `evicted`.
Evictions and bad values are logged at most once per `log_interval` seconds of the clock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from heapq import heapify, heappop, heappush
from pathlib import Path
from typing import Any

import orjson

from streams.clock import Clock
from streams.event import Event

log = logging.getLogger("streams.index")

DEFAULT_TTL = 60.0
MAX_TTL = 365 * 86400.0
SNAPSHOT_VERSION = 1

_new = object.__new__
_FAR = sys.float_info.max  # a deadline beyond it (inf, or a huge int) has no bucket
_dumps = orjson.dumps
_loads = orjson.loads
_DUMP_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_STATS = ("inserted", "updated", "deleted", "expired", "evicted", "bad_ttl", "clamped_ttl", "bad_time",
          "examined", "requeued", "stale_skipped", "bucket_pops", "rebuilds", "saved", "save_errors",
          "loaded", "load_errors")

Key = tuple[str | None, str | None]


class _Entry:
    """What the dict maps a key to, and what the buckets queue: a live entry (`event` not None)
    sits in exactly one bucket, never later than its deadline's. `event` None: the entry was
    replaced or deleted, and the reference left in a bucket is stale."""

    __slots__ = ("deadline", "key", "event")

    deadline: float
    key: Key
    event: Event | None


def expired_event(host: str | None, service: str | None, now: float) -> Event:
    """The reaper's event: only host, service, state and time (Riemann's default keep-keys)."""
    ev = _new(Event)
    ev.time = now
    ev.host = host
    ev.service = service
    ev.state = "expired"
    ev.metric = ev.ttl = ev.description = ev.message = None
    ev.tags = []
    ev.attributes = {}
    ev.fields = {}
    ev.meta = {}
    return ev


class TTLIndex:
    __slots__ = ("_clock", "_entries", "_buckets", "_heap", "_queued", "_pending", "_logged",
                 "default_ttl", "max_ttl", "max_entries", "resolution", "log_interval", "stats")

    def __init__(self, clock: Clock, *, default_ttl: float = DEFAULT_TTL, max_ttl: float = MAX_TTL,
                 max_entries: int = 1_000_000, resolution: float = 0.1, log_interval: float = 60.0) -> None:
        if not 0.0 < max_ttl < math.inf:
            raise ValueError(f"max_ttl must be positive and finite, not {max_ttl!r}")
        if not 0.0 <= default_ttl <= max_ttl:
            raise ValueError(f"default_ttl must be within [0, max_ttl], not {default_ttl!r}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries!r}")
        if not 0.0 < resolution < math.inf:
            raise ValueError(f"resolution must be positive and finite, not {resolution!r}")
        self._clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._buckets: dict[float, list[_Entry]] = {}  # bucket number (deadline // resolution) -> entries
        self._heap: list[float] = []  # the bucket numbers, each once
        self._queued = 0  # references in buckets, live and stale
        # due entries pushed out by eviction, reported by expire(): one per key (a dict), and
        # their events, so that a snapshot taken meanwhile keeps them
        self._pending: dict[Key, Event] = {}
        self._logged: dict[str, tuple[float, int]] = {}
        self.default_ttl = float(default_ttl)
        self.max_ttl = float(max_ttl)
        self.max_entries = max_entries
        self.resolution = float(resolution)
        self.log_interval = log_interval
        self.stats: dict[str, int] = dict.fromkeys(_STATS, 0)

    # -- writes -------------------------------------------------------------------------

    def insert(self, ev: Event) -> None:
        """Index `ev` (or delete its key when its state is "expired")."""
        self.insert_many((ev,))

    def insert_many(self, events: Iterable[Event]) -> None:
        """Index each event in turn, as `insert` does. One loop with the usual case inline
        (valid time and TTL, not an expiry): a call per event cost ~520 instructions more
        (valgrind cachegrind, bench/index_bench.py's mixed stream at 200,000 entries)."""
        entries = self._entries
        buckets, heap = self._buckets, self._heap
        default_ttl, max_ttl, max_entries, res = self.default_ttl, self.max_ttl, self.max_entries, self.resolution
        updated = inserted = 0
        lo, hi = -_FAR, _FAR
        try:
            for ev in events:
                ttl = ev.ttl
                if ttl is None:
                    ttl = default_ttl
                try:
                    deadline = ev.time + ttl
                    usual = 0.0 <= ttl <= max_ttl and lo <= deadline <= hi and ev.state != "expired"
                except (TypeError, OverflowError):  # not numbers, or an int time too big for a float
                    usual = False
                if not usual:
                    deadline = self._checked_deadline(ev)
                    buckets, heap = self._buckets, self._heap  # a delete may have rebuilt them
                    if deadline is None:
                        continue
                key = (ev.host, ev.service)
                old = entries.get(key)
                if old is not None:
                    updated += 1
                    if deadline >= old.deadline:  # the usual case: moved when its bucket comes due, if still live
                        old.deadline = deadline
                        old.event = ev
                        continue
                    old.event = None  # its bucket may be too late for the new deadline: a new entry takes over
                item = _new(_Entry)
                item.deadline = deadline
                item.key = key
                item.event = ev
                entries[key] = item
                bucket = deadline // res
                queue = buckets.get(bucket)
                if queue is None:
                    buckets[bucket] = [item]
                    heappush(heap, bucket)
                else:
                    queue.append(item)
                self._queued += 1
                if old is None:
                    inserted += 1
                    if len(entries) > max_entries:
                        self._evict()
                elif self._queued > 3 * len(entries):
                    self._rebuild()
                    buckets, heap = self._buckets, self._heap
        finally:
            stats = self.stats
            stats["updated"] += updated
            stats["inserted"] += inserted

    def _checked_deadline(self, ev: Event) -> float | None:
        """The unusual event: an expiry deletes its key (None); a missing time becomes now;
        an absurd TTL or time is fixed, counted and written back. Returns its deadline."""
        if ev.state == "expired":
            self.delete(ev.host, ev.service)
            return None
        ttl = ev.ttl
        if ttl is None:
            ttl = self.default_ttl
        else:
            try:
                if not 0.0 <= ttl <= self.max_ttl:  # False for NaN too
                    ttl = self._fix_ttl(ev, ttl)
            except TypeError:
                ttl = self._fix_ttl(ev, ttl)
        t = ev.time
        if t is None:
            t = ev.time = self._clock.now()
        try:
            deadline = t + ttl
            if not -_FAR <= deadline <= _FAR:  # NaN, +-inf, a huge int: nothing sane to queue it by
                deadline = self._fix_time(ev, ttl)
        except (TypeError, OverflowError):
            deadline = self._fix_time(ev, ttl)
        return deadline

    def delete(self, host: str | None, service: str | None) -> bool:
        """Remove a key; its queued reference goes stale. True when the key was present."""
        if self._pending:  # a due entry pushed out by eviction goes too: it was in the index
            self._pending.pop((host, service), None)
        old = self._entries.pop((host, service), None)
        if old is None:
            return False
        old.event = None
        self.stats["deleted"] += 1
        if self._queued > 3 * len(self._entries):
            self._rebuild()
        return True

    def expire(self, now: float | None = None) -> list[Event]:
        """Remove every due entry; return one `state="expired"` event per entry removed.

        Looks only at the buckets that have started by `now`: O(due + stale met + entries
        updated since they were queued + the not yet due part of the bucket `now` falls in),
        never a scan of the index. `stats["examined"]` counts what was looked at.
        """
        if now is None:
            now = self._clock.now()
        keys = [key for key in self._pending if key not in self._entries]  # not re-inserted since evicted
        self._pending = {}
        keys += [item.key for item in self.take_due(now)]
        out = [expired_event(host, service, now) for host, service in keys]
        self.stats["expired"] += len(out)
        return out

    def take_due(self, now: float) -> list[_Entry]:
        """The reaper's pass: unlink the entries due at `now` and return them (their events
        are freed with the list). `expire()` is this plus building the expired events."""
        entries, buckets, heap = self._entries, self._buckets, self._heap
        res = self.resolution
        limit = now // res  # floor division is monotonic: a due entry's bucket is <= limit
        examined = pops = waiting = 0
        due: list[_Entry] = []
        kept: list[tuple[float, list[_Entry]]] = []
        moved: dict[float, list[_Entry]] = {}
        while heap and heap[0] <= limit:
            bucket = heappop(heap)
            queue = buckets.pop(bucket)
            pops += 1
            examined += len(queue)
            keep = []
            for item in queue:
                if item.event is None:
                    continue  # stale: replaced, deleted or expired
                deadline = item.deadline
                if deadline < now:
                    del entries[item.key]  # its only queue reference is dropped with this bucket
                    due.append(item)
                    continue
                new = deadline // res
                if new == bucket:
                    keep.append(item)
                else:  # updated since it was queued
                    later = moved.get(new)
                    if later is None:
                        moved[new] = [item]
                    else:
                        later.append(item)
            if keep:
                kept.append((bucket, keep))
                waiting += len(keep)
        # put back after the loop, or the loop would meet them again
        for bucket, keep in kept:
            buckets[bucket] = keep
            heappush(heap, bucket)
        n_moved = 0
        for bucket, items in moved.items():
            n_moved += len(items)
            self._enqueue(bucket, items)
        stats = self.stats
        stats["examined"] += examined
        stats["bucket_pops"] += pops
        stats["requeued"] += n_moved
        stats["stale_skipped"] += examined - len(due) - waiting - n_moved
        self._queued -= examined - waiting - n_moved
        if self._queued > 3 * len(entries):  # expiry removes live entries faster than stale items
            self._rebuild()
        return due

    # -- reads --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, host: str | None, service: str | None) -> Event | None:
        item = self._entries.get((host, service))
        return None if item is None else item.event

    def deadline(self, host: str | None, service: str | None) -> float | None:
        item = self._entries.get((host, service))
        return None if item is None else item.deadline

    def events(self) -> Iterator[Event]:
        """The current events; iterates a copy, so inserts and expiry may run meanwhile."""
        for item in list(self._entries.values()):
            yield item.event  # type: ignore[misc]  # live entries always hold one

    def search(self, predicate: Callable[[Event], bool]) -> list[Event]:
        """Events for which `predicate` is true (a predicate that raises propagates)."""
        return [ev for ev in self.events() if predicate(ev)]

    # -- persistence --------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write a snapshot atomically (temp file in the same directory, fsync, rename).

        Format: orjson lines: a header `{"snapshot": 1, "saved_at": ...}`, one line per entry
        with the Riemann fields and the ECS `fields` (never `message` or `meta`), and an end
        line `{"snapshot_end": <entries written>}`.
        An entry that cannot be serialized is skipped and counted (`save_errors`).
        Returns the number of entries written.
        """
        path = Path(path)
        items = list(self._entries.values())
        pending = [ev for key, ev in self._pending.items() if key not in self._entries]
        written = errors = 0
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                w = f.write
                w(_dumps({"snapshot": SNAPSHOT_VERSION, "saved_at": self._clock.now()}, option=_DUMP_OPTS))
                for ev in [item.event for item in items] + pending:  # pending: due, reported after a load
                    try:
                        line = _dumps({"time": ev.time, "host": ev.host, "service": ev.service,
                                       "state": ev.state, "metric": ev.metric, "ttl": ev.ttl,
                                       "description": ev.description, "tags": ev.tags,
                                       "attributes": ev.attributes, "fields": ev.fields},
                                      default=str, option=_DUMP_OPTS)
                    except (TypeError, orjson.JSONEncodeError) as e:
                        errors += 1
                        if errors == 1:
                            log.error("index snapshot: entry skipped", extra={
                                "host": ev.host, "service": ev.service, "error": str(e)})
                        continue
                    w(line)
                    written += 1
                w(_dumps({"snapshot_end": written}, option=_DUMP_OPTS))  # a cut at a line boundary shows
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
        self.stats["saved"] += written
        self.stats["save_errors"] += errors
        log.info("index snapshot saved", extra={"path": str(path), "entries": written, "skipped": errors})
        return written

    def load(self, path: str | os.PathLike[str]) -> int:
        """Restore a snapshot written by `save`; returns the number of entries restored.

        Entries already past their TTL are kept, so the next `expire()` reports them: a
        restart does not forget which hosts went silent. A key already in the index keeps
        its event when that one is not older. A missing file restores nothing. A corrupt or
        truncated snapshot never raises: unreadable lines are skipped, the readable part is
        kept, and the damage (bad lines, missing header or end line) is logged and counted
        in `load_errors`.
        """
        path = Path(path)
        try:
            f = open(path, "rb")  # closed by the `with` below
        except FileNotFoundError:
            return 0
        except OSError as e:
            self.stats["load_errors"] += 1
            log.error("index snapshot unreadable", extra={"path": str(path), "error": str(e)})
            return 0
        restored = seen = bad = 0
        header = False
        end: int | None = None
        entries = self._entries
        try:
            with f:
                for lineno, line in enumerate(f, 1):
                    try:
                        d = _loads(line)
                    except orjson.JSONDecodeError:
                        bad += 1
                        continue
                    ev = _decode(d)
                    if ev is None:
                        if lineno == 1 and _is_header(d):
                            header = True
                        elif isinstance(d, dict) and isinstance(d.get("snapshot_end"), int):
                            end = d["snapshot_end"]
                        else:
                            bad += 1
                        continue
                    seen += 1
                    cur = entries.get((ev.host, ev.service))
                    if cur is not None and cur.event.time >= ev.time:
                        continue
                    self.insert(ev)
                    restored += 1
        except OSError as e:  # a read error mid-file: keep what was read
            bad += 1
            log.error("index snapshot read failed", extra={"path": str(path), "error": str(e)})
        damage = bad + (not header) + (end != seen)
        if damage:
            self.stats["load_errors"] += damage
            log.error("index snapshot damaged, readable part kept", extra={
                "path": str(path), "restored": restored, "bad_lines": bad, "header": header,
                "entries_expected": end, "entries_read": seen})
        self.stats["loaded"] += restored
        log.info("index snapshot loaded", extra={"path": str(path), "entries": restored})
        return restored

    # -- slow paths ---------------------------------------------------------------------

    def _fix_ttl(self, ev: Event, ttl: Any) -> float:
        if isinstance(ttl, int | float) and ttl > self.max_ttl:
            ttl = self.max_ttl
            self.stats["clamped_ttl"] += 1
            self._report("clamped_ttl", "absurd TTL clamped", ev)
        else:
            self.stats["bad_ttl"] += 1
            self._report("bad_ttl", "invalid TTL replaced by the default", ev)
            ttl = self.default_ttl
        ev.ttl = ttl
        return ttl

    def _fix_time(self, ev: Event, ttl: float) -> float:
        self.stats["bad_time"] += 1
        self._report("bad_time", "invalid event time replaced by now", ev)
        t = ev.time = self._clock.now()
        return t + ttl

    def _evict(self) -> None:
        """Drop a live entry of the earliest bucket. Stale references met on the way go;
        entries whose deadline was moved later go to their bucket (always a later one)."""
        entries, buckets, heap, res = self._entries, self._buckets, self._heap, self.resolution
        popped = moved = 0
        victim = None
        while victim is None:
            bucket = heap[0]
            queue = buckets[bucket]
            while queue:
                item = queue.pop()
                popped += 1
                if item.event is None:
                    continue
                new = item.deadline // res
                if new == bucket:
                    victim = item
                    break
                self._enqueue(new, [item])  # new > bucket: heap[0] stays this bucket
                moved += 1
            if not queue:
                heappop(heap)
                del buckets[bucket]
                self.stats["bucket_pops"] += 1
        key = victim.key
        del entries[key]
        self._queued -= popped - moved
        stats = self.stats
        stats["examined"] += popped
        stats["requeued"] += moved
        stats["stale_skipped"] += popped - moved - 1
        now = self._clock.now()
        if victim.deadline < now and len(self._pending) < self.max_entries:
            self._pending[key] = victim.event  # already due: report it as expired, not as lost
            return
        if self._pending:  # a newer event of a pending key: it is this one that is lost
            self._pending.pop(key, None)
        stats["evicted"] += 1
        self._report("evicted", "index full, entry with the earliest deadline evicted", victim.event, now)

    def _enqueue(self, bucket: float, items: list[_Entry]) -> None:
        """Add `items` to `bucket`, a new one going on the heap (`insert` does this inline)."""
        queue = self._buckets.get(bucket)
        if queue is None:
            self._buckets[bucket] = items
            heappush(self._heap, bucket)
        else:
            queue.extend(items)

    def _rebuild(self) -> None:
        """Queue each live entry once, in its deadline's bucket; drops every stale reference."""
        res = self.resolution
        self._buckets = buckets = {}
        for item in self._entries.values():
            bucket = item.deadline // res
            queue = buckets.get(bucket)
            if queue is None:
                buckets[bucket] = [item]
            else:
                queue.append(item)
        self._heap = heap = list(buckets)
        heapify(heap)
        self._queued = len(self._entries)
        self.stats["rebuilds"] += 1

    def _report(self, kind: str, msg: str, ev: Event, now: float | None = None) -> None:
        """Log at most once per `log_interval` per kind, with the count since the last line."""
        if now is None:
            now = self._clock.now()
        total = self.stats[kind]
        last = self._logged.get(kind)
        if last is not None and now - last[0] < self.log_interval:
            return
        self._logged[kind] = (now, total)
        log.warning(msg, extra={"kind": kind, "total": total, "since_last_log": total - (last[1] if last else 0),
                                "host": ev.host, "service": ev.service, "ttl": ev.ttl,
                                "max_entries": self.max_entries, "entries": len(self._entries)})


def _decode(d: Any) -> Event | None:
    """One decoded snapshot line -> Event, or None when it is not a valid entry."""
    if not isinstance(d, dict) or "host" not in d or "service" not in d:
        return None
    t, ttl, metric = d.get("time"), d.get("ttl"), d.get("metric")
    host, service, state, desc = d["host"], d["service"], d.get("state"), d.get("description")
    tags, attrs, fields = d.get("tags") or [], d.get("attributes") or {}, d.get("fields") or {}
    if not (isinstance(t, int | float) and isinstance(ttl, int | float | None)
            and isinstance(metric, int | float | None)
            and all(isinstance(v, str | None) for v in (host, service, state, desc))
            and isinstance(tags, list) and isinstance(attrs, dict) and isinstance(fields, dict)):
        return None
    ev = _new(Event)
    ev.time, ev.host, ev.service, ev.state = t, host, service, state
    ev.metric, ev.ttl, ev.description, ev.message = metric, ttl, desc, None
    ev.tags, ev.attributes, ev.fields, ev.meta = tags, attrs, fields, {}
    return ev


def _is_header(d: Any) -> bool:
    return isinstance(d, dict) and d.get("snapshot") == SNAPSHOT_VERSION


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
