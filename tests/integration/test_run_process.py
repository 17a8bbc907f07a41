"""`python -m streams.cli run` as a process: SIGTERM drains and exits 0, health counters,
SIGHUP reopens the output files, and RELP loses nothing across a restart."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter

import pytest

from . import TIMEOUT, RunProcess, config_toml, health, http_json, read_docs, wait_for
from .test_run_relp import RelpClient, line


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "streams.toml"
    cfg.write_text(config_toml(out))
    procs = []

    def start() -> RunProcess:
        p = RunProcess(cfg, out)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


def users(out, prefix: str) -> Counter:
    return Counter(d["user"]["name"] for _, d in read_docs(out)
                   if (d.get("user") or {}).get("name", "").startswith(prefix))


def syslog_lines(prefix: str, n: int) -> bytes:
    return b"".join(f"<38>Mar  1 10:00:00 gw sshd[9]: Failed password for invalid user {prefix}{i} "
                    f"from 81.2.69.160 port {i + 1} ssh2\n".encode() for i in range(n))


def test_sigterm_drains_everything_and_exits_0(run):
    p = run()
    n = 3000
    with socket.create_connection(("127.0.0.1", p.ports["syslog_tcp"]), timeout=TIMEOUT) as s:
        s.sendall(syslog_lines("drain-", n))
    wait_for(lambda: http_json(p.ports["http"], "/health")["listeners"]["syslog_tcp"]["received"] == n,
             what="all messages read")
    health = http_json(p.ports["http"], "/health")
    assert health["status"] == "ok"
    tcp = health["listeners"]["syslog_tcp"]
    assert tcp["accepted"] == n and tcp["errors"] == 0 and tcp["connections_total"] == 1
    assert 0 <= health["queue"]["depth"] <= health["queue"]["capacity"]
    assert p.terminate(signal.SIGTERM) == 0
    got = users(p.out, "drain-")
    assert len(got) == n and set(got.values()) == {1}
    stopped = p.wait_log(lambda d: d.get("msg") == "stopped", "the stopped line")
    assert stopped["events"] == n
    assert stopped["counters"]["sinks"]["elasticsearch_files"] == {**stopped["counters"]["sinks"][
        "elasticsearch_files"], "sent": n, "failed": 0}
    assert stopped["counters"]["queue"]["depth"] == 0
    assert (p.out / "graphite.txt").read_text().strip()


def test_a_second_sigterm_exits_at_once_without_the_drain(tmp_path):
    """The first SIGTERM drains (here it would wait for an unreachable Elasticsearch to take
    the spool); a second one is the operator saying not to wait: exit at once, 128 + signal."""
    from .servers import free_port
    out = tmp_path / "out"
    cfg = tmp_path / "streams.toml"
    cfg.write_text(config_toml(out) + f'\n[output.elasticsearch]\nurl = "http://127.0.0.1:{free_port()}"\n'
                   '\n[run]\nshutdown_timeout = 300\n')
    p = RunProcess(cfg, out)
    try:
        with socket.create_connection(("127.0.0.1", p.ports["syslog_tcp"]), timeout=TIMEOUT) as s:
            s.sendall(syslog_lines("spooled-", 5))
        wait_for(lambda: health(p.ports["http"])["listeners"]["syslog_tcp"]["received"] == 5,
                 what="the messages read")
        # Elasticsearch is unreachable: not ok, and /health says why
        h = wait_for(lambda: (h := health(p.ports["http"]))["status"] == "degraded" and h, what="degraded")
        assert any("elasticsearch" in problem for problem in h["problems"]), h["problems"]
        p.proc.send_signal(signal.SIGTERM)
        p.wait_log(lambda d: d.get("msg", "").startswith("signal received"), "the first signal's line")
        # now closing the sinks: the spool waits for Elasticsearch; the service still answers
        wait_for(lambda: health(p.ports["http"])["status"] == "stopping", what="stopping")
        time.sleep(0.5)
        assert http_json(p.ports["http"], "/health", (503,))["status"] == "stopping"
        assert p.terminate(signal.SIGTERM) == 128 + signal.SIGTERM
        p.wait_log(lambda d: d.get("msg", "").startswith("second signal"), "the second signal's line")
    finally:
        p.kill()


def test_sighup_reopens_output_files(run):
    p = run()
    port = p.ports["syslog_tcp"]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(syslog_lines("before-", 10))
    wait_for(lambda: len(users(p.out, "before-")) == 10, what="first batch")
    [f] = list((p.out / "elasticsearch").glob("*.ndjson"))
    rotated = f.with_name(f.name + ".1")
    f.rename(rotated)                               # logrotate's move, then the signal
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log(lambda d: d.get("msg", "").startswith("output files closed"), "the reopen line")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(syslog_lines("after-", 10))
    wait_for(lambda: len(users(p.out, "after-")) == 10, what="second batch in the new file")
    assert users(p.out, "before-") == Counter()    # the new file holds only what came after
    assert len(rotated.read_bytes().splitlines()) == 2 * 10    # action + document per message
    assert p.terminate() == 0


def test_relp_restart_loses_nothing(run):
    """SIGTERM while a client is sending: acked messages are written; the client resends
    the rest to the next instance (the output is appended to, not truncated)."""
    n = 5000
    msgs = {i: line(i, "restart-") for i in range(n)}
    p = run()
    c = RelpClient(p.ports["relp"])
    c.open()
    sent: dict[int, int] = {}

    def sender() -> None:
        try:
            for i in range(n):
                sent[c.txnr + 1] = i
                c.send("syslog", msgs[i])
                if i % 50 == 49:
                    time.sleep(0.002)   # a steady stream, so that SIGTERM lands in the middle of it
        except OSError:
            pass   # the server closed the session

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    acked, hint = set(), False
    while (f := c.frame()) is not None:
        txnr, cmd, data = f
        if cmd == "serverclose":
            hint = True
            continue
        assert cmd == "rsp" and data == b"200 OK"
        acked.add(sent[txnr])
        if len(acked) == 200:
            p.proc.send_signal(signal.SIGTERM)
    c.close()
    t.join(TIMEOUT)
    assert p.proc.wait(TIMEOUT) == 0
    assert hint, "no serverclose before the server closed the session"
    first = users(p.out, "restart-")
    assert {f"restart-{i}" for i in acked} <= set(first)   # every ack is backed by a document

    p2 = run()
    c = RelpClient(p2.ports["relp"])
    c.open()
    resend = {c.send("syslog", msgs[i]): i for i in sorted(set(msgs) - acked)}
    for _ in resend:
        txnr, cmd, data = c.frame()
        assert cmd == "rsp" and data == b"200 OK"
    t = c.send("close")
    assert c.frame() == (t, "rsp", b"")
    c.close()
    assert p2.terminate() == 0
    final = users(p.out, "restart-")
    assert set(final) == {f"restart-{i}" for i in range(n)}   # none missing; duplicates allowed
    print("acked before the restart", len(acked), "of", n, "duplicates", sum(final.values()) - n)
