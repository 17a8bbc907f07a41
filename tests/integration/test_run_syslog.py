"""Syslog into `streams run` over UDP and TCP (LF and octet-counted), sent by util-linux
`logger` (RFC 3164 and RFC 5424) and by raw sockets for the cases logger cannot produce."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from . import TIMEOUT, LiveServer, assert_sshd_failure, make_config, wait_for

LOGGER = shutil.which("logger")
needs_logger = pytest.mark.skipif(LOGGER is None, reason="util-linux `logger` is not installed (apt-get install "
                                                         "bsdutils) - it is the real sender of these tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory, city_db):
    with LiveServer(make_config(tmp_path_factory.mktemp("run-syslog") / "out", city_db)) as s:
        yield s


def by_user(server: LiveServer, prefix: str) -> dict[str, dict]:
    out = {}
    for d in server.docs():
        user = (d.get("user") or {}).get("name", "")
        if user.startswith(prefix):
            assert user not in out, f"duplicate document for {user}"
            out[user] = d
    return out


def wait_users(server: LiveServer, prefix: str, n: int) -> dict[str, dict]:
    wait_for(lambda: len(by_user(server, prefix)) >= n, what=f"{n} documents for {prefix}")
    return by_user(server, prefix)


def logger(*args: str) -> None:
    subprocess.run([LOGGER, *args], check=True, timeout=TIMEOUT)


CASES = [
    ("tcp-lf-3164", ["--tcp", "--rfc3164"]),
    ("tcp-lf-5424", ["--tcp", "--rfc5424"]),
    ("tcp-oc-3164", ["--tcp", "--octet-count", "--rfc3164"]),
    ("tcp-oc-5424", ["--tcp", "--octet-count", "--rfc5424"]),
    ("udp-3164", ["--udp", "--rfc3164"]),
    ("udp-5424", ["--udp", "--rfc5424"]),
]


@needs_logger
@pytest.mark.parametrize("case,flags", CASES, ids=[c for c, _ in CASES])
def test_logger_sshd_lines_come_out_parsed(server, case, flags):
    listener = "syslog_udp" if "--udp" in flags else "syslog_tcp"
    port = str(server.port(listener))
    sent = {f"{case}-{i}": 40000 + i for i in range(5)}
    for user, sport in sent.items():
        logger(*flags, "-n", "127.0.0.1", "-P", port, "-t", "sshd",
               f"Failed password for invalid user {user} from 81.2.69.160 port {sport} ssh2")
    docs = wait_users(server, case, len(sent))
    assert set(docs) == set(sent)
    for user, d in docs.items():
        assert_sshd_failure(d, sent[user])
        assert d["@timestamp"].endswith("Z")
        assert d["event"]["original"].startswith("<")   # the PRI is part of the message
        if "5424" in case:
            assert d["log"]["syslog"]["version"] == 1


def send_tcp(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)


def test_tcp_fail2ban_lines_are_lf_framed_not_octet_counted(server):
    # Fail2ban's own lines start with digits (their date): LF framing, not a count.
    lines = [f"2026-03-01 10:00:0{i},123 fail2ban.actions        [811]: NOTICE  [sshd] Ban 81.2.69.{170 + i}"
             for i in range(3)]
    send_tcp(server.port("syslog_tcp"), "".join(x + "\n" for x in lines).encode())
    docs = wait_for(lambda: [d for d in server.docs() if d["event"]["original"] in lines] if
                    len([d for d in server.docs() if d["event"]["original"] in lines]) == 3 else None,
                    what="3 fail2ban documents")
    assert sorted(d["event"]["original"] for d in docs) == lines
    for d in docs:
        assert d["event"]["dataset"] == "fail2ban.log"
        assert d["event"]["action"] == "ban"
        assert d["source"]["geo"]["country_iso_code"] == "GB"


def test_tcp_octet_counted_with_lf_inside_count_and_invalid_utf8(server):
    good = b"<38>Mar  1 10:00:00 gw sshd[1]: Failed password for invalid user oc-utf8-a from 81.2.69.160 port 1 ssh2\n"
    bad = b"<38>Mar  1 10:00:00 gw sshd[1]: Failed password for invalid user oc-utf8-b\xff from 81.2.69.160 port 2 ssh2"
    send_tcp(server.port("syslog_tcp"), b"%d %s%d %s" % (len(good), good, len(bad), bad))
    docs = wait_users(server, "oc-utf8-", 2)
    a, b = docs["oc-utf8-a"], docs["oc-utf8-b\\xff"]
    assert not a["event"]["original"].endswith("\n")
    assert "_invalid_utf8" not in a.get("tags", [])
    assert "_invalid_utf8" in b["tags"]
    assert b["event"]["original"].endswith("port 2 ssh2")


def test_udp_and_tcp_counters(server):
    m = server.metrics()
    for name in ("syslog_tcp", "syslog_udp"):
        c = m["listeners"][name]
        assert c["accepted"] == c["received"] - c.get("empty", 0)
        assert c["dropped"] == 0 and c["queued"] >= 0
    assert m["sinks"]["elasticsearch_files"]["failed"] == 0
