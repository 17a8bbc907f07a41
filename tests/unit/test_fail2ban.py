"""Fail2ban's own log: the corpus contracts in-process (LineParser), as the evaluator
scores them (logger, pid, level, jail, event, ip), plus the recidive filter's test file."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from streams.parse.dispatch import LineParser

from ..corpus import failjson_cases, get

DATA = Path(__file__).resolve().parent.parent / "data" / "fail2ban-ownlog"
FIELDS = {"logger": "log.logger", "pid": "process.pid", "level": "log.level",
          "jail": "fail2ban.jail", "event": "event.action", "ip": "source.ip"}
ROWS = [json.loads(line) for sub in ("fail2ban-repo", "unlicense")
        for line in (DATA / sub / "lines.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]




@pytest.fixture(scope="module")
def parser():
    return LineParser(timezone="Europe/Paris")


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['source']['path'].rsplit('/', 1)[-1]}:{r['source']['line']}" for r in ROWS])
def test_own_log_line(parser, row):
    doc = parser.parse(row["raw"].split("\n")[0]).to_doc()
    assert get(doc, "event.dataset") == "fail2ban.log"
    assert "_grokparsefailure" not in doc.get("tags", [])
    for key, path in FIELDS.items():
        want = row["expected"].get(key)
        if want is None or (key == "event" and want in ("other", "jail_message")):
            continue
        assert str(get(doc, path)).lower() == str(want).lower(), f"{path}: {doc}"
    assert get(doc, "event.outcome") is None  # a ban is no authentication failure


def test_multi_line_entry_continuations(parser):
    raw = next(r["raw"] for r in ROWS if "\n" in r["raw"])
    first, *rest = raw.split("\n")
    head = parser.parse(first).to_doc()
    for line in rest:
        doc = parser.parse(line).to_doc()
        assert get(doc, "event.dataset") == "fail2ban.log"
        assert doc["tags"] == ["multiline_continuation"]
        assert get(doc, "log.logger") == get(head, "log.logger")
        assert get(doc, "process.pid") == get(head, "process.pid")
    # the state is bounded: a syslog line ends the entry
    parser.parse("Feb 25 14:34:10 belka sshd[31602]: Connection closed by 192.0.2.1")
    assert "_grokparsefailure" in parser.parse("iptables -D INPUT -s 50.30.34.7 -j DROP").tags



RECIDIVE = failjson_cases(DATA / "fail2ban-testsuite" / "recidive") + [
    # upstream lines kept out of the local copy, written here from the same test file
    ("Mar 05 08:41:28 test.org fail2ban-server[11524]: fail2ban.actions        [11524]: NOTICE  [postfix-auth] Ban 192.0.2.2",
     {"match": True, "host": "192.0.2.2"}),
]


# A `[recidive] Ban` line is a ban (event.action: ban, fail2ban.jail: recidive): fail2ban's
# recidive filter ignores it only so that the jail does not feed on its own output.
@pytest.mark.parametrize("line,exp", RECIDIVE, ids=[r[0][:50] for r in RECIDIVE])
def test_recidive_contract(line, exp):
    doc = LineParser(year=2005).parse(line).to_doc()
    ip = get(doc, "source.ip")
    is_ban = get(doc, "event.action") == "ban" and ip is not None and (
        exp.get("host") is None or ipaddress.ip_address(ip) == ipaddress.ip_address(exp["host"]))
    assert is_ban == bool(exp.get("match")), doc
    assert get(doc, "event.dataset") == "fail2ban.log"


def test_syslog_wrapped_logger_from_program():
    doc = LineParser(year=2005).parse("Jan 16 17:11:25 testorg fail2ban.actions[6605]: NOTICE [postfix-auth] Ban 192.0.2.1").to_doc()
    assert get(doc, "log.logger") == "fail2ban.actions"
    assert get(doc, "log.level") == "NOTICE"
    assert get(doc, "process.pid") == 6605


def test_increase_ban_and_found_time(parser):
    doc = parser.parse("2024-03-01 09:12:44,901 fail2ban.observer       [812]: NOTICE  [sshd] "
                       "Increase Ban 198.51.100.23 (3 # 1w 2d -> 2024-03-10 09:12:44)").to_doc()
    assert get(doc, "event.action") == "increase_ban"
    assert get(doc, "fail2ban.ban_count") == 3
    assert get(doc, "fail2ban.bantime") == 9 * 86400
    assert get(doc, "fail2ban.ban_end") == "2024-03-10T08:12:44.000Z"
    doc = parser.parse("2024-03-01 09:12:44,901 fail2ban.observer [812]: NOTICE  [sshd] "
                       "Increase Ban 198.51.100.23 (4 # permanent -> infinite)").to_doc()
    assert get(doc, "fail2ban.bantime") == -1
    assert get(doc, "fail2ban.ban_end") == "infinite"


@pytest.mark.parametrize("text,seconds", [("1y 3w 4d", 365 * 86400 + 25 * 86400), ("59m 50s", 3590),
                                          ("permanent", -1), ("600", 600)])
def test_bantime_seconds(parser, text, seconds):
    # fail2ban's own `seconds2str` text in an `Increase Ban` line -> fail2ban.bantime
    doc = parser.parse("2024-03-01 09:12:44,901 fail2ban.observer       [812]: NOTICE  [sshd] "
                       f"Increase Ban 198.51.100.23 (3 # {text} -> 2024-03-10 09:12:44)").to_doc()
    assert get(doc, "event.action") == "increase_ban", doc
    assert get(doc, "fail2ban.bantime") == seconds


def test_every_line_matches_some_rule(parser):
    for line in ("2024-01-01 00:00:00,000 fail2ban.server         [1]: INFO    --------------------------------------------------",
                 "2024-01-01 00:00:00,000 fail2ban.server         [1]: CRITICAL Unhandled exception in Fail2Ban:",
                 "2024-01-01 00:00:00,000 fail2ban.server         [1]: ERROR   ",
                 "2024-01-01 00:00:00,000 fail2ban.filter         [1]: #05-Lev. [sshd] something odd"):
        ev = parser.parse(line)
        assert ev.meta.get("rule"), line
        assert not ev.tags
