"""Metrics derived from the event stream, ready for Graphite.

Counts per time bucket and host: events per dataset, actions, auth failures, Fail2ban
actions per jail, bans per country, Postfix deliveries by status and rejects by code,
Wazuh alerts by level and rule group. Riemann events with a `metric` pass through as
points, and the live pipeline adds gauges (index size, expired entries, its own
telemetry) at each flush.

What a document counts is decided in the native core (`native/src/pipeline.rs`), for
whole batches; this class holds the totals and renders the paths.

Buckets: `streams replay` counts by the event's own `@timestamp` (an archive spans days);
`streams run` counts by arrival, in the flush interval the event arrived in, so a late
line never rewrites a point Graphite already has. Memory grows with the number of distinct
(bucket, series) pairs, never with the number of events, and `take()` empties it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from .._native import metric_counts
from ..protocols.graphite import render_path

DEFAULT_TEMPLATE = "streams.<host>.<dataset>.<name>"


class DerivedMetrics:
    def __init__(self, bucket_seconds: int = 60, template: str = DEFAULT_TEMPLATE) -> None:
        self.bucket = bucket_seconds
        self.template = template
        self.counts: Counter[tuple[int, str, str, str]] = Counter()
        # (bucket, host, dataset, name) -> last value: Riemann metrics and gauges
        self.gauges: dict[tuple[int, str, str, str], float] = {}

    def add(self, counts: Iterable[tuple[tuple[int, str, str, str], int]]) -> None:
        """Counts a native batch made (`[((bucket, host, dataset, name), n)]`)."""
        c = self.counts
        for key, n in counts:
            c[key] += n

    def observe(self, fields: dict, bucket: int | None = None) -> None:
        """Count one document (what the native batches count per line: `metric_counts`);
        `bucket` (epoch seconds) overrides the event-time bucket."""
        self.add(metric_counts(fields, self.bucket, bucket))

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
