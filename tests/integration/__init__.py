"""Integration tests of `streams run`: real sockets on 127.0.0.1 (port 0), real senders.

`LiveServer` runs the service in-process, on its own event loop in a thread, so tests
talk to it with plain blocking sockets; `RunProcess` runs `python -m streams.cli run` as a
subprocess (for signals). Both read the output NDJSON back as (action, document) pairs.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streams.config import Config

LISTENERS = ("relp", "syslog_udp", "syslog_tcp", "riemann_tcp", "riemann_udp", "http")
TIMEOUT = 10.0


def wait_for(cond: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def assert_sshd_failure(d: dict, port: int, ip: str = "81.2.69.160") -> None:
    """What every sender test expects of a `Failed password ... from IP port N` line that
    went through `streams run`: parsed as an sshd failure from that client, GeoIP'd (the
    test database puts 81.2.69.160 in London), the line intact."""
    assert d["event"]["dataset"] == "sshd.log"
    assert d["event"]["outcome"] == "failure"
    assert d["process"]["name"] == "sshd"
    assert d["source"]["ip"] == ip and d["source"]["port"] == port
    assert d["source"]["geo"]["city_name"] == "London"
    assert "_grokparsefailure" not in d.get("tags", [])
    assert not d["event"]["original"].endswith("\n")


def read_docs(out: Path) -> list[tuple[dict, dict]]:
    """Every (action, document) pair of the bulk NDJSON files (complete lines only)."""
    pairs = []
    for f in sorted((out / "elasticsearch").glob("*.ndjson")):
        data = f.read_bytes()
        lines = data[: data.rfind(b"\n") + 1].splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=False):
            pairs.append((json.loads(action)["index"], json.loads(doc)))
    return pairs


def http_json(port: int, path: str, statuses: tuple[int, ...] = (200,)) -> dict:
    """GET a JSON answer of the HTTP listener, whose status must be one of `statuses`
    (`/health` answers 503 while not ok)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT) as r:
            status, headers, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    assert status in statuses, (status, body[:2000])
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def health(port: int) -> dict:
    """`/health`, whatever it says (200 when ok, 503 otherwise)."""
    return http_json(port, "/health", (200, 503))


def make_config(out: Path, city_db: Path | None = None, **run: Any) -> Config:
    cfg = Config()
    for name in LISTENERS:
        getattr(cfg.listeners, name).port = 0
    cfg.output.dir = out
    cfg.geoip.enabled = city_db is not None
    cfg.geoip.city = city_db
    for k, v in run.items():
        setattr(cfg.run, k, v)
    return cfg


def config_toml(out: Path, city_db: Path | None = None) -> str:
    lines = [f"[listeners.{n}]\nport = 0\n" for n in LISTENERS]
    lines.append(f"[output]\ndir = {json.dumps(str(out))}\n")
    if city_db is not None:
        lines.append(f"[geoip]\ncity = {json.dumps(str(city_db))}\n")
    else:
        lines.append("[geoip]\nenabled = false\n")
    return "\n".join(lines)


class LiveServer:
    """The `streams run` service in this process, on an event loop in a thread."""

    def __init__(self, cfg: Config) -> None:
        from streams.commands.run import build_service
        self.cfg = cfg
        self.out = cfg.output.dir
        self.service = build_service(cfg)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        if not self._ready.wait(TIMEOUT):
            raise AssertionError("server did not start")
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as e:  # surfaced to the test
            self._error = e
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.service.start()
        self._ready.set()
        await self._stop.wait()
        await self.service.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(TIMEOUT)
            assert not self.thread.is_alive(), "server did not stop"
        if self._error:
            raise self._error

    def port(self, name: str) -> int:
        return self.service.ports[name]

    def docs(self) -> list[dict]:
        return [d for _, d in read_docs(self.out)]

    def metrics(self) -> dict:
        return http_json(self.port("http"), "/metrics")


class RunProcess:
    """`python -m streams.cli run` in a subprocess; its JSON log lines are collected."""

    def __init__(self, config: Path, out: Path, prefix: Sequence[str] = ()) -> None:
        """`prefix`: a command to run it under (bench/ingest_bench.py pins it with taskset)."""
        self.out = out
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "streams.cli", "run", "--config", str(config)],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        self.logs: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self.wait_log(lambda d: d.get("msg") == "ready", "the ready line")
        self.ports: dict[str, int] = ready["ports"]

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.put(json.loads(line))
            except ValueError:
                self.logs.put({"raw": line.decode(errors="replace")})

    def wait_log(self, pred: Callable[[dict], bool], what: str, timeout: float = TIMEOUT) -> dict:
        for d in self.seen:
            if pred(d):
                return d
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no log line for {what}; seen: {self.seen[-20:]}")
            try:
                d = self.logs.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.logs.empty():
                    raise AssertionError(f"process exited ({self.proc.returncode}) before {what}: "
                                         f"{self.seen[-20:]}") from None
                continue
            self.seen.append(d)
            if pred(d):
                return d

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
