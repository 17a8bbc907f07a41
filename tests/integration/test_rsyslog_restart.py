"""No loss under a restart (issue 3, item 6), with a real sender: a private rsyslogd reads
N numbered lines with imfile and relays them with omrelp (an action queue that retries
forever) to `python -m streams.cli run` on a fixed RELP port; the server is restarted twice
(SIGTERM, exit 0, started again on the same port) while rsyslog is sending. Afterwards every
number is in the output NDJSON; duplicates are allowed, counted and printed.

The lines are appended to rsyslog's input file at a steady pace (the whole file in about
`PRODUCE_SECONDS`), so both restarts fall while lines still flow however fast the server is:
written at once, the file was all relayed before the first restart had ended once the
pipeline ran natively.

The test runs 20,000 lines (seconds); `bench/restart_bench.py` runs the same scenario at the
full 100,000.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from . import LISTENERS, RunProcess
from .test_real_senders import rsyslog_module, rsyslogd

N = 20_000
PRODUCE_SECONDS = 5.0   # how long the input file takes to be written
NUMBER = re.compile(rb'"original":\s*"Nov 24 00:00:00 host app\[1\]: msg (\d+)"')


def produce(path: Path, count: int, seconds: float = PRODUCE_SECONDS) -> None:
    """Append the numbered lines to `path` in steps, `count` of them over about `seconds`."""
    steps = 50
    per = -(-count // steps)
    with path.open("a") as f:
        for start in range(0, count, per):
            f.write("".join(f"Nov 24 00:00:00 host app[1]: msg {i}\n" for i in range(start, min(start + per, count))))
            f.flush()
            time.sleep(seconds / steps)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(out: Path, relp_port: int) -> str:
    parts = [f"[listeners.{n}]\nport = {relp_port if n == 'relp' else 0}\n" for n in LISTENERS]
    parts.append(f"[output]\ndir = {json.dumps(str(out))}\n")
    parts.append("[geoip]\nenabled = false\n")
    return "\n".join(parts)


def written(out: Path) -> int:
    """Documents in the output so far (complete lines only; two lines per document)."""
    total = 0
    for f in (out / "elasticsearch").glob("*.ndjson"):
        data = f.read_bytes()
        total += data.count(b"\n") // 2
    return total


def numbers(out: Path) -> Counter:
    got: Counter = Counter()
    for f in (out / "elasticsearch").glob("*.ndjson"):
        got.update(int(m) for m in NUMBER.findall(f.read_bytes()))
    return got


def run_scenario(tmp_path: Path, count: int, deadline_s: float = 90.0) -> dict:
    """Send `count` lines through rsyslog -> RELP -> `streams run`, restarting the server when 30 %
    and 60 % of them were written; returns what happened (raises when a number is missing)."""
    rsyslog_module("omrelp", "rsyslog-relp")
    N = count
    RESTART_AT = (N * 3 // 10, N * 6 // 10)     # documents written when each restart begins
    DEADLINE = deadline_s
    t0 = time.monotonic()
    out = tmp_path / "out"
    cfg = tmp_path / "streams.toml"
    port = free_port()
    cfg.write_text(config(out, port))
    src = tmp_path / "input.log"
    src.write_text("")
    producer = threading.Thread(target=produce, args=(src, N), daemon=True)
    body = (f'module(load="omrelp")\n'
            f'template(name="line" type="string" string="%rawmsg%")\n'
            f'input(type="imfile" File="{src}" Tag="app" ruleset="relp")\n'
            f'ruleset(name="relp") {{\n'
            f'  action(type="omrelp" target="127.0.0.1" port="{port}" template="line" windowSize="1024"\n'
            f'         action.resumeRetryCount="-1" action.resumeInterval="1"\n'
            f'         queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="1024")\n'
            f'}}')
    procs: list[RunProcess] = []
    restarts: list[tuple[int, float]] = []        # (documents written at SIGTERM, seconds down)
    try:
        procs.append(RunProcess(cfg, out))
        assert procs[-1].ports["relp"] == port
        with rsyslogd(tmp_path, body) as rs:
            producer.start()
            deadline = t0 + DEADLINE
            pending = list(RESTART_AT)
            got: Counter = Counter()
            while True:
                rs.alive()
                n = written(out)
                if pending and n >= pending[0]:
                    pending.pop(0)
                    down = time.monotonic()
                    assert procs[-1].terminate() == 0, f"exit code; log: {procs[-1].seen[-5:]}"
                    procs.append(RunProcess(cfg, out))
                    restarts.append((n, round(time.monotonic() - down, 2)))
                    continue
                if not pending and n >= N:
                    got = numbers(out)
                    if len(got) == N:
                        break
                if time.monotonic() > deadline:
                    got = numbers(out)
                    missing = sorted(set(range(N)) - set(got))
                    raise AssertionError(f"after {DEADLINE}s {len(missing)} of {N} missing (first "
                                         f"{missing[:10]}); restarts {restarts}; rsyslog:\n{rs.output()}")
                time.sleep(0.05)
        assert procs[-1].terminate() == 0
    finally:
        for p in procs:
            p.kill()
    got = numbers(out)
    elapsed = time.monotonic() - t0
    dups = sum(got.values()) - N
    assert len(restarts) == 2, f"restarts: {restarts}"
    assert all(n < N for n, _ in restarts), f"a restart came after rsyslog had finished: {restarts}"
    assert set(got) == set(range(N)), f"missing {sorted(set(range(N)) - set(got))[:10]}"
    return {"lines": N, "seconds": round(elapsed, 2), "restarts": restarts, "duplicates": dups,
            "missing": N - len(got)}


def test_rsyslog_relp_survives_two_restarts(tmp_path):
    res = run_scenario(tmp_path, N)
    assert res["missing"] == 0
    print(f"\n{res['lines']} lines over RELP in {res['seconds']}s with restarts at (docs, seconds down) "
          f"{res['restarts']}; duplicates {res['duplicates']}")
