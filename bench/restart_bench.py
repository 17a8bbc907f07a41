#!/usr/bin/env python3
"""No loss under restarts at full size (issue 3, item 6): rsyslogd (imfile -> omrelp) sends
100,000 numbered lines to `streams run`, which is restarted twice while they flow; every
number must come out. The same scenario as tests/integration/test_rsyslog_restart.py,
which runs it at 20,000 lines.

    .venv/bin/python bench/restart_bench.py [--lines 100000]

Prints the result and writes bench/results/restart.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.integration.test_rsyslog_restart import run_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds for every line to come out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = run_scenario(Path(d), args.lines, args.deadline)
    res["lines_per_s"] = round(res["lines"] / res["seconds"], 1)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "restart.json").write_text(json.dumps(res, indent=2) + "\n")
    for k, v in res.items():
        print(f"{k:12s} {v}")


if __name__ == "__main__":
    main()
