#!/usr/bin/env python3
"""`streams parse` throughput on one core, side by side with its peers in ONE run:

1. streams in process (`LineParser.parse` + `to_doc` + orjson), and every other streams
   variant of VARIANTS that this build has (the batch API `parser.parse_batch(bytes) ->
   NDJSON bytes` when `LineParser` has it: measured, else skipped with a note);
2. pygrok 1.0.0 (the same grok patterns, compiled once, dispatched on the program the same
   way) and a bare `re` + orjson loop;
3. syslog-ng 3.38's regexp-parser -> JSON on the same lines (the private build of
   deploy/dev/install-syslog-ng-private): file() source -> syslog-parser() -> regexp-parser()
   with the PCRE patterns of SYSLOG_NG_PATTERNS (sshd, Postfix, Fail2ban) -> file() with
   `$(format-json ...)`; from its start until the output file holds every line, best of 3,
   its start-up (until a one-line corpus is written) measured alone and taken off; after each
   of its runs one pass of each streams variant, and the ratio streams / syslog-ng taken from
   those passes, of wall-clock time and of CPU time (syslog-ng's threads share the core with
   other tenants' processes on better terms than one thread does, so on a loaded machine the
   wall-clock ratio drifts); how many lines its patterns matched next to streams' share of
   lines with a matched rule, overall and on the lines of the products the patterns are for;
4. the near-miss corpus, and the `streams parse FILE > /dev/null` command (start-up
   included; `--cli-lines N` for a separate N-line file);
5. `--rss`: peak RSS (VmHWM) of `streams parse FILE > /dev/null` at 100k and 1M lines
   (`--rss-10m`: also 10M, a 1.3 GB file in /tmp, deleted after);
6. `--instructions`: instructions per line (valgrind cachegrind) of streams in process
   (N lines minus the same run with 0 lines) and of syslog-ng (N lines minus 0 lines).

Run pinned to one core (the measured processes stay on that core; the poller that watches
syslog-ng's output moves to another core while it waits):

    taskset -c 0 .venv/bin/python bench/parse_bench.py [--lines 200000] [--cli-lines 1000000]
        [--rss [--rss-10m]] [--instructions [--instr-lines 10000]] [--no-syslog-ng] [--no-pygrok]

Prints a table and writes bench/results/parse.json.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import mixed_lines, near_miss, scaled, write  # noqa: E402
from measure import DRIVER, cachegrind_ir, corpus_file, valgrind, vmhwm_mib  # noqa: E402
from syslog_ng import (  # noqa: E402
    SYSLOG_NG_MODULES,
    SYSLOG_NG_PATTERNS,
    VALGRIND_STALL,
    expected_docs,
    run_syslog_ng,
    syslog_ng_available,
    syslog_ng_version,
)

from streams.inputs import iter_blocks  # noqa: E402
from streams.parse.dispatch import LineParser  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def best_of_both(fn, data, n: int, repeat: int = 3) -> tuple[float, float]:
    """Lines per second, best of `repeat` passes: of wall-clock time, and of this process'
    CPU time (less disturbed by other tenants of the core: see bench_syslog_ng)."""
    best = best_cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        fn(data)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return n / best, n / max(best_cpu, 1e-9)


def best_of(fn, data, n: int, repeat: int = 3) -> float:
    return best_of_both(fn, data, n, repeat)[0]


# -- streams variants ----------------------------------------------------------------------
# One entry per way streams can turn lines into JSON. A new variant is one `make` function
# (parser -> run(data)) and one line in VARIANTS; main() measures every available one on the
# same lines and near-miss lines, and `--instructions` counts it too.

def streams_loop(parser: LineParser):
    parse, dumps = parser.parse, orjson.dumps

    def run(lines):
        for line in lines:
            dumps(parse(line).to_doc())
    return run


def streams_batch_loop(parser: LineParser):
    """The native batch API as `streams parse` calls it: blocks of whole lines (about 1 MiB
    each, made outside the timing) in, NDJSON bytes out, one call a block."""
    parse_batch = parser.parse_batch

    def run(blocks: list[bytes]) -> list[bytes]:
        return [parse_batch(b) for b in blocks]
    return run


def _as_list(lines: list[str]) -> list[str]:
    return lines


def _as_blocks(lines: list[str]) -> list[bytes]:
    """The lines as `inputs.iter_blocks` hands them to the batch API."""
    data = "".join(x + "\n" for x in lines).encode()
    return list(iter_blocks(io.BytesIO(data)))


def _always() -> str | None:
    return None


def _has_parse_batch() -> str | None:
    return None if hasattr(LineParser, "parse_batch") else \
        "LineParser has no parse_batch (the native batch API is not in this build): skipped"


@dataclass(frozen=True)
class Variant:
    key: str                                  # results: f"{key}_lines_per_s", ...
    label: str
    available: Callable[[], str | None]       # None when usable, else why not
    prepare: Callable[[list[str]], object]    # the input it takes, built outside the timing
    make: Callable[[LineParser], Callable]    # parser -> run(input)


VARIANTS = (
    Variant("streams", "streams in process: parse + to_doc + orjson", _always, _as_list, streams_loop),
    Variant("streams_batch", "streams native batch: parser.parse_batch(bytes) -> NDJSON",
            _has_parse_batch, _as_blocks, streams_batch_loop),
)


def check_batch_output(run, data: list[bytes], lines: list[str]) -> str | None:
    """The batch variant must give one JSON line per input line (checked once, untimed): per
    line of the bytes, or per non-empty one as `streams parse` (two corpus lines hold a
    newline, so the bytes have a few more lines than the list)."""
    got = sum(o.count(b"\n") for o in run(data))
    ok = {len(lines), sum(b.count(b"\n") for b in data), expected_docs(lines)}
    return None if got in ok else f"parse_batch gave {got} NDJSON lines for {len(lines)} input lines"


# -- baselines -------------------------------------------------------------------------------

def bare_re_loop():
    rx = re.compile(r"(\w{3} +\d+ [\d:]+|\S+) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)")
    dumps = orjson.dumps

    def run(lines):
        for line in lines:
            m = rx.match(line)
            dumps({"ts": m.group(1), "host": m.group(2), "prog": m.group(3), "msg": m.group(5)} if m else {"m": line})
    return run


# -- pygrok, given the equivalent grok patterns -----------------------------------------
_FIELD = re.compile(r"%\{(\w+):([\w@.\[\]-]+)((?::\w+)?)\}")
_ONIG = re.compile(r"\(\?<(?![=!])([\w@.\[\]-]+)>")


def _py_name(path: str) -> str:
    return re.sub(r"\W", "_", path.strip("[]").replace("][", "_"))


def pygrok_loop(parser: LineParser):
    from pygrok import Grok

    from streams.parse.native import pattern_data
    regexes, specs = pattern_data()
    defs = {}
    for name, regex in regexes.items():
        text = _FIELD.sub(lambda m: f"%{{{m.group(1)}:{_py_name(m.group(2))}{m.group(3)}}}", regex)
        defs[name] = _ONIG.sub(lambda m: f"(?P<{_py_name(m.group(1))}>", text)
    header = Grok(r"^(?:<%{NONNEGINT:pri}>)?(?:%{SYSLOGTIMESTAMP:ts}|%{TIMESTAMP_ISO8601:ts}) "
                  r"(?:%{SYSLOGHOST:hostname} )?%{PROG:program}(?:\[%{POSINT:pid:int}\])?:? %{GREEDYDATA:message}$",
                  custom_patterns=defs)
    own = Grok(r"^%{TIMESTAMP_ISO8601:ts} %{NOTSPACE:logger} *(?:\[%{POSINT:pid:int}\])? *: %{GREEDYDATA:message}$",
               custom_patterns=defs)
    by_program: dict[str, list] = {}
    for p in specs:
        groks = [Grok(f"^%{{{r['pattern']}}}$", custom_patterns=defs) for r in p["rules"]]
        for prog in p.get("programs") or ():
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


# -- syslog-ng: regexp-parser -> JSON on the same lines (its configuration: bench/syslog_ng.py)

def syslog_ng_share(out: Path, lines: list[str]) -> dict:
    """How many of syslog-ng's documents carry a field its patterns extracted (per product),
    and per corpus line (aligned by order: a line it read as two counts by its first part)."""
    docs = out.read_bytes().splitlines()
    per_product, json_docs, misaligned, matched_lines = Counter(), 0, 0, []
    i = 0
    for line in lines:
        pieces = [p for p in line.split("\n") if p]
        first = True
        for piece in pieces:
            if i >= len(docs):
                misaligned += 1
                break
            d = orjson.loads(docs[i])
            i += 1
            if (d.get("event") or {}).get("original") != piece.rstrip("\r"):   # it drops a CR before the LF
                misaligned += 1
            hit = next((p for p in SYSLOG_NG_PATTERNS if p in d), None)
            if hit:
                per_product[hit] += 1
            json_docs += "json" in d
            if first:
                matched_lines.append(hit)
                first = False
        if not pieces:
            matched_lines.append(None)
    return {"docs": len(docs), "matched_docs": sum(per_product.values()), "per_product": dict(per_product),
            "json_docs": json_docs, "misaligned": misaligned, "matched_lines": matched_lines}


def streams_share(parser: LineParser, lines: list[str]) -> tuple[dict, list[tuple[str | None, bool]]]:
    """Lines with a matched rule (the event names its rule), per dataset."""
    per_line, datasets, matched = [], Counter(), Counter()
    json_docs = 0
    for line in lines:
        ev = parser.parse(line)
        ds = ev.fields["event"].get("dataset")
        ok = ev.meta.get("rule") is not None
        per_line.append((ds, ok))
        datasets[ds] += 1
        matched[ds] += ok
        json_docs += ds in ("wazuh.alerts", "json") and "_jsonparsefailure" not in ev.tags
    return ({"lines": len(lines), "matched_rule": sum(matched.values()), "json_docs": json_docs,
             "per_dataset": {k: [matched[k], v] for k, v in datasets.most_common()}}, per_line)


STREAMS_DATASET = {"sshd": "sshd.log", "postfix": "postfix.log", "fail2ban": "fail2ban.log"}


def bench_syslog_ng(work: Path, lines: list[str], core: int | None, parser: LineParser,
                    alongside: dict[str, tuple[Callable, object]], repeat: int = 3) -> dict:
    """syslog-ng on `lines`, best of `repeat`; each of its runs followed by one pass of each
    streams variant in `alongside` (key -> (run, input)) so that the ratio compares passes
    made in the same minutes of this noisy machine."""
    work.mkdir(parents=True, exist_ok=True)
    corpus = write(work / "corpus.log", lines)
    n_docs = expected_docs(lines)
    one = write(work / "one.log", lines[:1])
    # start-up alone: until the one-line corpus is in the output file (best of `repeat`)
    starts = [run_syslog_ng(work / f"startup{i}", one, 1, core) for i in range(repeat)]
    startup = min(r["seconds"] for r in starts)
    startup_cpu = min(r["cpu_seconds"] for r in starts)
    runs, interleaved, interleaved_cpu = [], {}, {}
    for i in range(repeat):
        runs.append(run_syslog_ng(work / f"run{i}", corpus, n_docs, core))
        for key, (run, data) in alongside.items():
            wall, cpu = best_of_both(run, data, len(lines), repeat=1)
            interleaved[key] = max(interleaved.get(key, 0.0), wall)
            interleaved_cpu[key] = max(interleaved_cpu.get(key, 0.0), cpu)
    best = min(runs, key=lambda r: r["seconds"])
    best_cpu = min(r["cpu_seconds"] for r in runs)
    share = syslog_ng_share(best["out"], lines)
    version = syslog_ng_version()
    ours, per_line = streams_share(parser, lines)
    # the lines the syslog-ng patterns are for (streams' datasets of those products): the
    # share each side matched there
    same = {}
    for product, ds in STREAMS_DATASET.items():
        idx = [i for i, (d, _) in enumerate(per_line) if d == ds]
        same[product] = {"lines": len(idx),
                         "streams_matched": sum(per_line[i][1] for i in idx),
                         "syslog_ng_matched": sum(share["matched_lines"][i] == product for i in idx)}
    del share["matched_lines"]
    sec = best["seconds"]
    return {
        "version": version, "lines": len(lines), "docs_expected": n_docs, "docs_written": best["docs"],
        "seconds_best_of_3": round(sec, 4), "startup_seconds": round(startup, 4),
        "lines_per_s_wall": len(lines) / sec,
        "lines_per_s": len(lines) / max(sec - startup, 1e-9),
        "runs_seconds": [round(r["seconds"], 4) for r in runs],
        "cpu_seconds_best_of_3": best_cpu, "startup_cpu_seconds": startup_cpu,
        "lines_per_cpu_s": len(lines) / max(best_cpu - startup_cpu, 1e-9),
        "streams_interleaved_lines_per_s": interleaved,
        "streams_interleaved_lines_per_cpu_s": interleaved_cpu,
        "patterns": {p: len(v) for p, v in SYSLOG_NG_PATTERNS.items()} | {"fail2ban_own_log_head": 1},
        "share": share, "streams_share": ours, "same_lines": same,
        "pinned_core": core,
    }


# -- the CLI, its peak RSS ------------------------------------------------------------------
# `streams parse FILE > /dev/null` with its peak RSS (measure.DRIVER: VmHWM of the process itself).


def cli_run(path: Path, n: int) -> dict:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", DRIVER, "parse", "--year", "2026", str(path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sec = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"streams parse exited {p.returncode}: {p.stderr[-2000:]}")
    return {"lines": n, "seconds": round(sec, 3), "lines_per_s": n / sec, "peak_rss_mib": vmhwm_mib(p.stderr)}


# -- instructions per line (valgrind cachegrind) --------------------------------------------

def instr_child(variant_key: str, n: int, loop: int) -> None:
    """In a child under valgrind: the corpus of n lines, one pass over every distinct line
    (caches warm), then the variant over the first `loop` lines (n, or 0 for the baseline)."""
    v = next(x for x in VARIANTS if x.key == variant_key)
    base = mixed_lines()
    lines = scaled(base, n)
    parser = LineParser(year=2026)
    run = v.make(parser)
    run(v.prepare(base))
    data = v.prepare(lines[:loop])
    run(data)


def instructions(work: Path, variants: list[Variant], lines: list[str], n: int, do_sng: bool) -> dict:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind not found (apt-get install -y --no-install-recommends valgrind)"}
    res: dict = {"tool": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
                 + " --tool=cachegrind --cache-sim=no", "lines": n}
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for v in variants:
        ir = {}
        for loop in (n, 0):
            out = work / f"cg-{v.key}-{loop}.out"
            p = subprocess.run([*valgrind(out), sys.executable, __file__, "--instr-child", v.key, str(n), str(loop)],
                               env=env, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                res[f"{v.key}_skipped"] = f"exit {p.returncode}: {p.stderr[-500:]}"
                break
            ir[loop] = cachegrind_ir(out)
        else:
            res[f"{v.key}_per_line"] = (ir[n] - ir[0]) / n
            res[f"{v.key}_ir"] = {"with_lines": ir[n], "without": ir[0]}
    if do_sng:
        sub = lines[:n]
        ir = {}
        for k, part in ((n, sub), (0, [])):
            corpus = write(work / f"sng-{k}.log", part)
            r = run_syslog_ng(work / f"sng-cg-{k}", corpus, expected_docs(part), None,
                              wrapper=valgrind(work / f"cg-syslog-ng-{k}.out"), stall=VALGRIND_STALL)
            ir[k] = cachegrind_ir(work / f"cg-syslog-ng-{k}.out")
            res[f"syslog_ng_docs_{k}"] = r["docs"]
        res["syslog_ng_per_line"] = (ir[n] - ir[0]) / n
        res["syslog_ng_ir"] = {"with_lines": ir[n], "without": ir[0]}
        res["note"] = ("streams: the in-process loop only (no file read or write); syslog-ng: reading the file, "
                       "parsing, format-json and writing the output file (user-space instructions, all threads)")
    return res


# -- main ------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--no-pygrok", action="store_true")
    ap.add_argument("--native", action=argparse.BooleanOptionalAction, default=None,
                    help="the native batch variant (LineParser.parse_batch): default on when this build has it")
    ap.add_argument("--syslog-ng", action=argparse.BooleanOptionalAction, default=None,
                    help="the syslog-ng regexp-parser peer (default: on when .cache/syslog-ng-root holds it)")
    ap.add_argument("--cli-lines", type=int, default=None,
                    help="lines for `streams parse FILE > /dev/null` (default: --lines, the same corpus)")
    ap.add_argument("--rss", action="store_true", help="peak RSS of `streams parse` at 100k and 1M lines")
    ap.add_argument("--rss-10m", action="store_true", help="with --rss: also 10M lines (1.3 GB in /tmp)")
    ap.add_argument("--instructions", action="store_true", help="instructions per line (valgrind cachegrind)")
    ap.add_argument("--instr-lines", type=int, default=10_000)
    ap.add_argument("--instr-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.instr_child:
        instr_child(args.instr_child[0], int(args.instr_child[1]), int(args.instr_child[2]))
        return

    notes: list[str] = []
    cpus = os.sched_getaffinity(0)
    core = min(cpus)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {core})
        notes.append(f"not started pinned (taskset -c 0): pinned itself to core {core}")
    base = mixed_lines()
    lines = scaled(base, args.lines)
    near = scaled(near_miss(base), args.lines)
    parser = LineParser(year=2026)
    res: dict = {"lines": args.lines, "distinct_lines": len(base), "loadavg_at_start": os.getloadavg()}

    variants = []
    for v in VARIANTS:
        why = v.available()
        if v.key == "streams_batch" and args.native is False:
            why = "--no-native"
        if why is not None:
            res[f"{v.key}_skipped"] = why
            notes.append(f"{v.label}: {why}")
            continue
        variants.append(v)
    for v in variants:
        run = v.make(parser)
        data = v.prepare(lines)
        if v.key == "streams_batch" and (bad := check_batch_output(run, data, lines)):
            res[f"{v.key}_skipped"] = bad
            notes.append(f"{v.label}: {bad}")
            continue
        res[f"{v.key}_lines_per_s"], res[f"{v.key}_lines_per_cpu_s"] = best_of_both(run, data, len(lines))
        res[f"{v.key}_near_miss_lines_per_s"] = best_of(v.make(LineParser(year=2026)), v.prepare(near), len(near))
    res["bare_re_orjson_lines_per_s"] = best_of(bare_re_loop(), lines, len(lines))
    if not args.no_pygrok:
        res["pygrok_lines_per_s"] = best_of(pygrok_loop(parser), lines, len(lines))  # best of 3 as ours
        res["ratio_streams_to_pygrok"] = res["streams_lines_per_s"] / res["pygrok_lines_per_s"]
    res["near_miss_slowdown"] = res["streams_lines_per_s"] / res["streams_near_miss_lines_per_s"]

    sng_ok, _, sng_why = syslog_ng_available(SYSLOG_NG_MODULES)
    do_sng = args.syslog_ng if args.syslog_ng is not None else sng_ok is not None
    with tempfile.TemporaryDirectory(prefix="parse-bench-", dir="/tmp") as d:
        d = Path(d)
        if do_sng:
            try:
                alongside = {v.key: (v.make(parser), v.prepare(lines)) for v in variants
                             if f"{v.key}_lines_per_s" in res}
                sng = res["syslog_ng"] = bench_syslog_ng(d / "sng", lines, core, LineParser(year=2026), alongside)
                res["syslog_ng_lines_per_s"] = sng["lines_per_s"]
                res["syslog_ng_lines_per_cpu_s"] = sng["lines_per_cpu_s"]
                for key, rate in sng["streams_interleaved_lines_per_s"].items():
                    # streams' best pass among those made between syslog-ng's runs
                    res[f"ratio_{key}_to_syslog_ng"] = rate / sng["lines_per_s"]
                    res[f"ratio_{key}_to_syslog_ng_cpu"] = (sng["streams_interleaved_lines_per_cpu_s"][key]
                                                           / sng["lines_per_cpu_s"])
            except RuntimeError as e:
                res["syslog_ng"] = {"skipped": str(e)}
                notes.append(f"syslog-ng: {e}")
            shutil.rmtree(d / "sng", ignore_errors=True)
        else:
            res["syslog_ng"] = {"skipped": sng_why or "--no-syslog-ng"}
            notes.append(f"syslog-ng: {res['syslog_ng']['skipped']}")

        if args.cli_lines is None:
            cli = cli_run(write(d / "mixed.log", lines), len(lines))
        else:
            cli = cli_run(corpus_file(d, args.cli_lines), args.cli_lines)
        res["cli_lines_per_s"] = cli["lines_per_s"]
        res["cli"] = cli | {"startup_included": True}

        if args.rss:
            sizes = [100_000, 1_000_000] + ([10_000_000] if args.rss_10m else [])
            table = {}
            for n in sizes:
                f = corpus_file(d, n)
                table[str(n)] = cli_run(f, n)
                if n >= 10_000_000:
                    f.unlink()
            res["rss"] = table
        if args.instructions:
            measured = [v for v in variants if f"{v.key}_lines_per_s" in res]
            res["instructions"] = instructions(d, measured, lines, args.instr_lines,
                                               do_sng and "lines_per_s" in res.get("syslog_ng", {}))
    res["pinned_core"] = core
    res["loadavg_at_end"] = os.getloadavg()
    res["notes"] = notes

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parse.json").write_text(json.dumps(res, indent=2) + "\n")
    report(res)


def report(res: dict) -> None:
    for k, v in res.items():
        if isinstance(v, float):
            print(f"{k:38s} {v:>14,.2f}")
        elif isinstance(v, int):
            print(f"{k:38s} {v:>14,}")
    sng = res.get("syslog_ng", {})
    if "lines_per_s" in sng:
        s, o = sng["share"], sng["streams_share"]
        print(f"\nsyslog-ng ({sng['version']}), {sng['lines']:,} lines, {sng['docs_written']:,} documents written:")
        print(f"  {sng['lines_per_s']:,.0f} lines/s start-up ({sng['startup_seconds']:.3f} s) taken off; "
              f"{sng['lines_per_s_wall']:,.0f} lines/s with it (best of 3: {sng['runs_seconds']} s); "
              f"{sng['lines_per_cpu_s']:,.0f} lines per CPU-second (all its threads)")
        for v, rate in sng["streams_interleaved_lines_per_s"].items():
            cpu = sng["streams_interleaved_lines_per_cpu_s"][v]
            print(f"  {v} in the passes between syslog-ng's runs: {rate:,.0f} lines/s, {cpu:,.0f} per CPU-second")
            print(f"  ratio {v} / syslog-ng (goal >= 1.5x): {res[f'ratio_{v}_to_syslog_ng']:.2f}x wall-clock, "
                  f"{res[f'ratio_{v}_to_syslog_ng_cpu']:.2f}x CPU time")
        print(f"  syslog-ng's {sum(sng['patterns'].values())} patterns matched {s['matched_docs']:,} of {s['docs']:,} "
              f"documents ({s['matched_docs'] / max(s['docs'], 1):.1%}) {s['per_product']}; "
              f"JSON parsed {s['json_docs']:,}; misaligned {s['misaligned']}")
        print(f"  streams: a rule matched {o['matched_rule']:,} of {o['lines']:,} lines "
              f"({o['matched_rule'] / o['lines']:.1%}); JSON alerts {o['json_docs']:,}")
        for p, x in sng["same_lines"].items():
            print(f"  on the {x['lines']:,} {p} lines: streams matched {x['streams_matched'] / max(x['lines'], 1):.1%}, "
                  f"syslog-ng {x['syslog_ng_matched'] / max(x['lines'], 1):.1%}")
    cli = res.get("cli")
    if cli:
        print(f"\nstreams parse FILE > /dev/null, {cli['lines']:,} lines: {cli['lines_per_s']:,.0f} lines/s "
              f"(start-up included), peak RSS {cli['peak_rss_mib']} MiB")
    if "rss" in res:
        print("\npeak RSS of `streams parse FILE > /dev/null` (VmHWM):")
        print(f"  {'lines':>12} {'MiB':>8} {'lines/s':>10}")
        for n, r in res["rss"].items():
            print(f"  {int(n):>12,} {r['peak_rss_mib']:>8} {r['lines_per_s']:>10,.0f}")
    ins = res.get("instructions")
    if ins:
        print("\ninstructions per line:", json.dumps({k: v for k, v in ins.items() if k.endswith("per_line")
                                                     or k in ("skipped", "lines")}, indent=None))
    for n in res.get("notes", []):
        print("note:", n)


if __name__ == "__main__":
    main()
