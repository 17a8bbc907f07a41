"""How a sink's wait tells a slow server from one that stopped taking anything."""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """Whether nothing was delivered for `limit` seconds (None: never stalled), counted from
    the start of the wait or the last delivery; `delivered()` counts what the sink delivered."""

    def __init__(self, delivered: Callable[[], int], limit: float | None, start: float) -> None:
        self.delivered, self.limit, self.since = delivered, limit, start
        self.last = delivered()

    def stalled(self, now: float) -> bool:
        if self.limit is None:
            return False
        n = self.delivered()
        if n != self.last:
            self.last, self.since = n, now
        return now - self.since > self.limit
