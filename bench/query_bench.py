#!/usr/bin/env python3
"""Riemann queries (`streams.index.query`) over an index-sized set of events, side by side
with the hand-written Python list comprehension of the same condition, in the same run.
Also the cost of parsing + compiling a query. Times are the best of N runs of CPU time
(`process_time`): the bench machine is shared, and being descheduled is not our cost; the
contenders alternate run by run. Run pinned to one core:

    taskset -c 1 .venv/bin/python bench/query_bench.py [--events 100000]

Prints a table and writes bench/results/query.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import re
import time
from pathlib import Path

from streams.event import Event
from streams.index.query import Query, compile_query, match_all

RESULTS = Path(__file__).resolve().parent / "results"
SERVICES = ["fail2ban sshd", "fail2ban postfix-sasl", "fail2ban dovecot", "postfix queue", "postfix deferred",
            "postfix/smtpd connections", "cpu", "memory", "disk /var", "load", "sshd failures", "wazuh alerts"]
STATES = ["ok"] * 7 + ["warning"] * 2 + ["critical"]
TAGS = ["x", "y", "prod", "staging", "mail", "edge"]
RX = re.compile(r"^(fail2ban|postfix) (sshd|queue)$")

# (query, the plain Python condition on `e` a programmer would write for it)
CASES = [
    ('service =~ "fail2ban%"',
     lambda evs: [e for e in evs if e.service is not None and e.service.startswith("fail2ban")]),
    ('state = "critical" and metric > 0.9',
     lambda evs: [e for e in evs if e.state == "critical" and e.metric is not None and e.metric > 0.9]),
    ('tagged "x" or host = "h42"',
     lambda evs: [e for e in evs if "x" in e.tags or e.host == "h42"]),
    ('service ~= "^(fail2ban|postfix) (sshd|queue)$"',
     lambda evs: [e for e in evs if e.service is not None and RX.search(e.service)]),
    ('service =~ "%queue%" and not tagged "y"',
     lambda evs: [e for e in evs if e.service is not None and "queue" in e.service and "y" not in e.tags]),
    ('(state = "warning" or state = "critical") and metric >= 0.5 and host != "h0"',
     lambda evs: [e for e in evs if (e.state == "warning" or e.state == "critical")
                  and e.metric is not None and e.metric >= 0.5 and e.host != "h0"]),
    ('jail = "sshd" and bans > 3',
     lambda evs: [e for e in evs if e.attributes.get("jail") == "sshd" and "bans" in e.attributes
                  and float(e.attributes["bans"]) > 3]),
    ('metric = nil or description =~ "%disk%full%"',
     lambda evs: [e for e in evs if e.metric is None or ((d := e.description) is not None
                                                         and (i := d.find("disk")) >= 0 and d.find("full", i + 4) >= 0)]),
]


def events(n: int, seed: int = 42) -> list[Event]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        service = rnd.choice(SERVICES)
        attrs = {}
        if service.startswith("fail2ban"):
            attrs = {"jail": service.split()[1], "bans": str(rnd.randrange(10))}
        out.append(Event(
            time=1_700_000_000.0 + i, host=f"h{rnd.randrange(1000)}", service=service, state=rnd.choice(STATES),
            metric=None if rnd.random() < 0.05 else rnd.random(), ttl=60.0,
            description=rnd.choice([None, "disk nearly full", "ok", "queue growing"]),
            tags=rnd.sample(TAGS, rnd.randrange(3)), attributes=attrs))
    return out


def best_ms(fns: dict, repeat: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            t = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t)
    return {name: b * 1e3 for name, b in best.items()}


def compile_us(text: str, n: int = 200) -> tuple[float, float]:
    """Uncached parse + compile, and a cache hit, in microseconds (CPU time)."""
    t = time.process_time()
    for _ in range(n):
        Query(text)
    cold = (time.process_time() - t) / n * 1e6
    compile_query(text)
    t = time.process_time()
    for _ in range(n * 100):
        compile_query(text)
    return cold, (time.process_time() - t) / (n * 100) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    evs = events(args.events)
    res: dict = {"python": platform.python_version(), "events": args.events, "repeat_best_of": args.repeat,
                 "command": "taskset -c 1 .venv/bin/python bench/query_bench.py", "queries": []}
    for text, plain in CASES:
        q = compile_query(text)
        got, want = match_all(q, evs), plain(evs)
        if got != want:  # the same events, in the same order, or the numbers mean nothing
            raise SystemExit(f"mismatch for {text!r}: {len(got)} vs {len(want)}")
        row = {"query": text, "matches": len(got)}
        row |= best_ms({"streams_ms": lambda q=q: match_all(q, evs),
                        "streams_call_ms": lambda q=q: [e for e in evs if q(e)],
                        "python_ms": lambda plain=plain: plain(evs)}, args.repeat)
        row["ratio"] = row["streams_ms"] / row["python_ms"]
        row["call_ratio"] = row["streams_call_ms"] / row["python_ms"]
        row["parse_compile_us"], row["cached_lookup_us"] = compile_us(text)
        res["queries"].append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "query.json").write_text(json.dumps(res, indent=2) + "\n")

    print(f"{args.events:,} events, best of {args.repeat}; ms per query over all events "
          "(match_all | q(e) per event | hand-written list comprehension)")
    print(f"{'query':62s} {'matches':>8s} {'match_all':>9s} {'q(e)':>7s} {'python':>7s} "
          f"{'ratio':>6s} {'q(e)/py':>7s} {'compile':>9s}")
    for r in res["queries"]:
        print(f"{r['query'][:62]:62s} {r['matches']:>8,} {r['streams_ms']:>9.2f} {r['streams_call_ms']:>7.2f} "
              f"{r['python_ms']:>7.2f} {r['ratio']:>6.2f} {r['call_ratio']:>7.2f} {r['parse_compile_us']:>7.0f}us")


if __name__ == "__main__":
    main()
