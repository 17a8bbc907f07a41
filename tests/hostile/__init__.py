"""Attacks on a real `streams run` (a subprocess on 127.0.0.1), as an unauthenticated client
or a careless operator would make them, each bounded in time and load.

Every test runs its attack while a `Probe` keeps doing what a real sender and a monitor do:
an established RELP session sends a message and times its ack, and `/health` is asked and
timed. The tests assert that the process survives, that its memory stays bounded, that
those latencies stay within a liveness bound (seconds, where the reported failures were
tens of seconds or never; not a performance figure), that every acked message is in the
output, and that its log stays small. The figures each test measured are printed (`-s`)
and are the ones in the README's "Limits and hardening".
"""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration import RunProcess, config_toml, read_docs, wait_for
from tests.integration.test_run_relp import RelpClient

# seconds: /health and a RELP ack must answer within this during an attack. A liveness bound
# (the reported failures were 6.6 s to never), not a speed figure: normal answers take ms
LIVENESS = 10.0


def raise_own_fd_limit() -> None:
    """The attacks open thousands of sockets from the test process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


class Target(RunProcess):
    """`streams run` with every listener on a free port, GeoIP off, and `extra` TOML."""

    def __init__(self, tmp: Path, extra: str = "", prefix: tuple[str, ...] = ()) -> None:
        out = tmp / "out"
        cfg = tmp / "streams.toml"
        cfg.write_text(config_toml(out) + "\n" + extra)
        super().__init__(cfg, out, prefix)

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def peak_rss(self) -> float:
        return rss_mb(self.proc.pid, "VmHWM")

    def health(self, timeout: float = 30.0) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/health", timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def log_lines(self) -> list[dict]:
        """Every line written to stderr so far (after a short wait for the pump)."""
        time.sleep(0.3)
        while not self.logs.empty():
            self.seen.append(self.logs.get_nowait())
        return self.seen

    def docs(self) -> list[dict]:
        return [d for _, d in read_docs(self.out)]

    def stop(self) -> int:
        rc = self.terminate()
        self.log_lines()
        return rc


class Probe:
    """A real sender and a monitor during the attack: an established RELP session sends a
    numbered message and waits for its ack, and /health is asked, each every `every` s."""

    def __init__(self, target: Target, tag: str, every: float = 0.2) -> None:
        self.target, self.tag, self.every = target, tag, every
        self.client = RelpClient(target.ports["relp"])
        self.client.sock.settimeout(60)
        self.client.open()
        self.acked: list[str] = []
        self.ack_latency: list[float] = []
        self.health_latency: list[float] = []
        self.health_status: list[tuple[int, str, list]] = []
        self.health_refused = 0   # answered 503 busy (retried at the next round, as a monitor does)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._relp, daemon=True),
                         threading.Thread(target=self._health, daemon=True)]

    def __enter__(self) -> Probe:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(90)
        self.client.close()

    def _relp(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            text = f"<38>Nov 24 00:05:02 probe sshd[9]: Failed password for root from 81.2.69.160 port {n} ssh2 " \
                   f"{self.tag}-{n}"
            t0 = time.monotonic()
            try:
                txnr = self.client.send("syslog", text.encode())
                frame = self.client.frame()
            except OSError as e:
                self.errors.append(f"relp: {e}")
                return
            self.ack_latency.append(time.monotonic() - t0)
            if frame is None:
                self.errors.append("relp: session closed")
                return
            if frame[:2] == (txnr, "rsp") and frame[2].startswith(b"200"):
                self.acked.append(f"{self.tag}-{n}")
            else:
                self.errors.append(f"relp: {frame!r}")
            self._stop.wait(self.every)

    def _health(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                code, body = self.target.health()
                if "status" in body:
                    self.health_status.append((code, body["status"], body.get("problems", [])))
                else:   # 503 "too many connections": a flood of fresh connections holds every slot
                    self.health_refused += 1
            except (OSError, ValueError) as e:
                self.errors.append(f"health: {e}")
            self.health_latency.append(time.monotonic() - t0)
            self._stop.wait(self.every)

    def check(self) -> dict[str, float]:
        """The liveness assertions; returns the figures measured."""
        assert not self.errors, self.errors[:5]
        assert self.acked and self.health_latency
        assert self.health_status, "/health never answered"
        figures = {"acks": len(self.acked), "ack_latency_max_s": round(max(self.ack_latency), 3),
                   "health_latency_max_s": round(max(self.health_latency), 3),
                   "health_busy": self.health_refused}
        assert figures["ack_latency_max_s"] < LIVENESS, figures
        assert figures["health_latency_max_s"] < LIVENESS, figures
        return figures

    def missing(self, since: int = 0) -> list[str]:
        """Acked messages (from the `since`-th on) that are not in the output (must be none)."""
        have = {d["event"].get("original", "").rsplit(" ", 1)[-1] for d in self.target.docs()}
        return [a for a in self.acked[since:] if a not in have]


def connect_many(port: int, n: int, data: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            continue   # refused or reset at once: counted by the server
        if data:
            try:
                s.sendall(data)
            except OSError:
                pass
        socks.append(s)
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def report(name: str, figures: dict) -> None:
    print(f"\n[hostile] {name}: {json.dumps(figures)}")


__all__ = ["LIVENESS", "Probe", "Target", "close_all", "connect_many", "raise_own_fd_limit", "report", "wait_for"]
