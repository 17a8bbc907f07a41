"""Metrics derived from the event stream, ready for Graphite.

Counts per time bucket and host: events per dataset, actions, auth failures, Fail2ban
actions per jail, bans per country, Postfix deliveries by status and rejects by code,
Wazuh alerts by level and rule group. Riemann events with a `metric` pass through as
points, and the live pipeline adds gauges (index size, expired entries, its own
telemetry) at each flush.

Buckets: `streams replay` counts by the event's own `@timestamp` (an archive spans days);
`streams run` counts by arrival, in the flush interval the event arrived in, so a late
line never rewrites a point Graphite already has. Memory grows with the number of distinct
(bucket, series) pairs, never with the number of events, and `take()` empties it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from ..protocols.graphite import render_path

DEFAULT_TEMPLATE = "streams.<host>.<dataset>.<name>"
_MAX_GROUPS = 8  # rule groups counted per Wazuh alert: a bound against pathological alerts


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
        # (bucket, host, dataset, name) -> last value: Riemann metrics and gauges
        self.gauges: dict[tuple[int, str, str, str], float] = {}
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

    def observe(self, fields: dict, bucket: int | None = None) -> None:
        """Count one document; `bucket` (epoch seconds) overrides the event-time bucket."""
        if bucket is None:
            ts = fields.get("@timestamp")
            if not isinstance(ts, str):
                return
            bucket = self._bucket(ts)
            if bucket is None:
                return
        b = bucket
        event = fields.get("event") or {}
        dataset = event.get("dataset") or "unknown"
        host_doc = fields.get("host") or {}
        host = host_doc.get("name") or "unknown"   # host.name: the pipelines give every line one
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
        pf = fields.get("postfix")
        if pf:
            status = pf.get("status")
            if status:
                counts[(b, host, dataset, f"delivery.{status}")] += 1
            if pf.get("action") == "reject":
                code = pf.get("status_code") or pf.get("status_code_enhanced") or "none"
                counts[(b, host, dataset, f"reject.{code}")] += 1
        rule = fields.get("rule")
        if rule and dataset == "wazuh.alerts" and isinstance(rule, dict):
            level = rule.get("level")
            if level is not None:
                counts[(b, host, dataset, f"level.{level}")] += 1
            groups = rule.get("groups")
            if isinstance(groups, list):
                for g in groups[:_MAX_GROUPS]:
                    counts[(b, host, dataset, f"group.{g}")] += 1

    def point(self, host: str, dataset: str, name: str, value: float, timestamp: float) -> None:
        """A gauge or a passed-through metric: the last value per series and second."""
        self.gauges[(int(timestamp), host, dataset, name)] = value

    def lines(self) -> Iterator[tuple[str, float, int]]:
        """(path, value, timestamp) of everything held, sorted by time then path."""
        yield from self._render([*self.counts.items(), *self.gauges.items()])

    def take(self, before: int | None = None) -> list[tuple[str, float, int]]:
        """Forget and return the points of the buckets that start before `before` (all when
        None): the live pipeline's flush, which leaves the bucket still filling alone."""
        rows = []
        for table in (self.counts, self.gauges):
            done = [k for k in table if before is None or k[0] < before]
            rows += [(k, table.pop(k)) for k in done]
        return self._render(rows)

    def _render(self, rows: list) -> list[tuple[str, float, int]]:
        rows.sort(key=lambda kv: kv[0])
        return [(render_path(self.template, host=h, dataset=d, name=n), v, b) for (b, h, d, n), v in rows]

    def __len__(self) -> int:
        return len(self.counts) + len(self.gauges)
