#!/usr/bin/env python3
"""`streams parse` throughput on one core, side by side with pygrok (the same grok
patterns, compiled once, dispatched on the program the same way) and a bare `re` +
orjson loop, plus a near-miss corpus. Run pinned to one core:

    taskset -c 0 .venv/bin/python bench/parse_bench.py [--lines 200000]

Prints a table and writes bench/results/parse.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import mixed_lines, near_miss, scaled, write  # noqa: E402

from streams.parse.dispatch import LineParser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, lines, repeat=3) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn(lines)
        best = min(best, time.perf_counter() - t)
    return len(lines) / best


def streams_loop(parser: LineParser):
    parse, dumps = parser.parse, orjson.dumps

    def run(lines):
        for line in lines:
            dumps(parse(line).to_doc())
    return run


def bare_re_loop():
    rx = re.compile(r"(\w{3} +\d+ [\d:]+|\S+) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)")
    dumps = orjson.dumps

    def run(lines):
        for line in lines:
            m = rx.match(line)
            dumps({"ts": m.group(1), "host": m.group(2), "prog": m.group(3), "msg": m.group(5)} if m else {"m": line})
    return run


def regex_floor_loop(parser: LineParser):
    """Only the two regex calls every syslog line needs with our patterns (header, then
    the product's alternation, narrowed by the message's opening as the parser does) and a
    minimal dict to orjson: no field filling, no hooks,
    no timestamps. A ceiling for any Python code built on these regexes."""
    from streams.parse.syslog import _BSD
    resolve, dumps = parser.resolve, orjson.dumps

    def run(lines):
        for line in lines:
            m = _BSD.match(line)
            if m is None:
                dumps({"m": line})
                continue
            g = m.groups()
            p = resolve(g[8])
            d = {"event": {"original": line}, "h": g[7], "t": g[1]}
            if p is not None and (alt := p.matcher.narrow(g[10])) is not None:
                mm = alt.regex.fullmatch(g[10])
                if mm is not None:
                    d["x"] = mm.groups()
            dumps(d)
    return run


# -- pygrok, given the equivalent grok patterns -----------------------------------------
_FIELD = re.compile(r"%\{(\w+):([\w@.\[\]-]+)((?::\w+)?)\}")
_ONIG = re.compile(r"\(\?<(?![=!])([\w@.\[\]-]+)>")


def _py_name(path: str) -> str:
    return re.sub(r"\W", "_", path.strip("[]").replace("][", "_"))


def pygrok_loop(parser: LineParser):
    from pygrok import Grok
    defs = {}
    for name, d in parser.library.definitions.items():
        text = _FIELD.sub(lambda m: f"%{{{m.group(1)}:{_py_name(m.group(2))}{m.group(3)}}}", d.regex)
        defs[name] = _ONIG.sub(lambda m: f"(?P<{_py_name(m.group(1))}>", text)
    header = Grok(r"^(?:<%{NONNEGINT:pri}>)?(?:%{SYSLOGTIMESTAMP:ts}|%{TIMESTAMP_ISO8601:ts}) "
                  r"(?:%{SYSLOGHOST:hostname} )?%{PROG:program}(?:\[%{POSINT:pid:int}\])?:? %{GREEDYDATA:message}$",
                  custom_patterns=defs)
    own = Grok(r"^%{TIMESTAMP_ISO8601:ts} %{NOTSPACE:logger} *(?:\[%{POSINT:pid:int}\])? *: %{GREEDYDATA:message}$",
               custom_patterns=defs)
    by_program: dict[str, list] = {}
    for p in parser.parsers:
        groks = [Grok(f"^%{{{r.name}}}$", custom_patterns=defs) for r in p.rules]
        for prog in p.programs:
            by_program[prog] = groks
    f2b = by_program.get("fail2ban*", [])
    dumps, loads = orjson.dumps, orjson.loads

    def run(lines):
        for line in lines:
            if line[:1] == "{":
                try:
                    doc = loads(line)
                except orjson.JSONDecodeError:
                    doc = {"message": line}
                dumps(doc)
                continue
            groks = None
            h = own.match(line) if line[:1].isdigit() else None
            if h is not None:
                groks = f2b
            else:
                h = header.match(line)
                if h is not None:
                    prog = h["program"]
                    groks = by_program.get(prog)
                    if groks is None and "/" in prog:
                        groks = by_program.get("postfix/" + prog.rpartition("/")[2])
                    if groks is None:
                        groks = by_program.get(re.split(r"[.\-(]", prog, maxsplit=1)[0] + "*")
            doc = {"event": {"original": line}}
            if h is not None:
                doc.update(h)
                for g in groks or ():
                    m = g.match(h["message"])
                    if m is not None:
                        doc.update(m)
                        break
            dumps(doc)
    return run


def cli_rate(path: Path, n: int) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "streams.cli", "parse", "--year", "2026", str(path)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--no-pygrok", action="store_true")
    args = ap.parse_args()
    base = mixed_lines()
    lines = scaled(base, args.lines)
    near = scaled(near_miss(base), args.lines)
    parser = LineParser(year=2026)
    res = {"lines": args.lines, "distinct_lines": len(base)}
    res["streams_lines_per_s"] = best_of(streams_loop(parser), lines)
    res["streams_near_miss_lines_per_s"] = best_of(streams_loop(LineParser(year=2026)), near)
    res["bare_re_orjson_lines_per_s"] = best_of(bare_re_loop(), lines)
    res["regex_floor_lines_per_s"] = best_of(regex_floor_loop(parser), lines)
    if not args.no_pygrok:
        res["pygrok_lines_per_s"] = best_of(pygrok_loop(parser), lines)  # best of 3 as ours
        res["ratio_streams_to_pygrok"] = res["streams_lines_per_s"] / res["pygrok_lines_per_s"]
    res["near_miss_slowdown"] = res["streams_lines_per_s"] / res["streams_near_miss_lines_per_s"]
    with tempfile.TemporaryDirectory() as d:
        p = write(Path(d) / "mixed.log", lines)
        res["cli_lines_per_s"] = cli_rate(p, len(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parse.json").write_text(json.dumps(res, indent=2) + "\n")
    for k, v in res.items():
        print(f"{k:34s} {v:>14,.2f}" if isinstance(v, float) else f"{k:34s} {v:>14,}")


if __name__ == "__main__":
    main()
