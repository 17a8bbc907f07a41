"""syslog-ng as a real sender into `streams run`: `network()` over TCP and UDP (RFC 3164),
`syslog()` over TCP (RFC 5424, octet-counted) and the `riemann()` destination over TCP.

Debian's syslog-ng-core conflicts with the rsyslog the other tests use, so it is not installed:
`deploy/dev/install-syslog-ng-private` (which `scripts/test` calls) unpacks it into
`.cache/syslog-ng-root/`, run from there with `--no-caps`, its own module path, persist,
control and pid files. A missing private root skips these tests, or fails them when CI is set.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import TIMEOUT, LiveServer, assert_sshd_failure, make_config, wait_for
from .test_real_senders import Daemon, by_user, sshd_line, write_lines

ROOT = Path(__file__).resolve().parents[2] / ".cache" / "syslog-ng-root"
ARRIVAL = 20.0
PER_CASE = 20
SSHD_PID = 4107
HEADER = "Nov 26 08:00:00 sshhost sshd[4107]: "       # the file lines' own RFC 3164 header

# case -> (listener, destination driver with its transport)
SYSLOG_CASES = {
    "sng-tcp-3164": ("syslog_tcp", 'network("127.0.0.1" transport("tcp") port({port}) persist-name("{name}"))'),
    "sng-tcp-5424": ("syslog_tcp", 'syslog("127.0.0.1" transport("tcp") port({port}) persist-name("{name}"))'),
    "sng-udp-3164": ("syslog_udp", 'network("127.0.0.1" transport("udp") port({port}) persist-name("{name}"))'),
}
RIEMANN_HOST = "sng-riemann-host"


def missing(what: str) -> None:
    msg = f"{what} is not there: run deploy/dev/install-syslog-ng-private (scripts/test does)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI is set, so a missing real sender is a failure", pytrace=False)
    pytest.skip(msg)


def metric(i: int) -> float:
    return i * 1.5


def syslog_ng() -> tuple[list[str], dict[str, str]]:
    """The private syslog-ng's argv prefix and environment."""
    exe = ROOT / "usr" / "sbin" / "syslog-ng"
    modules = sorted(glob.glob(str(ROOT / "usr" / "lib" / "syslog-ng" / "[0-9]*")))
    if not exe.exists() or not modules or not (ROOT / ".complete").exists():
        missing(f"syslog-ng (unpacked into {ROOT})")
    if not glob.glob(f"{modules[-1]}/libriemann.so"):
        missing("syslog-ng's riemann module (Debian package syslog-ng-mod-riemann)")
    libs = [str(ROOT / "usr" / "lib" / "syslog-ng"), *glob.glob(str(ROOT / "usr" / "lib" / "*-linux-gnu")),
            *glob.glob(str(ROOT / "lib" / "*-linux-gnu"))]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*libs, os.environ.get("LD_LIBRARY_PATH", "")])}
    return [str(exe), "--no-caps", f"--module-path={modules[-1]}"], env


@contextlib.contextmanager
def run_syslog_ng(tmp: Path, body: str) -> Iterator[Daemon]:
    argv, env = syslog_ng()
    conf = tmp / "syslog-ng.conf"
    conf.write_text(f"@version: 3.38\noptions {{ stats-freq(0); }};\n{body}\n")
    files = ["-f", str(conf), "-R", str(tmp / "sng.persist"), "-c", str(tmp / "sng.ctl"), "-p", str(tmp / "sng.pid")]
    check = subprocess.run([*argv, "--syntax-only", *files], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert check.returncode == 0, f"syslog-ng --syntax-only rejects {conf}:\n{check.stdout}{check.stderr}\n{body}"
    old = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = env["LD_LIBRARY_PATH"]     # Daemon() inherits this process's environment
    try:
        d = Daemon([*argv, "-F", "--stderr", *files], tmp / "syslog-ng.out")
    finally:
        if old is None:
            del os.environ["LD_LIBRARY_PATH"]
        else:
            os.environ["LD_LIBRARY_PATH"] = old
    try:
        yield d
    finally:
        d.stop()


def riemann_docs(docs: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in docs:
        if (d.get("host") or {}).get("name") == RIEMANN_HOST:
            name = d["service"]["name"]
            assert name not in out, f"duplicate document for {name}"
            out[name] = d
    return out


def arrived(docs: list[dict]) -> int:
    return sum(len(by_user(docs, f"{c}-")) for c in SYSLOG_CASES) + len(riemann_docs(docs))


@pytest.fixture(scope="module")
def sng(tmp_path_factory, city_db):
    """One private syslog-ng: a file() source per case (lines with their own RFC 3164 header,
    facility local0), each bound to one destination into one LiveServer."""
    tmp = tmp_path_factory.mktemp("sng")
    with LiveServer(make_config(tmp / "out", city_db)) as server:
        parts = []
        for case, (listener, dest) in SYSLOG_CASES.items():
            src = write_lines(tmp / f"{case}.log", [HEADER + sshd_line(case, i) for i in range(PER_CASE)])
            name = case.replace("-", "_")
            parts.append(f'source s_{name} {{ file("{src}" default-facility(local0) follow-freq(0.1)); }};\n'
                         f'destination d_{name} {{ {dest.format(port=server.port(listener), name=name)}; }};\n'
                         f'log {{ source(s_{name}); destination(d_{name}); }};')
        src = write_lines(tmp / "riemann.log", [f"{i} {metric(i)}" for i in range(PER_CASE)])
        parts.append(f'source s_riemann {{ file("{src}" flags(no-parse) follow-freq(0.1)); }};\n'
                     'parser p_riemann { csv-parser(columns("R.I", "R.M") delimiters(" ")); };\n'
                     'destination d_riemann { riemann(server("127.0.0.1") '
                     f'port({server.port("riemann_tcp")}) type("tcp") host("{RIEMANN_HOST}") '
                     'service("sng riemann ${R.I}") metric(double("${R.M}")) state("ok") ttl("30") '
                     'description("line ${R.I}")); };\n'
                     'log { source(s_riemann); parser(p_riemann); destination(d_riemann); };')
        with run_syslog_ng(tmp, "\n".join(parts)) as d:
            total = PER_CASE * (len(SYSLOG_CASES) + 1)
            wait_for(lambda: d.alive() and arrived(server.docs()) >= total, timeout=ARRIVAL,
                     what=f"{total} documents sent by syslog-ng")
        yield server


@pytest.mark.parametrize("case", list(SYSLOG_CASES))
def test_syslog_ng_sshd_lines(sng, case):
    docs = by_user(sng.docs(), f"{case}-")
    assert set(docs) == {f"{case}-{i}" for i in range(PER_CASE)}
    for i in range(PER_CASE):
        d = docs[f"{case}-{i}"]
        assert d["message"] == sshd_line(case, i)
        assert_sshd_failure(d, 40000 + i)
        assert d["process"]["pid"] == SSHD_PID
        assert d["source"]["geo"]["country_iso_code"] == "GB"
        assert d["log"]["syslog"]["priority"] == 133                 # local0.notice
        assert "_grokparsefailure" not in d.get("tags", [])
        original = d["event"]["original"]
        assert not original.endswith("\n")
        if case.endswith("5424"):
            assert original.startswith("<133>1 "), original
            assert d["log"]["syslog"]["version"] == 1
        else:
            assert re.match(r"<133>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ sshd\[4107\]: ", original), original
            assert "version" not in d["log"]["syslog"]


def test_syslog_ng_riemann_destination(sng):
    docs = riemann_docs(sng.docs())
    assert set(docs) == {f"sng riemann {i}" for i in range(PER_CASE)}
    for i in range(PER_CASE):
        d = docs[f"sng riemann {i}"]
        assert d["event"]["dataset"] == "riemann"
        assert d["service"]["state"] == "ok"
        assert d["riemann"]["metric"] == metric(i)
        assert d["riemann"]["ttl"] == 30.0
        assert d["riemann"]["description"] == f"line {i}"
        assert d["@timestamp"].endswith("Z")


def test_syslog_ng_listener_counters(sng):
    assert len(sng.docs()) == PER_CASE * (len(SYSLOG_CASES) + 1)      # nothing else came out
    listeners = sng.metrics()["listeners"]
    assert listeners["syslog_udp"]["accepted"] == PER_CASE and listeners["syslog_udp"]["errors"] == 0
    assert listeners["syslog_tcp"]["accepted"] == 2 * PER_CASE and listeners["syslog_tcp"]["errors"] == 0
