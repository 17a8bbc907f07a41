#!/usr/bin/env python3
"""TTL index throughput and memory on one core, with 1,000,000 entries: inserts of distinct
keys, updates, a mixed insert/update/expire stream, a reaper pass with 1 % due next to a
naive full scan, and bytes per entry. Run pinned to one core:

    taskset -c 1 .venv/bin/python bench/index_bench.py [--entries 1000000]

Prints a table and writes bench/results/index.json. Events are built before the clock
starts (building them is the parser's cost, not the index's); in the insert and update runs
they stay referenced, so freeing replaced events is not timed there (it is in `mixed`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streams.clock import ManualClock  # noqa: E402
from streams.event import Event  # noqa: E402
from streams.index.ttl import TTLIndex, expired_event  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_700_000_000.0
_new = object.__new__


def event(host: str, service: str, t: float, ttl: float | None = None) -> Event:
    ev = _new(Event)
    ev.time, ev.host, ev.service, ev.state, ev.ttl = t, host, service, "ok", ttl
    ev.metric = 1.0
    ev.description = ev.message = None
    ev.tags, ev.attributes, ev.fields, ev.meta = [], {}, {}, {}
    return ev


def keys(n: int) -> list[tuple[str, str]]:
    return [(f"host-{i // 10:06d}.example.net", f"svc-{i % 10}") for i in range(n)]


_SHARE = [0.0, 0.0]  # wall, cpu seconds over all timed sections


def timed(fn) -> float:
    gc.collect()
    gc.disable()  # the index allocates millions of objects: keep the cyclic GC out of the numbers
    try:
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t
        _SHARE[0] += wall
        _SHARE[1] += time.process_time() - c
        return wall
    finally:
        gc.enable()


def bench_insert_update(ks: list[tuple[str, str]], repeat: int) -> dict:
    """n distinct keys into an empty index; then n updates moving every deadline later (the
    usual case: rewritten in place), then n moving it earlier (each queued again)."""
    first = [event(h, s, T0) for h, s in ks]
    later = [event(h, s, T0 + 5) for h, s in ks]
    best_ins = best_later = best_earlier = float("inf")
    for _ in range(repeat):
        idx = TTLIndex(ManualClock(T0), max_entries=len(ks))
        best_ins = min(best_ins, timed(lambda idx=idx: idx.insert_many(first)))
        best_later = min(best_later, timed(lambda idx=idx: idx.insert_many(later)))
        best_earlier = min(best_earlier, timed(lambda idx=idx: idx.insert_many(first)))
        assert len(idx) == len(ks)
        del idx
    n = len(ks)
    return {"insert_distinct_per_s": n / best_ins, "update_later_per_s": n / best_later,
            "update_earlier_per_s": n / best_earlier}


def _stream(n: int, seconds: int, reap_every: int, seed: int, bare: bool) -> tuple[int, int, int, float]:
    rnd = random.Random(seed)
    space = keys(int(n * 1.2))
    clock = ManualClock(T0)
    idx = TTLIndex(clock, max_entries=2 * n)
    latest: dict = {}
    pre = [event(h, s, T0 - rnd.uniform(0, 60)) for h, s in space[:n]]
    if bare:
        latest.update(((e.host, e.service), e) for e in pre)
    else:
        idx.insert_many(pre)
    del pre

    def put(batch: list[Event]) -> None:
        for e in batch:
            latest[(e.host, e.service)] = e

    insert = put if bare else idx.insert_many
    rate = n // 20
    total = 0.0
    expired = events = 0
    for sec in range(1, seconds + 1):
        clock.set(T0 + sec)
        batch = [event(*space[rnd.randrange(len(space))], T0 + sec) for _ in range(rate)]
        total += timed(lambda batch=batch: insert(batch))
        del batch
        events += rate
        if sec % reap_every == 0 and not bare:
            out: list = []
            total += timed(lambda out=out: out.extend(idx.expire()))
            expired += len(out)
            del out
    return events, expired, len(latest) if bare else len(idx), total


def bench_mixed(n: int, seconds: int, reap_every: int, seed: int = 7) -> dict:
    """A steady stream: the index starts with n entries whose deadlines are spread over the
    next 60 s; every simulated second brings n/20 events on keys drawn from 1.2 n keys
    (updates, new keys, keys that come back), and the reaper runs every `reap_every` s.
    Replaced and expired events are freed inside the timed sections, as in the pipeline.
    Next to it, the same stream into a bare dict (latest event per key, no TTL, no expiry):
    the floor set by the memory traffic of random keys on this machine."""
    events, expired, size, total = _stream(n, seconds, reap_every, seed, bare=False)
    bare_events, _, _, bare_total = _stream(n, seconds, reap_every, seed, bare=True)
    return {"mixed_events": events, "mixed_expired": expired, "mixed_entries_at_end": size,
            "mixed_events_per_s": events / total, "mixed_ops_per_s": (events + expired) / total,
            "mixed_bare_dict_events_per_s": bare_events / bare_total}


def naive_scan(idx: TTLIndex, now: float, default_ttl: float = 60.0) -> list[tuple]:
    """The check a reaper without a deadline queue makes (Riemann's own `expire` walks the
    whole index): every entry's `now - time > ttl`, read only."""
    due = []
    for ev in idx.events():
        ttl = ev.ttl if ev.ttl is not None else default_ttl
        if now - ev.time > ttl:
            due.append((ev.host, ev.service))
    return due


def naive_reaper(idx: TTLIndex, now: float) -> list[Event]:
    """The whole job done that way: the scan, then removing the due entries and building
    their expired events, as `expire()` does."""
    out = []
    for host, service in naive_scan(idx, now):
        idx.delete(host, service)
        out.append(expired_event(host, service, now))
    return out


def bench_reaper(ks: list[tuple[str, str]], repeat: int, layout: str) -> dict:
    """One reaper pass over n entries with 1 % due, next to a naive full scan of the same index.

    Timed: `take_due` (the pass: find the due entries, requeue, unlink them) against
    `naive_scan` (find them by reading every entry); then the whole job both ways: `expire`
    (the pass, freeing the old events, building the expired ones) against `naive_reaper`
    (the scan, then the same removal and building).

    `steady`: an index that has been running: every key first seen in key order, then each
    updated once in random order (time = arrival, one TTL), the entries already moved to
    their current deadline's bucket by an earlier reaper pass. The
    due entries are the oldest updates (neighbours in memory); the scan walks the dict in
    first-seen order, so it meets events in a random order, as it would in production.
    `random`: one insert per key, TTLs spread over 100 s: the due entries are scattered in
    memory (every one a cache miss: the worst case for the queue) while the scan meets the
    events in the order they were allocated (its best case)."""
    n = len(ks)
    order = list(range(n))
    random.Random(3).shuffle(order)
    now = T0 + 61.0 if layout == "steady" else T0 + 1.0
    best_exp = best_take = best_scan = best_reap = float("inf")

    def build() -> TTLIndex:
        """The index is the events' only owner, as in the pipeline: expiry frees them."""
        idx = TTLIndex(ManualClock(T0), max_entries=n)
        if layout == "steady":
            idx.insert_many([event(h, s, T0 - 200.0, ttl=60.0) for h, s in ks])
            idx.insert_many([event(*ks[j], T0 + i * 100.0 / n, ttl=60.0) for i, j in enumerate(order)])
            assert idx.expire(T0 - 1.0) == []  # the pass that moves the updated entries
        else:
            idx.insert_many([event(h, s, T0, ttl=(i * 7919 % n) * 100.0 / n) for i, (h, s) in enumerate(ks)])
        return idx

    for _ in range(repeat):
        idx = build()
        before = idx.stats["examined"], idx.stats["bucket_pops"]
        scanned: list = []
        best_scan = min(best_scan, timed(lambda idx=idx, scanned=scanned: scanned.extend(naive_scan(idx, now))))
        got: list = []
        best_exp = min(best_exp, timed(lambda idx=idx, got=got: got.extend(idx.expire(now))))
        examined, pops = idx.stats["examined"] - before[0], idx.stats["bucket_pops"] - before[1]
        due = len(got)
        assert abs(due - n // 100) <= 1 and len(scanned) == due, (due, len(scanned))
        del idx, got
        idx = build()
        taken: list = []
        best_take = min(best_take, timed(lambda idx=idx, taken=taken: taken.extend(idx.take_due(now))))
        assert len(taken) == due
        del idx, taken  # frees the old events: part of emitting, timed in `expire` above
        idx = build()
        reaped: list = []
        best_reap = min(best_reap, timed(lambda idx=idx, reaped=reaped: reaped.extend(naive_reaper(idx, now))))
        assert len(reaped) == due
        del idx, reaped
    p = f"reaper_{layout}_"
    return {p + "due": due, p + "examined": examined, p + "bucket_pops": pops, p + "take_due_s": best_take,
            p + "expire_s": best_exp, p + "naive_scan_s": best_scan, p + "naive_reaper_s": best_reap,
            p + "take_due_vs_scan": best_take / best_scan, p + "expire_vs_scan": best_exp / best_scan,
            p + "expire_vs_naive_reaper": best_exp / best_reap}


def bench_memory(ks: list[tuple[str, str]]) -> dict:
    """tracemalloc: the index's own structures (dict, entries, buckets, deadlines) with the events
    already allocated, then the events themselves (as the parser builds them)."""
    n = len(ks)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    evs = [event(h, s, T0 + (i % 1000)) for i, (h, s) in enumerate(ks)]
    ev_bytes = tracemalloc.get_traced_memory()[0] - base
    base = tracemalloc.get_traced_memory()[0]
    idx = TTLIndex(ManualClock(T0), max_entries=n)
    idx.insert_many(evs)
    idx_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(idx) == n
    return {"index_bytes_per_entry": idx_bytes / n, "event_bytes_per_entry": ev_bytes / n,
            "total_bytes_per_entry": (idx_bytes + ev_bytes) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mixed-seconds", type=int, default=60)
    args = ap.parse_args()
    ks = keys(args.entries)
    res: dict = {"entries": args.entries, "python": sys.version.split()[0],
                 "loadavg_at_start": os.getloadavg()[0]}  # other work on the machine skews the numbers
    res |= bench_insert_update(ks, args.repeat)
    res |= bench_mixed(args.entries, args.mixed_seconds, reap_every=10)
    res |= bench_reaper(ks, args.repeat, "steady")
    res |= bench_reaper(ks, args.repeat, "random")
    res |= bench_memory(ks)
    # < 1: the core was shared with other work while timing (all rates above are wall clock)
    res["cpu_share_while_timed"] = _SHARE[1] / _SHARE[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index.json").write_text(json.dumps(res, indent=2) + "\n")
    for k, v in res.items():
        if isinstance(v, float) and v < 10:
            print(f"{k:34s} {v:>14.4f}")
        else:
            print(f"{k:34s} {v:>14,.0f}" if isinstance(v, float) else f"{k:34s} {v:>14}")


if __name__ == "__main__":
    main()
