"""Which events enter the TTL index, and the entries derived from log sources.

Riemann events (they carry a `service`) enter as they are. A log line is not a state, so
each monitored log source keeps one entry per host that the lines refresh:

- `fail2ban <jail>`: metric = the addresses the jail has banned now (ban/restore minus
  unban/repeal), so a graph of it is the jail's ban list size;
- `postfix queue`: metric = messages qmgr made active and has not removed yet;
- `log <dataset>` (optional source `logs`): one liveness entry per dataset and host.

Derived entries are stamped with the arrival time, not the line's own time: a replayed or
delayed log must not look silent. When a host stops logging, its entries expire and the
reaper turns them into `state: "expired"` events.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..event import Event

SOURCES = frozenset({"riemann", "fail2ban", "postfix", "logs"})
DEFAULT_SOURCES = ("riemann", "fail2ban", "postfix")
_MAX_TRACKED = 100_000  # banned addresses / queue ids per entry: a bound against runaway state
_BAN = frozenset({"ban", "restore_ban"})
_UNBAN = frozenset({"unban", "repeal_ban"})  # "Repeal Ban": a ban lifted because the jail stops


def _entry(host: str, service: str, now: float, metric: float | None, description: str | None = None) -> Event:
    # the parser's constructor, not the dataclass's keywords (half the cost; a postfix or
    # fail2ban line makes one of these)
    ev = Event.from_parse({"event": {"dataset": "streams.index"}})
    ev.time, ev.host, ev.service, ev.state, ev.metric, ev.description = now, host, service, "ok", metric, description
    return ev


class IndexFeed:
    def __init__(self, sources: Iterable[str] = DEFAULT_SOURCES) -> None:
        self.sources = frozenset(sources)
        unknown = self.sources - SOURCES
        if unknown:
            raise ValueError(f"unknown index sources {sorted(unknown)} (known: {sorted(SOURCES)})")
        self.banned: dict[tuple[str, str], set[str]] = {}
        self.queued: dict[str, set[str]] = {}
        self.overflow = 0  # tracked sets that hit _MAX_TRACKED

    def derive(self, ev: Event, doc: dict, now: float, sender: str | None = None) -> list[Event]:
        """The index entries this event updates (possibly none). A line without a host name
        (Fail2ban's own log relayed as is) belongs to its `sender`, as syslog's fromhost."""
        if ev.service is not None:
            return [ev] if "riemann" in self.sources else []
        host_doc = doc.get("host") or {}
        host = host_doc.get("hostname") or host_doc.get("name") or sender
        if not host:
            return []
        out: list[Event] = []
        event = doc.get("event") or {}
        dataset = event.get("dataset")
        f2b = doc.get("fail2ban")
        if f2b and "fail2ban" in self.sources and (jail := f2b.get("jail")):
            out.append(self._fail2ban(host, jail, event.get("action"), doc, now))
        pf = doc.get("postfix")
        if pf and "postfix" in self.sources:
            out.append(self._postfix(host, pf, event.get("action"), now))
        if dataset and "logs" in self.sources:
            out.append(_entry(host, f"log {dataset}", now, None))
        return out

    def _fail2ban(self, host: str, jail: str, action: str | None, doc: dict, now: float) -> Event:
        banned = self.banned.setdefault((host, jail), set())
        ip = (doc.get("source") or {}).get("ip") or (doc.get("source") or {}).get("address")
        if ip:
            if action in _BAN:
                self._add(banned, ip)
            elif action in _UNBAN:
                banned.discard(ip)
        n = len(banned)
        return _entry(host, f"fail2ban {jail}", now, float(n), f"{n} banned")

    def _postfix(self, host: str, pf: dict, action: str | None, now: float) -> Event:
        queued = self.queued.setdefault(host, set())
        qid = pf.get("queueid")
        if qid:
            if action == "queue_active":
                self._add(queued, qid)
            elif pf.get("message") == "removed" or pf.get("postsuper_action") == "removed":  # qmgr, postsuper -d
                queued.discard(qid)
        return _entry(host, "postfix queue", now, float(len(queued)))

    def _add(self, tracked: set[str], key: str) -> None:
        if len(tracked) >= _MAX_TRACKED and key not in tracked:
            self.overflow += 1
            return
        tracked.add(key)
