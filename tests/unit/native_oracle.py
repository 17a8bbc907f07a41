"""The oracle for the native parse core: the Python parser (`LineParser`) and the native
one (`streams._native.Parser`) read the same lines in the same order (correlation state
and continuations depend on it) and must make the same documents, key order aside.

Run alone for a report: `python tests/unit/native_oracle.py [PRODUCT-OR-RULE ...]`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import orjson
import yaml

from streams import SAMPLES_DIR
from streams.clock import ManualClock
from streams.inputs import decode_line
from streams.parse.dispatch import LineParser
from streams.parse.native import native_parser

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = 1_795_000_000.0  # 2026-11-18: samples of 2026 get their year guessed as this one


def corpus() -> list[tuple[str, list[str]]]:
    """(name, lines) of each sample case, sample log and text corpus under tests/data."""
    out = []
    for p in sorted((SAMPLES_DIR / "cases").rglob("*.yaml")):
        out.append((str(p.relative_to(SAMPLES_DIR)), [yaml.safe_load(p.read_text(encoding="utf-8"))["line"]]))
    files = sorted((SAMPLES_DIR / "logs").iterdir()) + sorted(p for p in DATA.rglob("*") if p.is_file())
    for path in files:
        if path.suffix in (".mmdb", ".md", ".gz") or path.name.startswith(("LICENSE", "COPYING")):
            continue
        lines = [decode_line(raw)[0] for raw in path.read_bytes().split(b"\n")]
        out.append((str(path), [x for x in lines if x and not x.isspace()]))
    return out


def _norm(doc: dict) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def compare(groups, year=None, tz=None):
    """[(name, line, python doc, native doc)] of every line whose documents differ, and
    the number of lines compared."""
    clock = ManualClock(NOW)
    py = LineParser(year=year, timezone=tz, clock=clock)
    nat = native_parser(year=year, timezone=tz, clock=clock)
    diffs = []
    n = 0
    for name, lines in groups:
        py.new_input()
        nat.new_input()
        for line in lines:
            n += 1
            want = py.parse(line)
            want_doc = want.to_doc()
            fields, message, tags, rule = nat.parse(line)
            if message is not None:
                fields["message"] = message
            if tags:
                fields["tags"] = tags
            if _norm(want_doc) != _norm(fields):
                diffs.append((name, line, want_doc, fields, want.meta.get("rule")))
    return diffs, n


def _delta(a, b, prefix=""):
    out = []
    keys = list(dict.fromkeys([*(a or {}), *(b or {})]))
    for k in keys:
        x, y = (a or {}).get(k, "<absent>"), (b or {}).get(k, "<absent>")
        if isinstance(x, dict) and isinstance(y, dict):
            out += _delta(x, y, f"{prefix}{k}.")
        elif orjson.dumps(x) != orjson.dumps(y):
            out.append(f"{prefix}{k}: python={orjson.dumps(x).decode()[:200]} native={orjson.dumps(y).decode()[:200]}")
    return out


def main(argv: list[str]) -> int:
    diffs, n = compare(corpus())
    if argv:
        diffs = [d for d in diffs if any(a in (d[4] or "") or a in d[0] or
                                         a in str((d[2].get("event") or {}).get("dataset")) for a in argv)]
    by = Counter((d[2].get("event") or {}).get("dataset") for d in diffs)
    print(f"{n} lines compared, {len(diffs)} differ; by dataset: {dict(by.most_common())}")
    for name, line, want, got, rule in diffs[:40]:
        print(f"\n{name}: rule {rule}\n  {line[:300]}")
        for d in _delta(want, got)[:12]:
            print("   ", d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
