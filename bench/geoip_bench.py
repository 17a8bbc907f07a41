#!/usr/bin/env python3
"""GeoIP enrichment cost on one core: lookups/s without and with the cache, the cache hit
rate on the shipped samples, the replay time of the mixed corpus with enrichment on and
off (goal: <= 20 % more with the cache on), and, when a throwaway venv with `geoip2` is
given, geoip2's Reader against plain maxminddb on the same addresses (lookups only: the
fields are built natively now, from neither reader's objects). Run pinned:

    taskset -c 1 .venv/bin/python bench/geoip_bench.py [--lines 200000] [--city MMDB]
        [--geoip2-python /tmp/g2/bin/python]    # python3 -m venv /tmp/g2 && /tmp/g2/bin/pip install geoip2

Uses the installed GeoLite2 City database (`streams[geolite]`) or --city, else MaxMind's
test database (nearly every address is then "not found": the numbers say little), and
says which. Prints a table and writes bench/results/geoip.json.
"""

from __future__ import annotations

import argparse
import copy
import gc
import ipaddress
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ROOT, mixed_lines, scaled, write  # noqa: E402

from streams.enrich.geoip import _is_public, build_geoip, default_city_database  # noqa: E402
from streams.parse.dispatch import LineParser  # noqa: E402
from streams.pipeline.replay import Replay  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TEST_DB = ROOT / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"


def public_addresses(n: int, seed: int = 11) -> list[str]:
    """n distinct random public IPv4 addresses (deterministic)."""
    rng, seen = random.Random(seed), set()
    while len(seen) < n:
        a = rng.getrandbits(32)
        if _is_public(4, a):
            seen.add(str(ipaddress.IPv4Address(a)))
    return sorted(seen, key=lambda _: rng.random())


def timed_no_gc(fn) -> float:
    """CPU seconds for fn() (other processes on the core count less than in wall time),
    with the collector off: these loops keep 100k documents alive, whose full collections
    a pipeline (one document at a time) never pays."""
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        fn()
        return time.process_time() - t
    finally:
        gc.enable()


def each(fn, items) -> None:
    for x in items:  # results dropped at once: keeping 100k records would time the allocator
        fn(x)


def enrich_rate(g, addrs: list[str], repeat: int = 3) -> float:
    """Documents are built outside the timed part: enrich() fills them in."""
    best = float("inf")
    for _ in range(repeat):
        docs = [{"source": {"ip": ip}} for ip in addrs]
        enrich, tags = g.enrich, []

        def run(docs=docs, enrich=enrich, tags=tags):
            for d in docs:
                enrich(d, tags)
        best = min(best, timed_no_gc(run))
    return len(addrs) / best


def lookups(db: Path, n: int) -> dict:
    addrs = public_addresses(n)
    g = build_geoip(db, None, cache_size=0, max_age_days=0)
    found = sum(1 for ip in addrs if g.city.get(ip))  # also faults the pages in
    get = g.city.get
    res = {"distinct_addresses": n, "found_in_db": round(found / n, 3),
           "reader_get_per_s": n / min(timed_no_gc(lambda: each(get, addrs)) for _ in range(3)),
           "enrich_uncached_per_s": enrich_rate(g, addrs)}
    g.close()
    hot = addrs[:1000]  # attack traffic: a few addresses, over and over
    g = build_geoip(db, None, max_age_days=0)
    repeated = [hot[i % len(hot)] for i in range(n)]
    enrich_rate(g, hot, repeat=1)
    res["enrich_cached_per_s"] = enrich_rate(g, repeated)
    res["cached_hit_rate"] = round(g.stats()["hit_rate"], 4)
    g.close()
    return res


def samples_hit_rate(db: Path) -> dict:
    """samples/logs through the parser, then enrich: what the cache sees in practice."""
    parser = LineParser(year=2026)
    g = build_geoip(db, None, max_age_days=0)
    lines = 0
    for f in sorted((ROOT / "samples" / "logs").iterdir()):
        if f.suffix not in (".log", ".json"):
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ev = parser.parse(line)
                g.enrich(ev.fields, ev.tags)
                lines += 1
    s = g.stats()
    g.close()
    return {"lines": lines, **{k: s[k] for k in ("lookups", "hits", "misses", "enriched", "failures",
                                                  "skipped_private", "skipped_invalid")},
            "hit_rate": round(s["hit_rate"], 4)}


def replay_once(path: Path, out: Path, db: Path | None) -> tuple[float, float, dict | None]:
    parser = LineParser(year=2026)
    geoip = build_geoip(db, None, max_age_days=0) if db else None
    replay = Replay(parser, out, geoip=geoip)
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    replay.process_file(str(path))
    replay.finish()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    stats = geoip.stats() if geoip else None
    if geoip:
        geoip.close()
    return wall, cpu, stats


def replay_on_off(db: Path, n: int, repeat: int = 3) -> dict:
    """The whole in-process replay (parse, enrich, bulk NDJSON, metrics) of the mixed corpus;
    on and off alternate, best of `repeat` each. The overhead is taken on CPU time, which
    other processes on the core disturb less than wall time."""
    runs: dict[str, list] = {"off": [], "on": []}
    stats = None
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        path = write(d / "mixed.log", scaled(mixed_lines(), n))
        for i in range(repeat):
            runs["off"].append(replay_once(path, d / f"off{i}", None)[:2])
            wall, cpu, stats = replay_once(path, d / f"on{i}", db)
            runs["on"].append((wall, cpu))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    return {"lines": n, "wall_seconds_off": round(best["off"][0], 3), "wall_seconds_on": round(best["on"][0], 3),
            "cpu_seconds_off": round(best["off"][1], 3), "cpu_seconds_on": round(best["on"][1], 3),
            "overhead_cpu": round(best["on"][1] / best["off"][1] - 1, 4),
            "overhead_wall": round(best["on"][0] / best["off"][0] - 1, 4),
            "hit_rate": round(stats["hit_rate"], 4), "lookups": stats["lookups"], "misses": stats["misses"]}


def parse_enrich_loop(db: Path, n: int) -> dict:
    """The same corpus parsed in memory, with and without enrich(): the stage's own cost,
    without the file I/O of a replay."""
    lines = scaled(mixed_lines(), n)
    parser = LineParser(year=2026)
    events = [parser.parse(x) for x in lines]  # parse once: measure enrich alone
    g = build_geoip(db, None, max_age_days=0)
    best = float("inf")
    for _ in range(3):
        docs = [(copy.deepcopy(ev.fields), []) for ev in events]
        enrich = g.enrich

        def run(docs=docs, enrich=enrich):
            for f, tags in docs:
                enrich(f, tags)
        best = min(best, timed_no_gc(run))
    g.close()
    parse_s = min(timed_no_gc(lambda: [parser.parse(x) for x in lines]) for _ in range(3))
    return {"lines": n, "enrich_us_per_event": round(best / n * 1e6, 3),
            "parse_us_per_event": round(parse_s / n * 1e6, 3), "enrich_vs_parse": round(best / parse_s, 4)}


GEOIP2_SNIPPET = r"""
import gc, json, sys, time
import geoip2.database, maxminddb
db, addrs = sys.argv[1], json.loads(sys.stdin.read())
def each(fn):  # results dropped at once, as in a pipeline: keeping 50k records would time the allocator
    for ip in addrs:
        fn(ip)
def rates(**fns):  # interleaved, best of 3: the first pass (page faults) and the load spread evenly
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(3):
        for k, fn in fns.items():
            gc.collect(); gc.disable(); t = time.process_time(); fn()
            best[k] = min(best[k], time.process_time() - t); gc.enable()
    return {k: len(addrs) / v for k, v in best.items()}
r = maxminddb.open_database(db)
g = geoip2.database.Reader(db)
def g2(ip):
    try:
        return g.city(ip)
    except geoip2.errors.AddressNotFoundError:
        return None
import importlib.metadata as md
each(r.get)  # fault the pages in once
print(json.dumps({"geoip2_version": md.version("geoip2"), "maxminddb_version": md.version("maxminddb"),
                  **rates(maxminddb_get_per_s=lambda: each(r.get), geoip2_city_per_s=lambda: each(g2))}))
"""


def geoip2_compare(python: str, db: Path, n: int) -> dict:
    addrs = public_addresses(n)
    p = subprocess.run([python, "-c", GEOIP2_SNIPPET, str(db)], input=json.dumps(addrs), capture_output=True,
                       text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    res = json.loads(p.stdout)
    res["geoip2_slowdown"] = round(res["maxminddb_get_per_s"] / res["geoip2_city_per_s"], 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000, help="mixed corpus lines for the replay (default 200000)")
    ap.add_argument("--addresses", type=int, default=100_000, help="distinct addresses for lookups/s")
    ap.add_argument("--city", type=Path, help="GeoIP2/GeoLite2 City .mmdb (default: the installed GeoLite2)")
    ap.add_argument("--geoip2-python", default="/tmp/g2/bin/python", help="a python with geoip2 installed")
    args = ap.parse_args()
    if args.city:
        db, source = args.city, "--city"
    elif (db := default_city_database()) is not None:
        source = "installed GeoLite2 (maxminddb-geolite2)"
    else:
        db, source = TEST_DB, "MaxMind test database (no real GeoLite2 installed)"
    g = build_geoip(db, None, max_age_days=0)
    res: dict = {"database": str(db), "database_source": source, "database_type": g.describe()["city"]["type"],
                 "database_build_epoch": g.describe()["city"]["build_epoch"], "command": " ".join(sys.argv)}
    g.close()
    res["lookups"] = lookups(db, args.addresses)
    res["samples"] = samples_hit_rate(db)
    res["replay"] = replay_on_off(db, args.lines)
    res["enrich_stage"] = parse_enrich_loop(db, args.lines)
    if args.geoip2_python and Path(args.geoip2_python).exists():
        res["geoip2_vs_maxminddb"] = geoip2_compare(args.geoip2_python, db, min(args.addresses, 50_000))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "geoip.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"database: {res['database_type']} ({source}) {db}")
    for section in ("lookups", "samples", "replay", "enrich_stage", "geoip2_vs_maxminddb"):
        for k, v in (res.get(section) or {}).items():
            shown = f"{v:>14,.2f}" if isinstance(v, float) else f"{v:>14,}" if isinstance(v, int) else f"{v:>14}"
            print(f"{section + '.' + k:48s} {shown}")


if __name__ == "__main__":
    main()
