#!/usr/bin/env python3
"""The native grok matcher (streams._native) against the Python one, per message, on
the messages of tests/unit/test_native_grok.py (each product parser's messages of the
sample cases, sample logs and corpora) and their near misses. Run pinned to one core:

    taskset -c 1 .venv/bin/python bench/native_grok_bench.py [--rounds 20]

Python: `ProductParser.matcher.match(msg, {})` (a KeyedAlternation: narrowed by the
message's first characters, then one `re` call and the generated fill function).
Native: `GrokMatcher.match(msg)` (PCRE2 JIT, the fields built as Python dicts).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.unit.test_native_grok import near_miss, setup  # noqa: E402


def best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20, help="passes over the messages per timing")
    args = ap.parse_args()
    lp, _, native, messages = setup()
    for label, msgs in (("matching corpus", messages), ("near misses", [(n, near_miss(m)) for n, m in messages])):
        py = [(lp.by_name[n].matcher.match, m) for n, m in msgs]
        nat = [(native[n].match, m) for n, m in msgs]

        def run_py(py=py):
            for _ in range(args.rounds):
                for match, m in py:
                    match(m, {})

        def run_native(nat=nat):
            for _ in range(args.rounds):
                for match, m in nat:
                    match(m)

        calls = len(msgs) * args.rounds
        tp, tn = best_of(run_py) / calls * 1e6, best_of(run_native) / calls * 1e6
        print(f"{label:16} {len(msgs):5} messages: python {tp:.2f} µs, native {tn:.2f} µs per message "
              f"({tp / tn:.2f}x)")
    print("chunks per parser (PCRE2 size limit):", {n: m.chunks for n, m in native.items() if m.chunks > 1})


if __name__ == "__main__":
    main()
