"""File descriptors: a share for each listener, so that connections never take the ones the
outputs need, and a flood on one listener never starves the others.

A process has `RLIMIT_NOFILE` descriptors. Each accepted connection takes one; so do the
output files (up to the bulk sink's open-file bound), the spool, the dead-letter file, the
sockets to Elasticsearch and carbon, the GeoIP databases and the HTTP connections. When
connections take them all, `accept()` fails in asyncio's loop (EMFILE), a message that
needs a new output file cannot be written and `/health` cannot answer. So at start the
soft limit is raised to the hard one (as nginx's `worker_rlimit_nofile` or systemd's
`LimitNOFILE` would), `reserve` descriptors are kept for everything that is not a TCP
listener's connection, and what is left is shared among the TCP listeners in proportion to
their `max_connections`: a listener never holds more than its share (`apportion`), so
their sum stays within the limit. Within its share a listener replaces idle connections by
new ones (`streams.ingest.base`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("streams.ingest")

# asyncio accepts up to its backlog (100) sockets per wake-up before our callback closes
# the ones over a limit: those must fit too
ACCEPT_BURST = 100


def raise_soft_limit(wanted: int = 1 << 20) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard limit; returns (soft, hard) after."""
    try:
        import resource
    except ImportError:   # not on POSIX: nothing to tune
        return 0, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard if hard != resource.RLIM_INFINITY else wanted, wanted)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit: %s", e, extra={"soft": soft, "hard": hard})
    return soft, hard


def open_descriptors() -> int | None:
    """Descriptors this process holds now (Linux: /proc/self/fd), None where unknown."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1   # the listing's own descriptor
    except OSError:
        return None


class Descriptors:
    def __init__(self, limit: int, reserve: int) -> None:
        self.limit = limit
        self.reserve = reserve
        self.budget = max(limit - reserve - ACCEPT_BURST, 16) if limit else 1 << 30
        self.listeners: list[Any] = []

    @classmethod
    def for_process(cls, reserve: int) -> Descriptors:
        soft, _ = raise_soft_limit()
        return cls(soft, reserve)

    def apportion(self, listeners: Sequence[Any]) -> None:
        """Cap each TCP listener's connections at its share of the budget (in proportion to
        its `max_connections`)."""
        self.listeners = list(listeners)
        wanted = sum(lst.cfg.max_connections for lst in self.listeners)
        for lst in self.listeners:
            share = max(self.budget * lst.cfg.max_connections // wanted, 1) if wanted > self.budget else None
            lst.max_connections = min(lst.cfg.max_connections, share) if share else lst.cfg.max_connections
        log.info("descriptors", extra={"limit": self.limit, "reserve": self.reserve, "connections_budget": self.budget,
                                       "max_connections": {lst.name: lst.max_connections for lst in self.listeners}})

    @property
    def connections(self) -> int:
        """Sockets the listeners hold: connections (those being closed too) and TLS handshakes."""
        return sum(len(lst.connections) + len(getattr(lst, "handshaking", ())) for lst in self.listeners)

    def state(self) -> dict[str, Any]:
        return {"open": open_descriptors(), "limit": self.limit, "reserve": self.reserve,
                "connections": self.connections, "connections_budget": self.budget}

    def problem(self, nearly: float = 0.9) -> str | None:
        """A reason /health is not ok: the process near its descriptor limit, or the
        listeners' connections near their budget (new ones then replace idle ones, or are
        refused)."""
        held = open_descriptors()
        if held is not None and self.limit and held >= nearly * self.limit:
            return f"open descriptors near the limit ({held}/{self.limit})"
        n = self.connections
        if n >= nearly * self.budget:
            return f"connections near the descriptor budget ({n}/{self.budget})"
        return None
