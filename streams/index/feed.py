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

A count is a state, not a sample: Fail2ban logs nothing while its bans hold, Postfix
nothing while a message waits, so "no line for 60 s" says nothing about them. While the
count is above 0 the entry's `ttl` is `held_ttl` (`[index] max_ttl`): it lives until a
line changes it (Unban, Repeal Ban, `Jail 'x' stopped`, `Exiting Fail2ban` — the last two
lift every ban of the jail, of the host — or qmgr's `removed`). At 0 it has no state to
keep and takes the default TTL, as before. A Fail2ban that dies without a line cannot be
told from an idle one by its log; its held entry still expires after `held_ttl`, and the
host's silence shows sooner in its `log <dataset>` entries (source `logs`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .._native import side_record
from ..event import Event
from .ttl import MAX_TTL

SOURCES = frozenset({"riemann", "fail2ban", "postfix", "logs"})
DEFAULT_SOURCES = ("riemann", "fail2ban", "postfix")
_MAX_TRACKED = 100_000  # banned addresses / queue ids per entry: a bound against runaway state
_BAN = frozenset({"ban", "restore_ban"})
_UNBAN = frozenset({"unban", "repeal_ban"})  # "Repeal Ban": a ban lifted because the jail stops


def _entry(host: str, service: str, now: float, metric: float | None, description: str | None = None,
           ttl: float | None = None) -> Event:
    # the parser's constructor, not the dataclass's keywords (half the cost; a postfix or
    # fail2ban line makes one of these)
    ev = Event.from_parse({"event": {"dataset": "streams.index"}})
    ev.time, ev.host, ev.service, ev.state, ev.metric, ev.description = now, host, service, "ok", metric, description
    ev.ttl = ttl
    return ev


class IndexFeed:
    def __init__(self, sources: Iterable[str] = DEFAULT_SOURCES, held_ttl: float = MAX_TTL) -> None:
        self.sources = frozenset(sources)
        unknown = self.sources - SOURCES
        if unknown:
            raise ValueError(f"unknown index sources {sorted(unknown)} (known: {sorted(SOURCES)})")
        self.held_ttl = held_ttl  # the ttl of an entry whose count is above 0 (see above)
        self.banned: dict[str, dict[str, set[str]]] = {}  # host -> jail -> addresses
        self.queued: dict[str, set[str]] = {}
        self.overflow = 0  # tracked sets that hit _MAX_TRACKED

    def state(self) -> dict:
        """What the counts are made of (the addresses banned, the messages queued), for the
        index snapshot: after a restart a count goes on from where it was, not from 0."""
        return {"banned": {h: {j: sorted(s) for j, s in jails.items()} for h, jails in self.banned.items()},
                "queued": {h: sorted(s) for h, s in self.queued.items()}}

    def restore(self, state: dict) -> None:
        self.banned = {h: {j: set(s) for j, s in jails.items()} for h, jails in state.get("banned", {}).items()}
        self.queued = {h: set(s) for h, s in state.get("queued", {}).items()}

    def derive(self, ev: Event, doc: dict, now: float) -> list[Event]:
        """The index entries this event updates (possibly none), under its `host.name` (the
        pipelines give a line that names no host the one it came from)."""
        if ev.service is not None:
            return [ev] if "riemann" in self.sources else []
        return self.derive_side(*side_record(doc), now=now)

    def derive_side(self, host: str | None, dataset: str | None, action: str | None, jail: str | None,
                    address: str | None, queueid: str | None, postfix: bool, removed: bool, *,
                    now: float) -> list[Event]:
        """The entries of a line from what the native pipeline's side record says of it."""
        if not host:
            return []
        out: list[Event] = []
        if "fail2ban" in self.sources:
            if jail:
                out.append(self._fail2ban(host, jail, action, address, now))
            elif action == "server_stopped" and dataset == "fail2ban.log":  # every jail stops with it
                jails = self.banned.get(host, {})
                for jail, banned in jails.items():
                    banned.clear()
                    out.append(self._jail_entry(host, jail, 0, now))
        if postfix and "postfix" in self.sources:
            out.append(self._postfix(host, queueid, action, removed, now))
        if dataset and "logs" in self.sources:
            out.append(_entry(host, f"log {dataset}", now, None))
        return out

    def _fail2ban(self, host: str, jail: str, action: str | None, address: str | None, now: float) -> Event:
        banned = self.banned.setdefault(host, {}).setdefault(jail, set())
        if action == "jail_stopped":  # its actions' stop removed every ban it held
            banned.clear()
        elif address:
            if action in _BAN:
                self._add(banned, address)
            elif action in _UNBAN:
                banned.discard(address)
        return self._jail_entry(host, jail, len(banned), now)

    def _jail_entry(self, host: str, jail: str, n: int, now: float) -> Event:
        return _entry(host, f"fail2ban {jail}", now, float(n), f"{n} banned", self.held_ttl if n else None)

    def _postfix(self, host: str, qid: str | None, action: str | None, removed: bool, now: float) -> Event:
        queued = self.queued.setdefault(host, set())
        if qid:
            if action == "queue_active":
                self._add(queued, qid)
            elif removed:  # qmgr's `removed`, postsuper -d
                queued.discard(qid)
        n = len(queued)
        return _entry(host, "postfix queue", now, float(n), None, self.held_ttl if n else None)

    def _add(self, tracked: set[str], key: str) -> None:
        if len(tracked) >= _MAX_TRACKED and key not in tracked:
            self.overflow += 1
            return
        tracked.add(key)
