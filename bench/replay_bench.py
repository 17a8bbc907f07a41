#!/usr/bin/env python3
"""`streams replay` throughput, peak memory and instructions per line (whole pipeline: parse,
GeoIP, bulk NDJSON per dated index, Graphite metrics), side by side in ONE run with syslog-ng
3.38 doing regexp-parser + geoip2() -> format-json on the same file (issue 15).

For N lines (--lines, default 1,000,000) and N/10 (and 10M with --rss-10m: streams alone, for
the peak-RSS flatness check), each written by bench/corpus.py:

1. streams, pinned with `taskset -c CORE`:
       streams replay -q --no-progress --year 2026 -o OUT --geoip-city DB FILE    (and --no-geoip)
   lines/s = lines of FILE / wall seconds of the process (start-up included); CPU seconds
   (user + system, from rusage); peak RSS (VmHWM of the process); documents with source.geo;
2. syslog-ng, pinned the same way: file() source -> syslog-parser -> the parse bench's
   regexp-parser patterns (bench/syslog_ng.py) -> geoip2() on the source address they captured
   (prefix .geo., the same City database) -> file() with format-json, source.geo.* named as
   streams names them; from its start until every line is in its output file (polled from
   another core), then SIGTERM; CPU seconds and VmHWM read at that moment;
3. instructions per line: `perf stat -e instructions -x,` (user + kernel) around every run
   above, and around a run on an empty file: the marginal (I(N) - I(N/10)) / lines between,
   and (I(N) - I(0)) / N. Where perf cannot count
   instructions (a VM without a PMU says <not supported>), valgrind cachegrind instead
   (user-space only, every thread) on --instr-lines N' and N'/2 lines: the marginal cost
   (I(N') - I(N'/2)) / lines between (start-up and warm-up left out), and (I(N') - I(0)) / N';
4. the ratio streams (GeoIP on) / syslog-ng + geoip2, of lines/s and of CPU time; the goals
   of issue 15 (>= 200,000 lines/s, >= 3x syslog-ng + geoip2, peak RSS flat) checked.

    taskset -c 0 .venv/bin/python bench/replay_bench.py [--lines 1000000] [--repeat 1]
        [--rss-10m] [--instructions auto|perf|cachegrind|off] [--instr-lines 100000]
        [--no-syslog-ng] [--geoip-city DB] [--core 0]

Uses the installed GeoLite2 City database when present (`streams[geolite]`), else MaxMind's
test database. Needs the private syslog-ng with its geoip2 module
(deploy/dev/install-syslog-ng-private). Writes bench/results/replay.json, prints a table and
a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ROOT  # noqa: E402
from measure import (  # noqa: E402
    DRIVER,
    cachegrind_ir,
    corpus_file,
    perf,
    perf_instructions,
    perf_usable,
    valgrind,
    valgrind_version,
    vmhwm_mib,
)
from syslog_ng import (  # noqa: E402
    STALL,
    VALGRIND_STALL,
    modules,
    run_syslog_ng,
    syslog_ng_available,
    syslog_ng_version,
)

from streams.enrich.geoip import default_city_database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_LINES_PER_S = 200_000
GOAL_RATIO = 3.0
RSS_FLAT = 1.10          # "flat" (our reading of issue 15): the peak RSS at the largest N at most 10 % above the smallest's
GEO = b'"geo":{'         # a document with source.geo (both sides write it so)


def file_lines(path: Path) -> tuple[int, int]:
    """(lines, non-empty lines) of a file: what streams reads, what syslog-ng writes out."""
    lines = nonempty = 0
    with open(path, "rb") as fh:
        for line in fh:
            lines += 1
            nonempty += line != b"\n"
    return lines, nonempty


def count_geo(paths) -> int:
    """Documents with source.geo in NDJSON files (read in blocks)."""
    n = 0
    for p in paths:
        tail = b""
        with open(p, "rb") as fh:
            while block := fh.read(1 << 22):
                data = tail + block
                n += data.count(GEO)
                tail = data[-(len(GEO) - 1):]
    return n


def streams_cmd(path: Path, out: Path, db: Path | None, core: int | None,
                wrapper: list[str] | None = None) -> list[str]:
    """The measured command: `streams replay ...` (as `python -c DRIVER`, which reports VmHWM),
    taskset outside the wrapper (valgrind does not follow taskset's exec)."""
    geo = ["--geoip-city", str(db)] if db is not None else ["--no-geoip"]
    pin = ["taskset", "-c", str(core)] if core is not None else []
    return [*pin, *(wrapper or []), sys.executable, "-c", DRIVER, "replay", "-q", "--no-progress", "--year", "2026",
            "-o", str(out), *geo, str(path)]


def run_streams(path: Path, out: Path, db: Path | None, core: int | None, lines: int,
                wrapper: list[str] | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = streams_cmd(path, out, db, core, wrapper)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sec = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"streams replay exited {p.returncode}: {p.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    cache = summary.get("geoip_cache") or {}
    res = {
        "seconds": round(sec, 3), "lines": lines, "lines_per_s": round(lines / sec),
        "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3),
        "peak_rss_mib": None if wrapper and wrapper[0] == "valgrind" else vmhwm_mib(p.stderr),
        "events": summary["events"], "summary_lines": summary["lines"],
        "geoip_hit_rate": cache.get("hit_rate"),
        "geoip_lookups": (cache.get("hits", 0) + cache.get("misses", 0)) if cache else None,
        "docs_with_geo": count_geo((out / "elasticsearch").glob("*.ndjson")) if db is not None else 0,
    }
    res["lines_per_cpu_s"] = round(lines / max(res["cpu_seconds"], 1e-9))
    return res


def run_peer(work: Path, path: Path, n_docs: int, db: Path, core: int | None, lines: int,
             wrapper: list[str] | None = None, stall: float = STALL) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    r = run_syslog_ng(work, path, n_docs, core, wrapper=wrapper, stall=stall, geoip_db=db)
    res = {"seconds": round(r["seconds"], 3), "lines": lines, "lines_per_s": round(lines / r["seconds"]),
           "cpu_seconds": round(r["cpu_seconds"], 3),
           "lines_per_cpu_s": round(lines / max(r["cpu_seconds"], 1e-9)),
           "peak_rss_mib": r["peak_rss_mib"], "docs": r["docs"], "docs_expected": n_docs}
    if n_docs:
        res["docs_with_geo"] = count_geo([r["out"]])
    r["out"].unlink(missing_ok=True)
    return res


def best(runs: list[dict]) -> dict:
    b = dict(min(runs, key=lambda r: r["seconds"]))
    if len(runs) > 1:
        b["runs_seconds"] = [r["seconds"] for r in runs]
        b["best_cpu_seconds"] = min(r["cpu_seconds"] for r in runs)
    return b


# -- instructions -----------------------------------------------------------------------------

def instructions_cachegrind(d: Path, db: Path, core: int | None, n: int, do_sng: bool) -> dict:
    """User-space instructions per line under cachegrind, on an empty file, N/2 and N lines:
    per_line is the marginal cost (I(N) - I(N/2)) / (lines(N) - lines(N/2)), which leaves out
    start-up and one-off warm-up (lazily built patterns, caches filling); per_line_from_empty
    is (I(N) - I(0)) / lines(N), which keeps the warm-up."""
    res: dict = {"tool": f"{valgrind_version()} --tool=cachegrind --cache-sim=no",
                 "counts": "user space only, all threads", "lines": n,
                 "per_line": f"(I({n:,}) - I({n // 2:,})) / lines between: the marginal cost"}
    empty = d / "empty.log"
    empty.write_text("")
    files = [(0, empty, 0, 0)]
    for k in (n // 2, n):
        f = corpus_file(d, k)
        files.append((k, f, *file_lines(f)))
    counts = {}
    for key, cdb in (("streams_geoip", db), ("streams_nogeoip", None), ("syslog_ng_geoip2", db)):
        if key.startswith("syslog") and not do_sng:
            continue
        ir, nl = {}, {}
        for k, path, lines, docs in files:
            out = d / f"cg-{key}-{k}.out"
            if key.startswith("syslog"):
                run_peer(d / "sng-cg", path, docs, db, core, lines, wrapper=valgrind(out), stall=VALGRIND_STALL)
            else:
                run_streams(path, d / "out-cg", cdb, core, lines, wrapper=valgrind(out))
            ir[k], nl[k] = cachegrind_ir(out), lines
        res[f"{key}_per_line"] = round((ir[n] - ir[n // 2]) / (nl[n] - nl[n // 2]))
        res[f"{key}_per_line_from_empty"] = round((ir[n] - ir[0]) / nl[n])
        counts[key] = {str(k): {"lines": nl[k], "instructions": ir[k]} for k in ir}
    res["counts_by_run"] = counts
    return res


# -- main ---------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="N (N/10 is measured too)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each at each size, best kept (interleaved)")
    ap.add_argument("--rss-10m", action="store_true",
                    help="also 10M lines (streams with GeoIP alone; a 1.3 GB file in /tmp, deleted after)")
    ap.add_argument("--syslog-ng", action=argparse.BooleanOptionalAction, default=True,
                    help="the syslog-ng + geoip2 peer (default on)")
    ap.add_argument("--instructions", choices=("auto", "perf", "cachegrind", "off"), default="auto",
                    help="auto: perf stat when it counts instructions here, else valgrind cachegrind")
    ap.add_argument("--instr-lines", type=int, default=100_000,
                    help="N for the cachegrind runs (on N/2 and N lines, and an empty file)")
    ap.add_argument("--geoip-city", type=Path, default=None)
    ap.add_argument("--core", type=int, default=0, help="the core both are pinned to (taskset -c)")
    ap.add_argument("--report", action="store_true", help="print the tables of bench/results/replay.json, run nothing")
    args = ap.parse_args()
    if args.report:
        res = json.loads((RESULTS / "replay.json").read_text())
        report(res, res.get("sizes") or [res["lines"] // 10, res["lines"]])
        return

    db = args.geoip_city or default_city_database() or ROOT / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
    core = args.core if shutil.which("taskset") else None
    notes: list[str] = []
    res: dict = {"geoip_database": str(db), "lines": args.lines, "pinned_core": core,
                 "machine": {"cpus": os.cpu_count(), "processor": _cpu_model(), "kernel": platform.release()},
                 "commit": _git("rev-parse", "--short", "HEAD"),
                 "streams_commit": _git("log", "-1", "--format=%h", "--", "streams", "native"),  # the code measured
                 "streams_worktree_dirty": bool(_git("status", "--porcelain", "--", "streams", "native")),
                 "loadavg_at_start": os.getloadavg()}

    argv, _, why = syslog_ng_available(modules(db))
    do_sng = args.syslog_ng and argv is not None
    if args.syslog_ng and argv is None:
        notes.append(f"syslog-ng peer skipped: {why}")
    if do_sng:
        res["syslog_ng_version"] = syslog_ng_version()

    mode = args.instructions
    why_perf = perf_usable() if mode in ("auto", "perf") else "not asked"
    if mode == "perf" and why_perf:
        raise SystemExit(why_perf)
    use_perf = mode in ("auto", "perf") and why_perf is None
    if mode == "auto" and why_perf:
        notes.append(f"instructions: {why_perf}; counted with valgrind cachegrind instead "
                     f"({args.instr_lines:,} lines, user space only)")
        mode = "cachegrind" if valgrind_version() else "off"

    sizes = res["sizes"] = [args.lines // 10, args.lines]
    with tempfile.TemporaryDirectory(prefix="replay-bench-", dir="/tmp") as d:
        d = Path(d)
        empty = d / "empty.log"
        empty.write_text("")
        res["commands"] = {
            "streams": " ".join(streams_cmd(Path("FILE"), Path("OUT"), Path("DB"), core)).replace(
                f'-c {DRIVER!s}', "-c DRIVER"),
            "syslog-ng": f"taskset -c {core} syslog-ng --no-caps --module-path=... -F --stderr -f CONF "
                         "(CONF: bench/syslog_ng.py syslog_ng_config(FILE, OUT, DB))",
            "perf": " ".join(perf(Path("PERF.csv"))) + " <command>" if use_perf else None,
        }

        # start-up alone: an empty file (what (N lines - 0 lines) takes off)
        start: dict = {}
        wrap = (lambda tag: perf(d / f"perf-{tag}.csv")) if use_perf else (lambda tag: None)
        start["streams_geoip"] = run_streams(empty, d / "out0", db, core, 0, wrap("streams_geoip-0"))
        start["streams_nogeoip"] = run_streams(empty, d / "out0", None, core, 0, wrap("streams_nogeoip-0"))
        if do_sng:
            start["syslog_ng_geoip2"] = run_peer(d / "sng0", empty, 0, db, core, 0, wrap("syslog_ng_geoip2-0"))
        res["startup_seconds"] = {k: v["seconds"] for k, v in start.items()}
        ir0 = {k: perf_instructions(d / f"perf-{k}-0.csv") for k in start} if use_perf else {}

        for n in sizes:
            f = corpus_file(d, n)
            lines, docs = file_lines(f)
            runs: dict[str, list[dict]] = {"geoip": [], "nogeoip": [], "syslog_ng_geoip2": []}
            for i in range(args.repeat):
                runs["geoip"].append(run_streams(f, d / "out", db, core, lines, wrap(f"streams_geoip-{n}-{i}")))
                runs["nogeoip"].append(run_streams(f, d / "out", None, core, lines, wrap(f"streams_nogeoip-{n}-{i}")))
                if do_sng:
                    runs["syslog_ng_geoip2"].append(
                        run_peer(d / "sng", f, docs, db, core, lines, wrap(f"syslog_ng_geoip2-{n}-{i}")))
                if use_perf:
                    for key, tag in (("geoip", "streams_geoip"), ("nogeoip", "streams_nogeoip"),
                                     ("syslog_ng_geoip2", "syslog_ng_geoip2")):
                        if runs[key] and len(runs[key]) == i + 1:
                            ir = perf_instructions(d / f"perf-{tag}-{n}-{i}.csv")
                            r = runs[key][i]
                            r["instructions"] = ir
                            if ir is not None and ir0.get(tag) is not None:
                                r["instructions_per_line"] = round((ir - ir0[tag]) / lines)
                                r["instructions_per_line_with_startup"] = round(ir / lines)
            for key, rs in runs.items():
                if rs:
                    res[f"{key}_{n}"] = best(rs)
            if do_sng:
                s, p = res[f"geoip_{n}"], res[f"syslog_ng_geoip2_{n}"]
                res[f"ratio_streams_to_syslog_ng_{n}"] = round(s["lines_per_s"] / p["lines_per_s"], 2)
                res[f"ratio_streams_to_syslog_ng_cpu_{n}"] = round(s["lines_per_cpu_s"] / p["lines_per_cpu_s"], 2)
            f.unlink()

        rss_sizes = sizes
        if args.rss_10m:
            n = 10_000_000
            f = corpus_file(d, n)
            lines, _ = file_lines(f)
            res[f"geoip_{n}"] = run_streams(f, d / "out", db, core, lines)
            f.unlink()
            shutil.rmtree(d / "out", ignore_errors=True)
            rss_sizes = [*sizes, n]
        res["rss"] = {"streams_geoip": {str(n): res[f"geoip_{n}"]["peak_rss_mib"] for n in rss_sizes},
                      "streams_nogeoip": {str(n): res[f"nogeoip_{n}"]["peak_rss_mib"] for n in sizes}}
        if do_sng:
            res["rss"]["syslog_ng_geoip2"] = {str(n): res[f"syslog_ng_geoip2_{n}"]["peak_rss_mib"] for n in sizes}

        if use_perf:
            lo, hi = sizes
            res["instructions"] = {"tool": "perf stat -e instructions -x,", "counts": "user + kernel, all threads",
                                   "lines": args.lines, "empty_file": ir0,
                                   "per_line": f"(I({hi:,}) - I({lo:,})) / lines between: the marginal cost"}
            for key, tag in (("geoip", "streams_geoip"), ("nogeoip", "streams_nogeoip"),
                             ("syslog_ng_geoip2", "syslog_ng_geoip2")):
                a, b = res.get(f"{key}_{lo}", {}), res.get(f"{key}_{hi}", {})
                if a.get("instructions") is not None and b.get("instructions") is not None:
                    res["instructions"][f"{tag}_per_line"] = round(
                        (b["instructions"] - a["instructions"]) / (b["lines"] - a["lines"]))
                if "instructions_per_line" in b:
                    res["instructions"][f"{tag}_per_line_from_empty"] = b["instructions_per_line"]
        elif mode == "cachegrind":
            res["instructions"] = instructions_cachegrind(d, db, core, args.instr_lines, do_sng)
        else:
            res["instructions"] = {"skipped": why_perf if args.instructions != "off" else "--instructions off"}

    g = res[f"geoip_{args.lines}"]
    if not g["docs_with_geo"]:
        notes.append("streams with --geoip-city wrote no document with source.geo "
                     f"(GeoIP lookups: {g['geoip_lookups']}): this build does not enrich in the replay path, "
                     "so its GeoIP figures are those of a run without GeoIP work")
    rss = res["rss"]["streams_geoip"]
    res["goals"] = {
        "lines_per_s_geoip": {"goal": GOAL_LINES_PER_S, "measured": g["lines_per_s"],
                              "met": g["lines_per_s"] >= GOAL_LINES_PER_S},
        "peak_rss_flat": {"goal": f"peak RSS at the largest N <= {RSS_FLAT:.2f} x at the smallest",
                          "measured": rss, "met": max(rss.values()) <= RSS_FLAT * min(rss.values())},
    }
    if do_sng:
        ratio = res[f"ratio_streams_to_syslog_ng_{args.lines}"]
        res["goals"]["ratio_to_syslog_ng_geoip2"] = {"goal": GOAL_RATIO, "measured": ratio, "met": ratio >= GOAL_RATIO}
    if not g["docs_with_geo"]:
        for k in ("lines_per_s_geoip", "ratio_to_syslog_ng_geoip2"):
            if k in res["goals"]:
                res["goals"][k]["caveat"] = "streams made no GeoIP lookup in this run"
    res["loadavg_at_end"] = os.getloadavg()
    res["notes"] = notes
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(res, indent=2) + "\n")
    report(res, sizes)


def _git(*a: str) -> str:
    p = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
    return p.stdout.strip()


def _cpu_model() -> str:
    try:
        return next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


ROWS = (("geoip", "streams replay, GeoIP City"), ("nogeoip", "streams replay, --no-geoip"),
        ("syslog_ng_geoip2", "syslog-ng 3.38 regexp-parser + geoip2"))


def report(res: dict, sizes: list[int]) -> None:
    ins = res.get("instructions", {})
    per_line = {"geoip": ins.get("streams_geoip_per_line"), "nogeoip": ins.get("streams_nogeoip_per_line"),
                "syslog_ng_geoip2": ins.get("syslog_ng_geoip2_per_line")}
    extra = [10_000_000] if "geoip_10000000" in res else []
    print(f"{'run':40s} {'lines':>11} {'seconds':>8} {'lines/s':>9} {'CPU s':>7} {'RSS MiB':>8} {'with geo':>9}")
    for n in [*sizes, *extra]:
        for key, label in ROWS:
            r = res.get(f"{key}_{n}")
            if r:
                print(f"{label:40s} {n:>11,} {r['seconds']:>8.2f} {r['lines_per_s']:>9,} {r['cpu_seconds']:>7.2f} "
                      f"{r['peak_rss_mib'] or 0:>8.1f} {r.get('docs_with_geo', 0):>9,}")
        if f"ratio_streams_to_syslog_ng_{n}" in res:
            print(f"  ratio streams (GeoIP) / syslog-ng + geoip2 at {n:,}: "
                  f"{res[f'ratio_streams_to_syslog_ng_{n}']:.2f}x wall-clock, "
                  f"{res[f'ratio_streams_to_syslog_ng_cpu_{n}']:.2f}x CPU time")
    print(f"start-up (empty file), seconds: {res['startup_seconds']}")
    print(f"instructions per line ({ins.get('tool', '-')}; {ins.get('counts', ins.get('skipped', ''))}; "
          f"{ins.get('per_line', str(ins.get('lines', 0)) + ' lines minus an empty file')}): {per_line}")
    for name, g in res["goals"].items():
        print(f"goal {name}: {g['goal']} -> {g['measured']} {'met' if g['met'] else 'NOT met'}"
              + (f" ({g['caveat']})" if "caveat" in g else ""))
    for x in res["notes"]:
        print("note:", x)
    # ready to paste
    n = sizes[-1]
    rss_head = " → ".join(_short(m) for m in [*sizes, *extra])
    print(f"\n| {n:,} lines, one core (taskset -c {res['pinned_core']}) | lines/s | lines per CPU-second | "
          f"peak RSS {rss_head} | instructions/line¹ |")
    print("|---|---:|---:|---:|---:|")
    for key, label in ROWS:
        r = res.get(f"{key}_{n}")
        if not r:
            continue
        rss = [res.get(f"{key}_{m}", {}).get("peak_rss_mib") for m in [*sizes, *extra]]
        rss_text = " → ".join(f"{x:.0f}" for x in rss if x is not None) + " MiB"
        ipl = f"{per_line[key]:,}" if per_line[key] is not None else "–"
        print(f"| {label} | {r['lines_per_s']:,} | {r['lines_per_cpu_s']:,} | {rss_text} | {ipl} |")
    if f"ratio_streams_to_syslog_ng_{n}" in res:
        print(f"| **streams (GeoIP) / syslog-ng + geoip2** | **{res[f'ratio_streams_to_syslog_ng_{n}']:.2f}x** | "
              f"**{res[f'ratio_streams_to_syslog_ng_cpu_{n}']:.2f}x** | | |")
    how = ins.get("per_line") or f"(run on {ins.get('lines', 0):,} lines − run on an empty file) / lines"
    print(f"\n¹ {ins.get('tool', '-')}, {ins.get('counts', ins.get('skipped', ''))}: {how}. "
          f"streams {res.get('streams_commit')}, {res.get('syslog_ng_version', '')}, "
          f"{res['machine']['processor']} ({res['machine']['cpus']} vCPU), "
          f"load average {res['loadavg_at_start'][0]:.1f} at start.")


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000:,}k"


if __name__ == "__main__":
    main()
