"""Metrics derived from the event stream: counts per time bucket, ready for Graphite.

Counted per bucket (default one minute) and host: events per dataset, actions, auth
failures, Fail2ban actions per jail, bans per country. The counter only grows with the
number of distinct (bucket, metric) pairs, never with the number of events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from ..protocols.graphite import render_path

DEFAULT_TEMPLATE = "streams.<host>.<dataset>.<name>"


def _epoch_of(ts: str) -> int | None:
    try:
        return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class DerivedMetrics:
    def __init__(self, bucket_seconds: int = 60, template: str = DEFAULT_TEMPLATE) -> None:
        self.bucket = bucket_seconds
        self.template = template
        self.counts: Counter[tuple[int, str, str, str]] = Counter()
        self._bucket_of: dict[str, int | None] = {}

    def _bucket(self, ts: str) -> int | None:
        key = ts[:16]  # minute resolution of the ISO text
        b = self._bucket_of.get(key, -1)
        if b == -1:
            e = _epoch_of(ts)
            b = None if e is None else e - e % self.bucket
            if len(self._bucket_of) > 100_000:
                self._bucket_of.clear()
            self._bucket_of[key] = b
        return b

    def observe(self, fields: dict) -> None:
        ts = fields.get("@timestamp")
        if not isinstance(ts, str):
            return
        b = self._bucket(ts)
        if b is None:
            return
        event = fields.get("event") or {}
        dataset = event.get("dataset") or "unknown"
        host = (fields.get("host") or {}).get("hostname") or "unknown"
        counts = self.counts
        counts[(b, host, dataset, "events")] += 1
        action = event.get("action")
        if action:
            counts[(b, host, dataset, f"action.{action}")] += 1
        if event.get("outcome") == "failure":
            counts[(b, host, dataset, "failures")] += 1
        f2b = fields.get("fail2ban")
        if f2b and action:
            jail = f2b.get("jail")
            if jail:
                counts[(b, host, dataset, f"jail.{jail}.{action}")] += 1
            if action == "ban":
                cc = ((fields.get("source") or {}).get("geo") or {}).get("country_iso_code")
                if cc:
                    counts[(b, host, dataset, f"country.{cc}.ban")] += 1

    def lines(self) -> Iterator[tuple[str, int, int]]:
        """(path, value, timestamp), sorted by time then path."""
        for (b, host, dataset, name), n in sorted(self.counts.items()):
            yield render_path(self.template, host=host, dataset=dataset, name=name), n, b
