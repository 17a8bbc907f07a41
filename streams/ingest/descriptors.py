"""File descriptors: one budget for every listener, so connections never take the ones the
outputs need.

A process has `RLIMIT_NOFILE` descriptors. Each accepted connection takes one; so do the
output files (up to the bulk sink's open-file bound), the spool, the dead-letter file, the
sockets to Elasticsearch and carbon, the GeoIP databases. When connections take them all,
`accept()` fails in asyncio's loop (EMFILE), a message that needs a new output file cannot
be written, and `/health` cannot answer. So at start the soft limit is raised to the hard
one (as nginx's `worker_rlimit_nofile` or systemd's `LimitNOFILE` would), `reserve`
descriptors are kept for everything that is not a connection, and a connection beyond
`limit - reserve` (counted over all listeners, HTTP included) is closed as soon as it is
accepted: refused and counted, never an EMFILE.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("streams.ingest")

# asyncio accepts up to its backlog (100) sockets per wake-up before our callback runs for
# them: those must fit too
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
    """The connections all listeners hold, against what the limit leaves for them."""

    def __init__(self, limit: int, reserve: int) -> None:
        self.limit = limit
        self.reserve = reserve
        self.budget = max(limit - reserve - ACCEPT_BURST, 16) if limit else 1 << 30
        self.connections = 0
        self.refused = 0

    @classmethod
    def for_process(cls, reserve: int) -> Descriptors:
        soft, _ = raise_soft_limit()
        d = cls(soft, reserve)
        log.info("descriptors", extra={"limit": soft, "reserve": reserve, "connections_budget": d.budget})
        return d

    def admit(self) -> bool:
        """Take one for a new connection, or False (the caller closes it and counts it)."""
        if self.connections >= self.budget:
            self.refused += 1
            return False
        self.connections += 1
        return True

    def release(self) -> None:
        self.connections -= 1

    def state(self) -> dict[str, int | None]:
        return {"open": open_descriptors(), "limit": self.limit, "reserve": self.reserve,
                "connections": self.connections, "connections_budget": self.budget, "refused": self.refused}

    def problem(self, nearly: float = 0.9) -> str | None:
        """A reason /health is not ok: connections at their budget, or the process near its limit."""
        if self.connections >= self.budget:
            return f"connections at the descriptor budget ({self.connections}/{self.budget}): new ones are refused"
        held = open_descriptors()
        if held is not None and self.limit and held >= nearly * self.limit:
            return f"open descriptors near the limit ({held}/{self.limit})"
        return None
