"""Real Debian senders into `streams run`: a private rsyslogd (imfile -> omrelp, and omfwd
over TCP octet-counted, TCP LF and UDP in the RFC 3164 and 5424 templates), riemann-c-client's
`riemann-client` (TCP, UDP, a query) and collectd's write_riemann plugin.

They are installed by `deploy/dev/install-debian-packages` (which `scripts/test` calls).
A missing sender skips its test, or fails it when the environment variable CI is set.
Every process started here is stopped in a `finally` (terminate, then kill after a timeout).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest

from streams.ingest.riemann import NO_INDEX

from . import TIMEOUT, LiveServer, assert_sshd_failure, make_config, read_docs, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
ARRIVAL = 30.0          # seconds for a sender's whole set to come out


def missing(what: str) -> None:
    msg = f"{what} is not installed: run deploy/dev/install-debian-packages (scripts/test does)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI is set, so a missing real sender is a failure", pytrace=False)
    pytest.skip(msg)


def binary(name: str, package: str) -> str:
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        missing(f"`{name}` (Debian package {package})")
    return path


def rsyslog_module(name: str, package: str) -> None:
    dirs = glob.glob("/usr/lib/*/rsyslog") + ["/usr/lib/rsyslog", "/usr/lib64/rsyslog"]
    if not any(Path(d, f"{name}.so").exists() for d in dirs):
        missing(f"rsyslog's `{name}` module (Debian package {package})")


class Daemon:
    """A sender process; its stdout+stderr go to a file shown when something goes wrong."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv, self.log = argv, log
        self._fh = open(log, "wb")  # closed in stop()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.output()}")
        return True

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(TIMEOUT)
        finally:
            self._fh.close()


@contextlib.contextmanager
def daemon(argv: list[str], log: Path) -> Iterator[Daemon]:
    d = Daemon(argv, log)
    try:
        yield d
    finally:
        d.stop()


# ---------------------------------------------------------------- rsyslogd

@contextlib.contextmanager
def rsyslogd(tmp: Path, body: str) -> Iterator[Daemon]:
    """A private rsyslogd: its own work directory and pid file, no imuxsock/imklog; every
    input is bound to a named ruleset, so rsyslog's own messages go nowhere."""
    exe = binary("rsyslogd", "rsyslog")
    rsyslog_module("imfile", "rsyslog")
    work = tmp / "rsyslog-work"
    work.mkdir()
    conf = tmp / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{work}")\nmodule(load="imfile")\n{body}\n')
    check = subprocess.run([exe, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=TIMEOUT)
    assert check.returncode == 0, f"rsyslogd -N1 rejects {conf}:\n{check.stdout}{check.stderr}\n{conf.read_text()}"
    with daemon([exe, "-n", "-f", str(conf), "-i", str(tmp / "rsyslogd.pid")], tmp / "rsyslogd.out") as d:
        yield d


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{x}\n" for x in lines))
    return path


def relp_run(tmp: Path, lines: list[str], tag: str, city_db: Path, template: str = "") -> list[dict]:
    """`lines` in a file read by imfile and relayed by omrelp into `streams run`; returns
    every document written, once rsyslog and then the server have stopped."""
    rsyslog_module("omrelp", "rsyslog-relp")
    src = write_lines(tmp / "input.log", lines)
    use = ' template="line"' if template else ""
    with LiveServer(make_config(tmp / "out", city_db)) as server:
        body = (f'module(load="omrelp")\n'
                f'{template}\n'
                f'input(type="imfile" File="{src}" Tag="{tag}" ruleset="relp")\n'
                f'ruleset(name="relp") {{\n'
                f'  action(type="omrelp" target="127.0.0.1" port="{server.port("relp")}"{use})\n'
                f'}}')
        with rsyslogd(tmp, body) as rs:
            wait_for(lambda: rs.alive() and len(server.docs()) >= len(lines), timeout=ARRIVAL,
                     what=f"{len(lines)} documents relayed by rsyslog omrelp")
    return [d for _, d in read_docs(tmp / "out")]


def expected_geo(city_db: Path, ips: set[str]) -> dict[str, str | None]:
    with maxminddb.open_database(str(city_db)) as r:
        return {ip: ((r.get(ip) or {}).get("country") or {}).get("iso_code") for ip in ips}


FORWARD_FORMAT = re.compile(r"<133>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d \S+ (?P<tag>\S+) (?P<msg>.*)\Z")


def test_rsyslog_imfile_fail2ban_log_over_relp(tmp_path, city_db):
    """The seed's scenario: Fail2ban's own log read by imfile, relayed by omrelp in its
    default template (RSYSLOG_ForwardFormat: `<133>TIMESTAMP HOST fail2ban: LINE`)."""
    lines = (SAMPLES / "fail2ban.log").read_text().splitlines()
    docs = relp_run(tmp_path, lines, "fail2ban:", city_db)
    assert Counter(d["message"] for d in docs) == Counter(lines)      # each line exactly once
    for d in docs:
        m = FORWARD_FORMAT.match(d["event"]["original"])
        assert m and m["tag"] == "fail2ban:" and m["msg"] == d["message"], d["event"]["original"]
        assert d["event"]["dataset"] == "fail2ban.log", d
        assert d["process"]["name"] == "fail2ban"
        assert d["log"]["syslog"]["priority"] == 133                 # imfile's default local0.notice
        assert "_grokparsefailure" not in d.get("tags", [])
    bans = Counter(re.search(r"\[([\w-]+)\] Ban (\S+)$", x).groups() for x in lines if " Ban " in x)
    assert len(bans) > 10
    got = [d for d in docs if d["event"].get("action") == "ban"]
    assert Counter((d["fail2ban"]["jail"], d["source"]["ip"]) for d in got) == bans
    geo = expected_geo(city_db, {ip for _, ip in bans})
    assert sum(v is not None for v in geo.values()) >= 5
    for d in got:
        assert (d["source"].get("geo") or {}).get("country_iso_code") == geo[d["source"]["ip"]], d


def postfix_lines() -> list[str]:
    return [x for x in (SAMPLES / "mail.log").read_text().splitlines() if " postfix/" in x]


def check_postfix(docs: list[dict], lines: list[str]) -> None:
    assert len(docs) == len(lines)
    for d in docs:
        assert d["event"]["dataset"] == "postfix.log", d["event"]["original"]
        assert d["process"]["name"].startswith("postfix/")
    assert Counter(d["process"]["name"] for d in docs) == Counter(
        re.search(r" (postfix/[\w/]+)\[", x)[1] for x in lines)
    connects = Counter(m[1] for x in lines if (m := re.search(r"\]: connect from \S+\[([^]]+)\]$", x)))
    assert connects
    assert Counter(d["source"]["ip"] for d in docs if d["message"].startswith("connect from ")) == connects


def test_rsyslog_imfile_mail_log_over_relp_as_lines(tmp_path, city_db):
    """A postfix mail.log relayed line for line (a `%rawmsg%` template: the file's lines
    already carry their syslog header)."""
    lines = postfix_lines()
    docs = relp_run(tmp_path, lines, "maillog:", city_db,
                    template='template(name="line" type="string" string="%rawmsg%")')
    assert Counter(d["event"]["original"] for d in docs) == Counter(lines)
    check_postfix(docs, lines)


def test_rsyslog_imfile_mail_log_over_relp_default_template(tmp_path, city_db):
    """A postfix mail.log read by imfile and relayed in omrelp's default template:
    `<133>TIMESTAMP HOST maillog: 2026-11-24T00:45:07.790894+00:00 mx1 postfix/smtpd[4369]: …`."""
    lines = postfix_lines()
    docs = relp_run(tmp_path, lines, "maillog:", city_db)
    for d in docs:
        m = FORWARD_FORMAT.match(d["event"]["original"])
        assert m and m["tag"] == "maillog:", d["event"]["original"]
    assert Counter(FORWARD_FORMAT.match(d["event"]["original"])["msg"] for d in docs) == Counter(lines)
    check_postfix(docs, lines)


# ------------------------------------------------------ rsyslogd omfwd (syslog)

TEMPLATES = {"3164": "RSYSLOG_TraditionalForwardFormat", "5424": "RSYSLOG_SyslogProtocol23Format"}
TRANSPORTS = {
    "tcp-oc": 'protocol="tcp" TCP_Framing="octet-counted"',
    "tcp-lf": 'protocol="tcp"',
    "udp": 'protocol="udp"',
}
OMFWD_CASES = [f"{t}-{f}" for t in TRANSPORTS for f in TEMPLATES]
PER_CASE = 20
SSHD_PID = 4007


def sshd_line(case: str, i: int) -> str:
    return f"Failed password for invalid user {case}-{i} from 81.2.69.160 port {40000 + i} ssh2"


def by_user(docs: list[dict], prefix: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in docs:
        user = (d.get("user") or {}).get("name", "")
        if user.startswith(prefix):
            assert user not in out, f"duplicate document for {user}"
            out[user] = d
    return out


@pytest.fixture(scope="module")
def omfwd(tmp_path_factory, city_db):
    """One rsyslogd with six imfile inputs, each bound to one omfwd action (transport x template)."""
    tmp = tmp_path_factory.mktemp("omfwd")
    with LiveServer(make_config(tmp / "out", city_db)) as server:
        parts = []
        for case in OMFWD_CASES:
            transport, fmt = case.rsplit("-", 1)
            src = write_lines(tmp / f"{case}.log", [sshd_line(case, i) for i in range(PER_CASE)])
            port = server.port("syslog_udp" if transport == "udp" else "syslog_tcp")
            parts.append(f'input(type="imfile" File="{src}" Tag="sshd[{SSHD_PID}]:" ruleset="{case}")\n'
                         f'ruleset(name="{case}") {{\n'
                         f'  action(type="omfwd" target="127.0.0.1" port="{port}" {TRANSPORTS[transport]} '
                         f'template="{TEMPLATES[fmt]}")\n}}')
        with rsyslogd(tmp, "\n".join(parts)) as rs:
            total = PER_CASE * len(OMFWD_CASES)
            wait_for(lambda: rs.alive() and sum(len(by_user(server.docs(), f"{c}-")) for c in OMFWD_CASES) >= total,
                     timeout=ARRIVAL, what=f"{total} documents sent by rsyslog omfwd")
            yield server


@pytest.mark.parametrize("case", OMFWD_CASES)
def test_rsyslog_omfwd_sshd_lines(omfwd, case):
    docs = by_user(omfwd.docs(), f"{case}-")
    assert set(docs) == {f"{case}-{i}" for i in range(PER_CASE)}
    for i in range(PER_CASE):
        d = docs[f"{case}-{i}"]
        assert d["message"] == sshd_line(case, i)
        assert_sshd_failure(d, 40000 + i)
        assert d["process"]["pid"] == SSHD_PID
        assert d["source"]["geo"]["country_iso_code"] == "GB"
        assert d["log"]["syslog"]["priority"] == 133
        assert "_grokparsefailure" not in d.get("tags", [])
        original = d["event"]["original"]
        assert not original.endswith("\n")
        if case.endswith("5424"):
            assert original.startswith("<133>1 "), original
            assert d["log"]["syslog"]["version"] == 1
        else:
            assert re.match(r"<133>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ sshd\[4007\]: ", original), original
            assert "version" not in d["log"]["syslog"]


def test_rsyslog_omfwd_listener_counters(omfwd):
    udp = omfwd.metrics()["listeners"]["syslog_udp"]
    assert udp["accepted"] == 2 * PER_CASE and udp["dropped"] == 0 and udp["errors"] == 0
    tcp = omfwd.metrics()["listeners"]["syslog_tcp"]
    assert tcp["accepted"] == 4 * PER_CASE and tcp["errors"] == 0


# ------------------------------------------------------------ riemann-client

RIEMANN_SENDS = [
    # (transport, service, riemann-client options, expected document minus @timestamp)
    ("-T", "rc tcp double", ["-h", "web1", "-s", "ok", "-D", "disk almost full", "-a", "rack=r1", "-a", "env=test",
                             "-t", "web", "-t", "prod", "-d", "1.5", "-L", "60"],
     {"host": {"name": "web1"}, "service": {"state": "ok"}, "tags": ["web", "prod"],
      "riemann": {"metric": 1.5, "ttl": 60.0, "description": "disk almost full",
                  "attributes": {"rack": "r1", "env": "test"}}}),
    ("-T", "rc tcp sint64", ["-h", "web1", "-s", "warning", "-i", "42"],
     {"host": {"name": "web1"}, "service": {"state": "warning"}, "riemann": {"metric": 42}}),
    ("-T", "rc tcp float", ["-h", "web2", "-s", "critical", "-f", "0.25", "-t", "one", "-L", "2.5"],
     {"host": {"name": "web2"}, "service": {"state": "critical"}, "tags": ["one"],
      "riemann": {"metric": 0.25, "ttl": 2.5}}),
    ("-U", "rc udp double", ["-h", "web3", "-s", "ok", "-d", "-2.5", "-L", "30", "-a", "k=v", "-t", "udp"],
     {"host": {"name": "web3"}, "service": {"state": "ok"}, "tags": ["udp"],
      "riemann": {"metric": -2.5, "ttl": 30.0, "attributes": {"k": "v"}}}),
    ("-U", "rc udp sint64", ["-h", "web3", "-i", "-7"],
     {"host": {"name": "web3"}, "riemann": {"metric": -7}}),
    ("-U", "rc udp no metric", ["-s", "expired", "-D", "gone"],
     {"service": {"state": "expired"}, "riemann": {"description": "gone"}}),
]


def riemann_client() -> str:
    return binary("riemann-client", "riemann-c-client")


def test_riemann_client_send_tcp_and_udp(tmp_path):
    exe = riemann_client()
    with LiveServer(make_config(tmp_path / "out")) as server:
        for transport, service, opts, _ in RIEMANN_SENDS:
            port = server.port("riemann_tcp" if transport == "-T" else "riemann_udp")
            r = subprocess.run([exe, "send", transport, "-S", service, *opts, "127.0.0.1", str(port)],
                               capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == 0, f"riemann-client send {transport} {service}: {r.stdout}{r.stderr}"
        wait_for(lambda: len([d for d in server.docs() if d.get("service", {}).get("name", "").startswith("rc ")])
                 >= len(RIEMANN_SENDS), what=f"{len(RIEMANN_SENDS)} riemann-client events")
    now = dt.datetime.now(dt.UTC)
    docs = [d for _, d in read_docs(tmp_path / "out")]
    assert Counter(d["service"]["name"] for d in docs) == Counter(s for _, s, _, _ in RIEMANN_SENDS)
    got = {d["service"]["name"]: d for d in docs}
    for _, service, _, want in RIEMANN_SENDS:
        d = dict(got[service])
        ts = dt.datetime.fromisoformat(d.pop("@timestamp").replace("Z", "+00:00"))
        assert abs((now - ts).total_seconds()) < 120, "stamped with the receive time"
        assert d.pop("event") == {"dataset": "riemann"}
        expected = {**want, "service": {"name": service, **want.get("service", {})},
                    "riemann": {**want["riemann"], "attributes": {"x-client": "riemann-c-client",
                                                                 **want["riemann"].get("attributes", {})}}}
        assert d == expected


def test_riemann_client_query_without_index_gets_the_error_reply(tmp_path):
    """With the index turned off a query is answered `ok: false, error: "no index"`, as
    Riemann answers (the queries themselves: tests/integration/test_run_index.py)."""
    exe = riemann_client()
    cfg = make_config(tmp_path / "out")
    cfg.index.enabled = False
    with LiveServer(cfg) as server:
        r = subprocess.run([exe, "query", "true", "127.0.0.1", str(server.port("riemann_tcp"))],
                           capture_output=True, text=True, timeout=TIMEOUT)   # a hang would time out here
        assert r.returncode != 0
        assert NO_INDEX in r.stdout + r.stderr, (r.stdout, r.stderr)
        assert server.metrics()["listeners"]["riemann_tcp"]["queries"] == 1


# --------------------------------------------------------- collectd write_riemann

COLLECTD_CONF = """\
Hostname "{host}"
FQDNLookup false
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
LoadPlugin load
LoadPlugin memory
LoadPlugin write_riemann
<Plugin write_riemann>
  <Node "streams">
    Host "127.0.0.1"
    Port "{port}"
    Protocol TCP
  </Node>
  Tag "collectd"
</Plugin>
"""


def test_collectd_write_riemann_metrics(tmp_path):
    exe = binary("collectd", "collectd-core")
    if not glob.glob("/usr/lib/collectd/write_riemann.so"):
        missing("collectd's write_riemann plugin (Debian package collectd-core)")
    host = "collectd-streams-test"
    base = tmp_path / "collectd"
    base.mkdir()
    with LiveServer(make_config(tmp_path / "out")) as server:
        conf = tmp_path / "collectd.conf"
        conf.write_text(COLLECTD_CONF.format(host=host, base=base, port=server.port("riemann_tcp")))
        check = subprocess.run([exe, "-t", "-C", str(conf)], capture_output=True, text=True, timeout=TIMEOUT)
        assert check.returncode == 0, f"collectd -t rejects {conf}:\n{check.stdout}{check.stderr}"

        def services() -> set[str]:
            return {d["service"]["name"] for d in server.docs() if d.get("host", {}).get("name") == host}

        with daemon([exe, "-f", "-C", str(conf)], tmp_path / "collectd.out") as cd:
            wait_for(lambda: cd.alive() and {"load/load/shortterm", "memory/memory-used"} <= services(),
                     timeout=15, what="collectd's load and memory metrics")
    docs = [d for _, d in read_docs(tmp_path / "out")]
    assert docs and all(d["host"]["name"] == host for d in docs)
    assert {"load/load/shortterm", "load/load/midterm", "load/load/longterm"} <= {d["service"]["name"] for d in docs}
    for d in docs:
        assert d["event"]["dataset"] == "riemann"
        assert d["tags"] == ["collectd"]
        metric = d["riemann"]["metric"]
        assert isinstance(metric, int | float) and not isinstance(metric, bool), d
        assert d["riemann"]["attributes"]["plugin"] in {"load", "memory"}
        assert d["service"]["name"].split("/")[0] == d["riemann"]["attributes"]["plugin"]
        assert d["riemann"]["ttl"] == 2.0                 # collectd: 2 x Interval
        assert d["@timestamp"].endswith("Z")
