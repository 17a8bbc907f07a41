"""Metrics into a real carbon-cache through the pipelines (issue 5): the samples replayed
with `--to graphite` land in whisper with the counts the file output holds; `streams run`
keeps sending while carbon restarts, and nothing is missing afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import TIMEOUT, LiveServer, make_config, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "logs"


def recent_copy(src: Path, dst: Path, end: datetime) -> Path:
    """`src` (a Fail2ban log) with every line's time moved by one offset, a whole number of
    minutes, so that its last line is at `end`: carbon keeps a point only while its schema's
    retention covers it, so what the test replays must not age with the sample file."""
    fmt = "%Y-%m-%d %H:%M:%S"
    lines = src.read_text().splitlines(keepends=True)
    last = max(datetime.strptime(line[:19], fmt) for line in lines)
    shift = timedelta(minutes=(end - last) // timedelta(minutes=1))
    dst.write_text("".join((datetime.strptime(line[:19], fmt) + shift).strftime(fmt) + line[19:]
                           for line in lines))
    return dst


def replay(out: Path, log: Path, *extra: str) -> None:
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--no-progress", "-q",
                        "--no-geoip", "--output", str(out), *extra, str(log)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_replay_metrics_land_in_whisper(tmp_path, carbon):
    # the samples' two days, ending an hour ago (naive times are read as UTC): inside the test
    # carbon's 7-day retention whatever the day the test runs
    an_hour_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    log = recent_copy(SAMPLES / "fail2ban.log", tmp_path / "fail2ban.log", an_hour_ago)
    replay(tmp_path / "files", log)
    want: dict[str, dict[int, float]] = defaultdict(dict)
    for line in (tmp_path / "files" / "graphite.txt").read_text().splitlines():
        path, value, ts = line.split()
        want[path][int(ts)] = float(value)
    replay(tmp_path / "carbon", log, "--to", "graphite", f"{carbon.host}:{carbon.port}")
    assert not (tmp_path / "carbon" / "graphite.txt").exists()
    jails = [p for p in want if ".jail." in p]
    assert len(jails) >= 3
    for path in [*jails[:5], next(p for p in want if p.endswith(".events"))]:
        first, last = min(want[path]), max(want[path])
        got = dict(carbon.wait_points(path, first - 60, last + 60, count=len(want[path])))
        assert got == want[path], path


def test_run_sends_metrics_through_a_carbon_restart(tmp_path, carbon):
    cfg = make_config(tmp_path / "out")
    cfg.output.graphite.address = f"{carbon.host}:{carbon.port}"
    cfg.output.graphite.flush_seconds = 0.2
    cfg.metrics.flush_seconds = 1
    cfg.metrics.telemetry = False
    host = f"carbontest{int(time.time())}"
    sent = 0
    t0 = time.time()
    with LiveServer(cfg) as server:
        with socket.create_connection(("127.0.0.1", server.port("syslog_tcp")), timeout=TIMEOUT) as s:
            def send_for(seconds: float) -> None:
                nonlocal sent
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    s.sendall(f"<38>Nov 24 10:00:00 {host} sshd[9]: Failed password for root from 81.2.69.160 "
                              f"port {sent} ssh2\n".encode())
                    sent += 1
                    time.sleep(0.05)

            send_for(3)
            restart = threading.Thread(target=carbon.restart)
            restart.start()
            send_for(4)
            restart.join(60)
            send_for(2)
        wait_for(lambda: server.metrics()["listeners"]["syslog_tcp"]["received"] == sent, what="every line read")
        # the restart was seen: the sink reconnected (and resent what carbon may not have stored)
        assert wait_for(lambda: server.metrics()["sinks"]["carbon"]["reconnects"] >= 1, what="a reconnect")
    # after the graceful stop every point was handed over; carbon writes them within a second or two
    path = f"streams.{host}.sshd_log.events"
    total = lambda: sum(v for _, v in carbon.fetch(path, t0 - 5, time.time() + 5))  # noqa: E731
    wait_for(lambda: total() == sent, timeout=20, what=f"{sent} events counted in whisper (have {total()})")
