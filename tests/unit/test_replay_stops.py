"""`streams replay` stopping early: an output that takes nothing (a closed port: a real
socket, no server), SIGINT/SIGTERM. Each case ends in a few log lines, a documented exit
code, a summary and graphite.txt; never a traceback, never a wait without end."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from streams import SAMPLES_DIR

AUTH = SAMPLES_DIR / "logs" / "auth.log"
LIVENESS = 60   # seconds: a bound on hanging, not a measure of speed


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # nothing listens there once closed


def replay(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", "-q", "--no-progress", "--no-geoip",
                             "--year", "2026", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logs(err: str) -> list[dict]:
    assert "Traceback" not in err, err
    return [json.loads(x) for x in err.splitlines()]


def wait_log(p: subprocess.Popen, words: str) -> list[str]:
    """stderr lines up to the first holding `words` (the process keeps running)."""
    assert p.stderr is not None
    seen = []
    deadline = time.monotonic() + LIVENESS
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return seen
    raise AssertionError(f"no log line with {words!r}: {seen}")


def test_an_unreachable_elasticsearch_is_given_up_after_the_stall_timeout(tmp_path):
    # it used to wait for ever, saying "waiting..." every 10 s
    out = tmp_path / "out"
    p = replay("--stall-timeout", "1", "-o", str(out), "--to", "elasticsearch", f"127.0.0.1:{closed_port()}",
               str(AUTH))
    _, err = p.communicate(timeout=LIVENESS)
    assert p.returncode == 3
    errors = [d for d in logs(err) if d["level"] == "error"]
    assert "took no document for 1 s" in errors[-1]["msg"] and str(out / "spool") in errors[-1]["msg"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == 1705 and summary["output_failures"] == [errors[-1]["msg"]]
    assert summary["elasticsearch"]["left_in_spool_bytes"] > 0 and (out / "graphite.txt").stat().st_size > 0
    assert list((out / "spool" / "elasticsearch").glob("*.spool"))


def test_an_unreachable_carbon_is_given_up_and_its_points_are_in_graphite_txt(tmp_path):
    out = tmp_path / "out"
    port = closed_port()
    p = replay("--stall-timeout", "1", "-o", str(out), "--to", "graphite", f"127.0.0.1:{port}", str(AUTH))
    _, err = p.communicate(timeout=LIVENESS)
    assert p.returncode == 3
    failure = json.loads((out / "summary.json").read_text())["output_failures"]
    assert len(failure) == 1 and f"carbon 127.0.0.1:{port} took no point for 1 s" in failure[0]
    assert logs(err)[-1]["msg"] == failure[0]
    assert len((out / "graphite.txt").read_text().splitlines()) == json.loads(
        (out / "summary.json").read_text())["metric_points"] > 0


def test_sigint_while_waiting_for_elasticsearch_stops_cleanly(tmp_path):
    # Ctrl-C used to print a KeyboardInterrupt traceback and write no summary
    out = tmp_path / "out"
    p = replay("-o", str(out), "--to", "elasticsearch", f"127.0.0.1:{closed_port()}", str(AUTH))
    wait_log(p, "unreachable")
    # the sender says so as it starts, maybe before a line was read: wait for spooled events
    spool = out / "spool" / "elasticsearch"
    deadline = time.monotonic() + LIVENESS
    while not any(f.stat().st_size for f in spool.glob("*.spool")) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=LIVENESS)
    assert p.returncode == 130
    last = logs(err)[-1]
    assert last["msg"].startswith("interrupted by SIGINT") and "spool" in last["msg"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGINT" and 0 < summary["events"] <= 1705
    assert summary["events"] == summary["lines"] - summary["empty"] == summary["elasticsearch"]["spooled"]
    assert (out / "graphite.txt").stat().st_size > 0


def test_sigterm_while_reading_a_quiet_fifo_stops_and_keeps_what_was_read(tmp_path):
    # SIGTERM used to kill the replay silently (143, no summary); a FIFO whose writer says
    # nothing more keeps the replay waiting in read(): the signal must still stop it
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    p = replay("-o", str(out), str(fifo))
    writer = os.open(fifo, os.O_WRONLY)   # waits for the replay to open it
    try:
        data = AUTH.read_bytes()[:20_000]
        data = data[: data.rfind(b"\n") + 1]
        os.write(writer, data)
        deadline = time.monotonic() + LIVENESS
        # until the replay has read it all and waits in the next read
        while (_unread(writer) or not _waits_on_a_pipe(p.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=LIVENESS)
    finally:
        os.close(writer)
    assert p.returncode == 143
    assert logs(err)[-1]["msg"].startswith("interrupted by SIGTERM")
    summary = json.loads((out / "summary.json").read_text())
    n = data.count(b"\n")
    assert summary["interrupted"] == "SIGTERM" and summary["lines"] == summary["events"] == n
    written = b"".join(f.read_bytes() for f in (out / "elasticsearch").glob("*.ndjson"))
    assert len(written.splitlines()) == 2 * n and (out / "graphite.txt").stat().st_size > 0


def _waits_on_a_pipe(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:   # no /proc: the test only loses its precision
        time.sleep(2)
        return True


def _unread(fd: int) -> int:
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def test_a_second_signal_exits_at_once(tmp_path):
    code = ("import os, signal, time\n"
            "from streams.telemetry import setup_logging\n"
            "from streams.commands.stopping import stopping\n"
            "setup_logging()\n"
            "with stopping() as stop:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    assert stop.signal == 'SIGINT'\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(" + str(LIVENESS) + ")\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LIVENESS)
    assert r.returncode == 143 and "second signal (SIGTERM)" in logs(r.stderr)[-1]["msg"]


def test_the_next_replay_delivers_what_a_given_up_one_left_in_the_spool(tmp_path):
    """What exit 3 promises: the spool is kept, and the next replay with this output folder
    sends it first (here checked up to the spool's read side: a real server is the
    integration test's)."""
    from streams.sinks.spool import Spool
    out = tmp_path / "out"
    p = replay("--stall-timeout", "0.5", "-o", str(out), "--to", "elasticsearch", f"127.0.0.1:{closed_port()}",
               str(AUTH))
    p.communicate(timeout=LIVENESS)
    assert p.returncode == 3
    spool = Spool(out / "spool" / "elasticsearch")
    records, _ = spool.read(10_000, 1 << 30)
    assert len(records) == 1705
    spool.close()


def test_replay_exit_codes_are_documented():
    from streams import cli
    for code in ("3 an output could not take the events", "130/143"):
        assert code in " ".join(cli.__doc__.split())
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "3 an output could not take the events" in " ".join(readme.split())
