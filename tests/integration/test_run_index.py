"""The TTL index of `streams run` end to end (issue 4): Riemann events and Fail2ban lines
enter it; Debian's `riemann-client query`, `streams query` and the HTTP API (JSON and
server-sent events) answer from it; a silent service comes back as a `state: "expired"`
event in the outputs and on the stream; the index survives a restart; the metrics file
grows while the process runs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from . import TIMEOUT, LiveServer, RunProcess, config_toml, make_config, read_docs, wait_for

pytestmark = pytest.mark.skipif(shutil.which("riemann-client") is None,
                                reason="riemann-client (Debian riemann-c-client) is installed by scripts/test")

BANS = [f"<38>Nov 24 00:00:0{i} mx1 fail2ban.actions[812]: NOTICE [sshd] Ban 81.2.69.{160 + i}" for i in range(3)]
UNBAN = "<38>Nov 24 00:00:09 mx1 fail2ban.actions[812]: NOTICE [sshd] Unban 81.2.69.160"


def riemann_send(port: int, *args: str) -> None:
    subprocess.run(["riemann-client", "send", *args, "127.0.0.1", str(port)], check=True, timeout=TIMEOUT,
                   capture_output=True)


def riemann_query(port: int, query: str) -> list[dict]:
    """The client's JSON, its metric_d/metric_f/metric_sint64 read as `metric`."""
    r = subprocess.run(["riemann-client", "query", query, "-j", "127.0.0.1", str(port)], timeout=TIMEOUT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    events = json.loads(r.stdout)
    for e in events:
        for k in ("metric_d", "metric_f", "metric_sint64"):
            if k in e:
                e["metric"] = e.pop(k)
    return events


def http_get(port: int, path: str, **params: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class SseClient:
    def __init__(self, port: int, query: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.sendall(f"GET /stream?{urllib.parse.urlencode({'q': query})} HTTP/1.1\r\n"
                          f"Host: x\r\n\r\n".encode())
        self.buf = b""

    def events(self, n: int) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + TIMEOUT
        while len(out) < n:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        out.append(json.loads(line[6:]))
            if len(out) >= n:
                break
            assert time.monotonic() < deadline, f"only {out} on the stream"
            data = self.sock.recv(65536)
            assert data, "stream closed"
            self.buf += data
            if self.buf.startswith(b"HTTP/1.1 "):
                head, _, self.buf = self.buf.partition(b"\r\n\r\n")
                assert b" 200 " in head.split(b"\r\n")[0] and b"text/event-stream" in head
        return out


def index_config(out: Path, **index) -> object:
    cfg = make_config(out)
    cfg.index.reap_seconds = 0.2
    cfg.index.snapshot_seconds = 0.5
    cfg.metrics.flush_seconds = 1
    for k, v in index.items():
        setattr(cfg.index, k, v)
    return cfg


def test_index_queries_expiry_stream_and_metrics(tmp_path):
    out = tmp_path / "out"
    with LiveServer(index_config(out)) as server:
        rport, hport = server.port("riemann_tcp"), server.port("http")
        sse = SseClient(hport, 'service = "cpu"')
        riemann_send(rport, "-h", "web1", "-S", "cpu", "-s", "ok", "-d", "0.5", "-L", "1", "-t", "collectd")
        riemann_send(rport, "-h", "web1", "-S", "disk", "-s", "ok", "-d", "0.7", "-L", "300")
        with socket.create_connection(("127.0.0.1", server.port("syslog_tcp")), timeout=TIMEOUT) as s:
            s.sendall("".join(x + "\n" for x in [*BANS, UNBAN]).encode())
        # Debian's riemann-c-client asks over Riemann TCP
        got = wait_for(lambda: (r := riemann_query(rport, 'service =~ "fail2ban%"')) and r[0].get("metric") == 2
                       and r, what="the fail2ban entry with 2 banned")
        assert [(e["host"], e["service"], e["state"]) for e in got] == [("mx1", "fail2ban sshd", "ok")]
        both = riemann_query(rport, 'host = "web1" and metric > 0.1')
        assert sorted(e["service"] for e in both) == ["cpu", "disk"]
        assert riemann_query(rport, 'tagged "collectd"')[0]["service"] == "cpu"
        bad = subprocess.run(["riemann-client", "query", 'service = "x" and', "127.0.0.1", str(rport)],
                             capture_output=True, text=True, timeout=TIMEOUT)
        assert bad.returncode != 0 and "parse error" in (bad.stdout + bad.stderr)
        # absurd TTLs from the network: indexed with a sane TTL, counted, the process stays up
        riemann_send(rport, "-h", "web2", "-S", "negative", "-L", "-5")
        riemann_send(rport, "-h", "web2", "-S", "huge", "-L", "1e30")
        fixed = wait_for(lambda: len(r := riemann_query(rport, 'host = "web2"')) == 2 and r, what="2 odd entries")
        assert {e["service"]: e["ttl"] for e in fixed} == {"negative": 60, "huge": 365 * 86400}
        assert server.metrics()["index"]["bad_ttl"] == 1 and server.metrics()["index"]["clamped_ttl"] == 1
        # the command line, over HTTP
        cli = subprocess.run([sys.executable, "-m", "streams.cli", "query", 'service = "disk"',
                              "--url", f"http://127.0.0.1:{hport}"], capture_output=True, text=True, timeout=TIMEOUT)
        assert cli.returncode == 0, cli.stderr
        assert [json.loads(x)["metric"] for x in cli.stdout.splitlines()] == [0.7]
        cli = subprocess.run([sys.executable, "-m", "streams.cli", "query", "metric >", "--url",
                              f"http://127.0.0.1:{hport}"], capture_output=True, text=True, timeout=TIMEOUT)
        assert cli.returncode == 2 and "column" in cli.stderr
        # HTTP JSON
        status, body = http_get(hport, "/query", q='service = "postfix queue" or service = "disk"')
        assert status == 200 and body["count"] == 1 and body["events"][0]["ttl"] == 300
        status, body = http_get(hport, "/query", q="metric >>> 3")
        assert status == 400 and body["position"] == 7 and "parse error" in body["error"]
        # the stream: the current entry, then its expiry (ttl 1 s, reaper every 0.2 s)
        first, expired = sse.events(2)
        assert first["service"] == "cpu" and first["state"] == "ok"
        assert expired == {"host": "web1", "service": "cpu", "state": "expired", "time": expired["time"]}
        docs = wait_for(lambda: [d for d in server.docs() if (d.get("service") or {}).get("state") == "expired"],
                        what="the expired event in the outputs")
        assert docs[0]["host"]["name"] == "web1" and docs[0]["service"]["name"] == "cpu"
        assert docs[0]["event"] == {"dataset": "streams.index", "action": "expired", "kind": "alert"}
        assert riemann_query(rport, 'service = "cpu"') == []
        assert server.metrics()["index"]["expired"] >= 1
        # metrics are flushed while running (every second), not only at shutdown
        text = wait_for(lambda: (p := out / "graphite.txt").exists() and "index.entries" in (t := p.read_text())
                        and "jail.sshd.ban" in t and t, what="periodic metrics")
        assert ".riemann.disk 0.7 " in text
        assert ".telemetry.riemann_tcp.received " in text
    sse.sock.close()
    index_names = {a["_index"] for a, _ in read_docs(out)}
    assert any(n.startswith("streams-streams.index-") for n in index_names)


def test_index_survives_a_restart(tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "streams.toml"
    cfg.write_text(config_toml(out) + "\n[index]\nreap_seconds = 0.2\nsnapshot_seconds = 0.5\n")
    p = RunProcess(cfg, out)
    try:
        riemann_send(p.ports["riemann_tcp"], "-h", "db1", "-S", "backup", "-s", "ok", "-L", "3")
        riemann_send(p.ports["riemann_tcp"], "-h", "db1", "-S", "replication", "-s", "ok", "-L", "600")
        wait_for(lambda: len(riemann_query(p.ports["riemann_tcp"], 'host = "db1"')) == 2, what="2 entries")
        assert p.terminate() == 0
        assert (out / "index.snapshot").exists()
        p = RunProcess(cfg, out)
        p.wait_log(lambda d: d.get("msg") == "index restored" and d.get("entries") == 2, "the restore line")
        kept = riemann_query(p.ports["riemann_tcp"], 'host = "db1" and service = "replication"')
        assert [e["ttl"] for e in kept] == [600]
        # the backup went silent across the restart: it still expires
        wait_for(lambda: any((d.get("service") or {}).get("name") == "backup"
                             and d["service"].get("state") == "expired" for _, d in read_docs(out)),
                 what="the backup entry's expiry after the restart")
        assert p.terminate() == 0
    finally:
        p.kill()
