"""Live subscriptions to the index: each subscriber gets the index updates (and expiries)
matching its query, as Riemann's dashboard websocket does.

A subscriber's queue is bounded: a client that does not keep up loses its oldest pending
updates, counted in `dropped` (the index and the other subscribers never wait for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from ..event import Event

Predicate = Callable[[Event], bool]


class Subscriptions:
    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._subs: list[tuple[Predicate, asyncio.Queue[dict[str, Any]]]] = []
        self.published = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, ev: Event) -> None:
        if not self._subs:
            return
        doc = None
        for pred, q in self._subs:
            try:
                if not pred(ev):
                    continue
            except Exception:  # noqa: BLE001 - a query never breaks the stream
                continue
            if doc is None:
                doc = ev.to_riemann()
            if q.full():
                q.get_nowait()
                self.dropped += 1
            q.put_nowait(doc)
            self.published += 1

    async def subscribe(self, pred: Predicate, current: Iterable[Event] = ()) -> AsyncIterator[dict[str, Any]]:
        """The matching current events, then every matching update, until closed."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.max_pending)
        entry = (pred, q)
        self._subs.append(entry)
        try:
            for ev in current:
                yield ev.to_riemann()
            while True:
                yield await q.get()
        finally:
            self._subs.remove(entry)
