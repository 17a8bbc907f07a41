"""The Fail2ban sample contract for the authentication parsers (all files but postfix).

Each `# failJSON:` case of tests/data/fail2ban-samples/logs/<filter> is checked the way
/work/shared/tools/eval_parse.py does: a `"match": true` line must be an
`event.outcome: failure` of the expected host, a `"match": false` line must not be. Every
file is parsed in order by one LineParser (the multi-line correlation needs it).

Fail2ban runs some cases only in a filter mode (`normal`, `aggressive`, `ddos`, ...), so
a few lines carry opposite expectations (the same line appears twice). The parsers keep
the `normal` reading where it is about authentication; the cases they miss on purpose are
listed in KNOWN_MISSES with the reason.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from streams.parse.dispatch import LineParser

from ..corpus import read_failjson

LOGS = Path(__file__).resolve().parents[1] / "data" / "fail2ban-samples" / "logs"
FILES = ["sshd", "dovecot", "sieve", "sendmail-auth", "sendmail-reject", "exim", "exim-spam",
         "courier-auth", "courier-smtp", "cyrus-imap", "uwimap-auth", "perdition", "pam-generic"]

# (file, start of the message part) -> why the line is not reported as a failure
KNOWN_MISSES = {
    ("sshd", "Accepted password for known from 192.0.2.114"):
        "a successful login stays a success; Fail2ban counts the earlier pam_unix failures "
        "of other users of the connection here",
    ("sshd", "Accepted password for known from 192.0.2.116"): "same as above",
    ("dovecot", "imap-login: Disconnected: Connection closed: read(size=1026)"):
        "`no auth attempts`: aggressive mode only; the same line is a `match: false` case too",
    ("dovecot", "imap-login: Login aborted: Connection closed: read(size=653)"):
        "`no auth attempts`: aggressive mode only (not an authentication failure)",
    ("dovecot", "managesieve-login: Disconnected: Too many invalid commands. (no auth"):
        "`no auth attempts`: aggressive mode only; the same line is a `match: false` case too",
    ("dovecot", "managesieve-login: Disconnected: Connection closed: read(size=1007)"):
        "`no auth attempts`: aggressive mode only (not an authentication failure)",
    ("dovecot", "imap-login: Disconnected (no auth attempts in 4 secs)"):
        "`no auth attempts`: aggressive mode only (not an authentication failure)",
    ("exim", "no host name found for IP address 192.0.2.8"):
        "DNS lookup problem, aggressive mode only; the same line is a `match: false` case too",
    ("exim", "no IP address found for host test.example.com"):
        "DNS lookup problem, aggressive mode only",
    ("exim", "no IP address found for host hos-t.example.tld"):
        "DNS lookup problem, aggressive mode only; the same line is a `match: false` case too",
}




def same_host(a, b) -> bool:
    if a is None or b is None:
        return False
    a, b = str(a).lower(), str(b).lower()
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def known(fn: str, line: str) -> bool:
    return any(f == fn and start in line for f, start in KNOWN_MISSES)


@pytest.mark.parametrize("fn", FILES)
def test_fail2ban_contract(fn):
    lines, cases = read_failjson(LOGS / fn)
    parser = LineParser(year=2005, timezone="Europe/Paris")
    events = [parser.parse(line) for line in lines]
    misses, false_positives, hits = [], [], 0
    for idx, exp in cases:
        f = events[idx].fields
        failure = f["event"].get("outcome") == "failure"
        who = (f.get("source") or {}).get("address") or (f.get("source") or {}).get("ip")
        host = exp.get("host")
        flagged = failure and (host is None or same_host(who, host))
        if exp.get("match"):
            if flagged:
                hits += 1
                assert not known(fn, lines[idx]), f"listed as a known miss but matched: {lines[idx]}"
            elif not known(fn, lines[idx]):
                misses.append(lines[idx])
        elif flagged:
            false_positives.append(lines[idx])
    assert not false_positives, f"{fn}: match:false lines reported as failures: {false_positives}"
    assert not misses, f"{fn}: failures not recognised: {misses}"
    assert hits > 0


def test_no_line_of_the_contract_is_a_parse_failure():
    parser = LineParser(year=2005, timezone="Europe/Paris")
    for fn in FILES:
        lines, _ = read_failjson(LOGS / fn)
        bad = [ln for ln in lines if "_grokparsefailure" in parser.parse(ln).tags]
        # one deliberately unparsable dovecot line (GHSA-33wh-ccjc-p397 negative case) and
        # the obsolete `pop(pam_unix)` format (module in the program name, no known program)
        assert len(bad) <= 1, f"{fn}: {bad}"


@pytest.mark.parametrize(("line", "want"), [
    # sshd: the host is the last `from HOST`, user names may hold ` from 1.2.3.4`
    ("Nov 11 08:04:52 h sshd[2737]: Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 "
     "from 127.0.0.1 port 58946 ssh2", {"source.ip": "127.0.0.1", "event.outcome": "failure",
                                        "event.action": "ssh_login", "event.dataset": "sshd.log"}),
    ("Sep  6 09:57:21 b sshd[581]: Accepted publickey for vagrant from 192.168.121.1 port 56296 ssh2: RSA SHA256:x",
     {"event.outcome": "success", "user.name": "vagrant", "source.ip": "192.168.121.1", "source.port": 56296}),
    ("Jan  5 01:31:41 www sshd[1643]: ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4", {"source.ip": "1.2.3.4"}),
    ("Jul 19 18:11:26 srv2 vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 "
     "tty=ftp ruser=an8767 rhost=www.google.com", {"source.address": "www.google.com", "user.name": "an8767",
                                                 "event.dataset": "pam.log", "event.outcome": "failure"}),
    ("Jul 19 18:11:26 srv2 someftpd[12]: pam_unix(someftpd:auth): authentication failure; logname= uid=0 "
     "euid=0 tty=ftp ruser= rhost=192.0.2.9  user=bob", {"event.dataset": "pam.log", "user.name": "bob"}),
    ("Apr 23 21:59:01 dns2 imapd: LOGIN FAILED, user=a@b.c, ip=[::ffff:1.2.3.4]",
     {"event.dataset": "courier.log", "source.ip": "1.2.3.4"}),
    ("Jul 3 20:56:53 Linux2 imapd[666]: Login failed user=lizdy auth=lizdy host=x.example [81.169.154.112]",
     {"event.dataset": "uwimap.log", "event.outcome": "failure", "user.name": "lizdy"}),
    ("Dec 30 16:03:27 h imapd[2517]: badlogin: local-h[1.2.3.4] OTP [SASL(-13): authentication failure: x]",
     {"event.dataset": "cyrus.log", "event.outcome": "failure"}),
    ("2013-06-02 09:22:06 SMTP call from [192.0.2.109] dropped: too many syntax or protocol errors",
     {"event.dataset": "exim.log", "source.ip": "192.0.2.109", "event.outcome": "failure"}),
    ("Aug 30 00:10:57 auth(info@example.com,192.0.2.110,sasl:login)<CvN+E95Uf4e7eEnj>: Info: sql: "
     "Password mismatch (given password: x)", {"process.name": "auth", "user.name": "info@example.com",
                                              "source.ip": "192.0.2.110", "event.outcome": "failure"}),
])
def test_fields(line, want):
    doc = LineParser(year=2005, timezone="Europe/Paris").parse(line).to_doc()
    for path, value in want.items():
        cur = doc
        for part in path.split("."):
            cur = cur[part]
        assert cur == value, (path, cur)


def test_sshd_correlation_is_bounded():
    parser = LineParser(year=2005, timezone="Europe/Paris")
    for pid in range(20000):
        parser.parse(f"Feb 12 04:09:18 h sshd[{pid}]: Connection from 192.0.2.1 port 5 on 192.0.2.2 port 22")
    assert parser.native.table_sizes()["sshd"] == 4096


@pytest.mark.parametrize("line", [
    "Feb 25 14:34:10 belka sshd[31602]: Failed password for " + "invalid user from 1.2.3.4 " * 400 + "x",
    "Aug 31 16:06:06 s dovecot: imap-login: Disconnected: " + "a: " * 4000 + "test no match",
    "Aug 31 16:06:06 s dovecot: imap-login: Disconnected " + "(auth failed, 1 attempts) " * 1000 + ": rip=z",
    "Feb 24 14:00:00 s sendmail[1]: u0CB32qX026592: AUTH failure (x): " + "a, user=b, relay=c " * 600,
    "2013-06-02 09:22:06 H=x [1.2.3.4]" + " A=b" * 3000 + " x",
    "May 1 1:1:1 h vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty= ruser="
    + "rhost=1.2.3.4 " * 2000 + "user",
    "May 1 1:1:1 h sshd[1]: Connection closed by authenticating user " + "1.2.3.4 port 5 " * 1000 + "zz",
])
def test_near_miss_lines_stay_cheap(line):
    parser = LineParser(year=2005, timezone="Europe/Paris")
    t = time.perf_counter()
    parser.parse(line)
    assert time.perf_counter() - t < 0.25
