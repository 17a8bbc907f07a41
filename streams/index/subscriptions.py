"""Live subscriptions to the index: each subscriber gets the index updates (and expiries)
matching its query, as Riemann's dashboard websocket does.

The index never waits for a subscriber. Each one has a bounded backlog of updates: a
client that falls `max_pending` updates behind is dropped (its stream ends, counted in
`dropped`) rather than slowing the index or growing memory; there are at most
`max_subscribers` at once (`TooManySubscribers` beyond).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ..event import Event

Predicate = Callable[[Event], bool]
_DROPPED = object()   # the queue's last item for a subscriber that fell behind


class TooManySubscribers(Exception):
    pass


class Subscription:
    """An async iterator of Riemann-shaped dicts: the current matching events (read at the
    first step, so an update made meanwhile is in them or in the queue, never lost), then
    every matching update until the subscriber is dropped or `aclose()`d."""

    def __init__(self, owner: Subscriptions, pred: Predicate, current: Iterator[Event]) -> None:
        self.owner = owner
        self.pred = pred
        self.queue: asyncio.Queue[Any] = asyncio.Queue()   # publish() drops the subscriber at max_pending
        self._current: Iterator[Event] | None = current

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._current is not None:
            ev = next(self._current, None)
            if ev is not None:
                return ev.to_riemann()
            self._current = None
        item = await self.queue.get()
        if item is _DROPPED:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self.owner.remove(self)


class Subscriptions:
    def __init__(self, max_pending: int = 1000, max_subscribers: int = 32) -> None:
        self.max_pending = max_pending
        self.max_subscribers = max_subscribers
        self._subs: list[Subscription] = []
        self.published = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, ev: Event) -> None:
        if not self._subs:
            return
        doc = None
        behind: list[Subscription] = []
        for sub in self._subs:
            try:
                if not sub.pred(ev):
                    continue
            except Exception:  # noqa: BLE001 - a query never breaks the stream
                continue
            if doc is None:
                doc = ev.to_riemann()
            if sub.queue.qsize() >= self.max_pending:
                behind.append(sub)
                continue
            sub.queue.put_nowait(doc)
            self.published += 1
        for sub in behind:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        """Its backlog is thrown away and its stream ends at its next step."""
        q = sub.queue
        while not q.empty():
            q.get_nowait()
        q.put_nowait(_DROPPED)
        self.dropped += 1
        self.remove(sub)

    def subscribe(self, pred: Predicate, current: Iterator[Event] | None = None) -> Subscription:
        if len(self._subs) >= self.max_subscribers:
            raise TooManySubscribers(f"{len(self._subs)} subscribers already (max_subscribers)")
        sub = Subscription(self, pred, current if current is not None else iter(()))
        self._subs.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
