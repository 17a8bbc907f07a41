#!/usr/bin/env python3
"""`streams replay` throughput and peak memory (whole pipeline: parse, GeoIP, bulk
NDJSON per dated index, Graphite metrics), at two input sizes to show memory stays flat.

    taskset -c 0 .venv/bin/python bench/replay_bench.py [--lines 1000000]

Uses the installed GeoLite2 City database when present (`streams[geolite]`), else
MaxMind's test database. Writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ROOT  # noqa: E402

from streams.enrich.geoip import default_city_database  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DRIVER = ("import resource, sys, json; from streams.cli import main; rc = main(sys.argv[1:]); "
          "sys.stderr.write(json.dumps({'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}) + '\\n'); "
          "sys.exit(rc)")


def run(path: Path, out: Path, extra: list[str]) -> dict:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", DRIVER, "replay", "-q", "--no-progress", "--year", "2026",
                        "-o", str(out), *extra, str(path)], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    rss = json.loads(p.stderr.strip().splitlines()[-1])["maxrss_kib"]
    summary = json.loads((out / "summary.json").read_text())
    return {"seconds": round(elapsed, 2), "lines_per_s": round(summary["lines"] / elapsed),
            "peak_rss_mib": round(rss / 1024, 1), "events": summary["events"],
            "geoip_hit_rate": (summary.get("geoip_cache") or {}).get("hit_rate")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    db = default_city_database() or ROOT / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
    res: dict = {"geoip_database": str(db)}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for n in (args.lines // 10, args.lines):
            f = d / f"mixed-{n}.log"
            subprocess.run([sys.executable, str(Path(__file__).parent / "corpus.py"), str(n), str(f)], check=True)
            res[f"geoip_{n}"] = run(f, d / f"out-geo-{n}", ["--geoip-city", str(db)])
            res[f"nogeoip_{n}"] = run(f, d / f"out-nogeo-{n}", ["--no-geoip"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
