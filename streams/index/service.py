"""The index as `streams run` uses it: the TTL index, what feeds it, its queries, its
subscribers, its snapshot, and the gauges it reports.

The live pipeline calls `observe()` for every event it wrote, `reap()` every
`reap_seconds` (the expired events go back into the stream, so they reach the sinks and
the subscribers), and `save()` every `snapshot_seconds` and at shutdown. Queries come
from the Riemann TCP listener, the HTTP API and `streams query`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..clock import Clock
from ..event import Event
from .feed import IndexFeed
from .query import Query, QueryError, compile_query
from .subscriptions import Subscriptions
from .ttl import TTLIndex

log = logging.getLogger("streams.index")

EXPIRED_DATASET = "streams.index"


class IndexService:
    def __init__(self, index: TTLIndex, feed: IndexFeed, clock: Clock, snapshot: Path | None = None) -> None:
        self.index = index
        self.feed = feed
        self.clock = clock
        self.snapshot = snapshot
        self.subscriptions = Subscriptions()
        self.queries = 0
        self.query_errors = 0
        self._expired_reported = 0

    def observe(self, ev: Event, doc: dict, now: float) -> None:
        self._enter(self.feed.derive(ev, doc, now))

    def observe_side(self, side: tuple, now: float) -> None:
        """A line's side record from a native batch (see `IndexFeed.derive_side`)."""
        self._enter(self.feed.derive_side(*side, now=now))

    def _enter(self, entries: list[Event]) -> None:
        for entry in entries:
            self.index.insert(entry)
            self.subscriptions.publish(entry)

    def reap(self) -> list[Event]:
        """Remove the due entries; their `state: "expired"` events, ready for the stream."""
        out = self.index.expire(self.clock.now())
        for ev in out:
            ev.fields = {"event": {"dataset": EXPIRED_DATASET, "action": "expired", "kind": "alert"}}
            self.subscriptions.publish(ev)
        if out:
            log.info("index entries expired", extra={"expired": len(out), "entries": len(self.index),
                                                     "first": f"{out[0].host} {out[0].service}"})
        return out

    def _compile(self, text: str) -> Query:
        self.queries += 1
        try:
            return compile_query(text)
        except QueryError:
            self.query_errors += 1
            raise

    def query(self, text: str) -> list[Event]:
        """The indexed events matching a Riemann query (raises `QueryError`)."""
        return self._compile(text).filter(self.index.events())  # one comprehension, not a call per entry

    def subscribe(self, text: str) -> AsyncIterator[dict[str, Any]]:
        """The matching events when the stream is first read, then the matching updates
        (raises `QueryError` or `TooManySubscribers` at once)."""
        q = self._compile(text)

        def current() -> Iterator[Event]:
            # read when the subscription starts (its first read), not now: an update made in
            # between is then in this snapshot or in the subscription's queue, never lost
            yield from q.filter(self.index.events())

        return self.subscriptions.subscribe(q.match, current())

    @property
    def _feed_file(self) -> Path:
        assert self.snapshot is not None
        return self.snapshot.with_name(self.snapshot.name + ".feed")

    def restore(self) -> int:
        if self.snapshot is None:
            return 0
        n = self.index.load(self.snapshot)
        if n:
            log.info("index restored", extra={"entries": n, "path": str(self.snapshot)})
        try:
            self.feed.restore(orjson.loads(self._feed_file.read_bytes()))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as e:   # damaged: the counts start again
            log.error("index feed state not restored: %s", e, extra={"path": str(self._feed_file)})
        return n

    def save(self) -> int:
        if self.snapshot is None:
            return 0
        n = self.index.save(self.snapshot)
        tmp = self._feed_file.with_name(self._feed_file.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.feed.state()))
        os.replace(tmp, self._feed_file)
        return n

    def gauges(self) -> dict[str, float]:
        """Entries now, and what happened since the last call (for the metrics flush)."""
        stats = self.index.stats
        expired = stats["expired"] - self._expired_reported
        self._expired_reported = stats["expired"]
        return {"entries": len(self.index), "expired": expired}

    def counters(self) -> dict[str, Any]:
        return {"entries": len(self.index), **self.index.stats, "queries": self.queries,
                "query_errors": self.query_errors, "subscribers": len(self.subscriptions),
                "published": self.subscriptions.published, "subscriber_dropped": self.subscriptions.dropped,
                "tracking_overflow": self.feed.overflow}
