#!/usr/bin/env python3
"""Points/s into a real carbon-cache (deploy/dev/carbon, started here on a fresh free port and
removed at the end) through `streams.sinks.carbon.CarbonSink`, side by side with a plain socket
writer of the same lines (pre-formatted, `sock.sendall` in 1 MB chunks), in the same run.

Carbon acknowledges nothing, so three times are taken for each writer:
- `call`: the caller's side: the sink's `send()` calls (formatting included; lists of 1000
  points, as the pipeline hands them over); for the plain writer, 0 (its lines are ready);
- `kernel`: until every byte was handed to the kernel (the sink: `unwritten == 0`);
- `read`: until carbon had READ every line: the writer half-closes, and carbon closes its side
  only after reading everything before our FIN (the sink's `close()` does just that).
Then every point is read back from the whisper files (`landed`), once carbon wrote them.
Our sink over UDP is measured too (no end marker there: `read` is not measured; `landed` shows
what the kernel and carbon kept).

Carbon runs on core 1, this process (writer and the sink's thread) on core 0. Each writer runs
`--repeat` times on its own window of timestamps (1-second points of the last hours, one
whisper file per metric, created before the timing); the best run is reported.

    .venv/bin/python bench/carbon_bench.py [--points 200000] [--metrics 100] [--repeat 3]

Prints a table and writes bench/results/carbon.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import whisper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from streams.protocols.graphite import format_line  # noqa: E402
from streams.sinks.carbon import CarbonSettings, CarbonSink  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SCRIPT = ROOT / "deploy" / "dev" / "carbon"
CHUNK = 1 << 20
Points = list[tuple[str, float, int]]


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (carbon listens on both)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class Carbon:
    def __init__(self, run_dir: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "CARBON_RUN_DIR": str(run_dir)}
        self.whisper_dir = run_dir / "whisper"

    def _script(self, *args: str, pin: bool = False) -> None:
        cmd = ["bash", str(SCRIPT), *args, str(self.port)]
        if pin and (os.cpu_count() or 1) > 1:
            cmd = ["taskset", "-c", "1", *cmd]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True, text=True, timeout=600)

    def start(self) -> None:
        self._script("start", pin=True)

    def clean(self) -> None:
        self._script("clean")

    def fetch(self, metric: str, start: int, end: int) -> list[float | None]:
        f = self.whisper_dir.joinpath(*metric.split(".")).with_suffix(".wsp")
        if not f.exists():
            return []
        (_s, _e, _step), values = whisper.fetch(str(f), start - 1, end)
        return values


def make_points(metrics: list[str], base: int, per_metric: int) -> Points:
    """Time-major, as a pipeline's flush produces them; value = the second's offset + metric no."""
    return [(m, float(j * 1000 + k), base + j) for j in range(per_metric) for k, m in enumerate(metrics)]


def landed(carbon: Carbon, metrics: list[str], base: int, per_metric: int, timeout: float = 120) -> int:
    """Points of this window found in whisper with their value, once all are there or the count
    stopped growing for 5 s (carbon's writer drains its cache about once a second)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        found = 0
        for k, m in enumerate(metrics):
            values = carbon.fetch(m, base, base + per_metric)
            found += sum(1 for j, v in enumerate(values[:per_metric]) if v == j * 1000 + k)
        now = time.monotonic()
        if found != last:
            last, since = found, now
        if found >= len(metrics) * per_metric or now > deadline or now - since > 5:
            return found
        time.sleep(0.5)


def wait_eof(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(300)
    while sock.recv(65536):
        pass


def plain_writer(port: int, pts: Points) -> dict[str, float]:
    data = b"".join(format_line(p, v, t) for p, v, t in pts)       # ready before the clock starts
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    gc.collect()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        for c in chunks:
            s.sendall(c)
        t_kernel = time.perf_counter()
        wait_eof(s)
    t_read = time.perf_counter()
    return {"call": 0.0, "kernel": t_kernel - t0, "read": t_read - t0, "bytes": len(data)}


def sink_writer(port: int, pts: Points, protocol: str = "tcp") -> dict[str, float]:
    sink = CarbonSink(CarbonSettings(port=port, protocol=protocol, buffer_max_points=len(pts) + 1))
    lists = [pts[i:i + 1000] for i in range(0, len(pts), 1000)]
    gc.collect()
    t0 = time.perf_counter()
    for chunk in lists:
        sink.send(chunk)
    t_call = time.perf_counter()
    while sink.unwritten:
        time.sleep(0.0005)
    t_kernel = time.perf_counter()
    ok = sink.close(300)
    t_read = time.perf_counter()
    st = dict(sink.stats)
    assert ok and st["sent"] == len(pts) and st["dropped"] == st["failed"] == 0, st
    out = {"call": t_call - t0, "kernel": t_kernel - t0, "read": t_read - t0, "batches": st["batches"],
           "retried": st["retried"], "errors": st["errors"]}
    if protocol == "udp":
        del out["read"]
    return out


def measure(carbon: Carbon, name: str, run: Callable[[int, Points], dict], metrics: list[str],
            per_metric: int, windows: list[int]) -> dict:
    best: dict | None = None
    land = []
    for base in windows:
        r = run(carbon.port, make_points(metrics, base, per_metric))
        land.append(landed(carbon, metrics, base, per_metric))
        if best is None or r["kernel"] < best["kernel"]:
            best = r
    assert best is not None
    n = len(metrics) * per_metric
    out = {"points": n, "runs": len(windows), **{k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()}}
    for k in ("call", "kernel", "read"):
        if best.get(k):
            out[f"{k}_points_per_s"] = round(n / best[k])
    out["landed_min"] = min(land)
    out["landed_all_runs"] = f"{sum(land)}/{n * len(windows)}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--metrics", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-udp", action="store_true")
    args = ap.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    per_metric = args.points // args.metrics
    writers: list[tuple[str, Callable[[int, Points], dict]]] = [
        ("plain_socket", plain_writer), ("sink_tcp", sink_writer)]
    if not args.no_udp:
        writers.append(("sink_udp", lambda port, pts: sink_writer(port, pts, "udp")))
    span = per_metric + 10
    needed = span * args.repeat * len(writers)
    if needed > 6 * 3600 - 600:
        sys.exit(f"{needed} s of 1-second points do not fit in the 6 h of streams.* retention: fewer points")
    now = int(time.time())
    first = now - needed - 60
    metrics = [f"streams.bench.carbon.m{k:03d}" for k in range(args.metrics)]
    res: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "carbon_pinned": (os.cpu_count() or 1) > 1,
                 "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                 "command": "bench/carbon_bench.py " + " ".join(sys.argv[1:]),
                 "points": per_metric * args.metrics, "metrics": args.metrics, "repeat": args.repeat,
                 "sink_settings": {"batch_size": CarbonSettings().batch_size, "confirm_seconds": CarbonSettings().confirm_seconds}}
    with tempfile.TemporaryDirectory(prefix="carbon-bench-") as d:
        carbon = Carbon(Path(d))
        carbon.start()
        try:
            # whisper files created before any timing (carbon creates them in its writer thread)
            with socket.create_connection(("127.0.0.1", carbon.port)) as s:
                s.sendall(b"".join(format_line(m, 0, first - 30) for m in metrics))
                wait_eof(s)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(carbon.fetch(m, first - 31, first - 29) for m in metrics):
                time.sleep(0.2)
            for w, (name, fn) in enumerate(writers):
                windows = [first + (w * args.repeat + r) * span for r in range(args.repeat)]
                res[name] = measure(carbon, name, fn, metrics, per_metric, windows)
        finally:
            carbon.clean()
    p, s = res["plain_socket"], res["sink_tcp"]
    res["sink_tcp_vs_plain_kernel"] = round(p["kernel"] / s["kernel"], 3)
    res["sink_tcp_vs_plain_read"] = round(p["read"] / s["read"], 3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "carbon.json").write_text(json.dumps(res, indent=2) + "\n")

    print(f"{res['points']:,} points, {args.metrics} metrics, best of {args.repeat}; carbon-cache on core 1")
    def num(v: object) -> str:
        return f"{v:,}" if isinstance(v, int) and v else "-"

    print(f"{'writer':14s} {'call pts/s':>12s} {'kernel pts/s':>13s} {'read pts/s':>12s} {'landed':>17s}")
    for name, _ in writers:
        r = res[name]
        print(f"{name:14s} {num(r.get('call_points_per_s')):>12s} {num(r['kernel_points_per_s']):>13s} "
              f"{num(r.get('read_points_per_s')):>12s} {r['landed_all_runs']:>17s}")
    print(f"sink_tcp / plain: {res['sink_tcp_vs_plain_kernel']:.2f} (to kernel), "
          f"{res['sink_tcp_vs_plain_read']:.2f} (read by carbon)")


if __name__ == "__main__":
    main()
