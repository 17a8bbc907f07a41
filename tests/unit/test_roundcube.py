"""Roundcube webmail logins, from syslog and from its own log files. The user name is the
client's input: a name made to look like `admin from 127.0.0.1` must not become the
client address (Fail2ban's roundcube-auth filter guards against the same injection)."""

from __future__ import annotations

import pytest

from streams.parse.dispatch import LineParser

SYSLOG = "Jul 11 03:06:37 web roundcube[812]: "


@pytest.fixture()
def parser() -> LineParser:
    return LineParser(year=2026, timezone="Europe/Paris")


@pytest.mark.parametrize(("line", "ip", "user"), [
    (SYSLOG + "IMAP Error: Login failed for carol from 192.0.2.44", "192.0.2.44", "carol"),
    (SYSLOG + "IMAP Error: Login failed for carol from 192.0.2.44. LOGIN: A0001 NO [AUTHENTICATIONFAILED] "
              "Authentication failed. in /usr/share/roundcube/rcube_imap.php on line 200 (POST /?_task=login)",
     "192.0.2.44", "carol"),
    # injected names: the client is the last `from` that Roundcube's own text follows
    (SYSLOG + "IMAP Error: Login failed for root from 10.0.0.1 from 192.0.2.45", "192.0.2.45", "root from 10.0.0.1"),
    (SYSLOG + "IMAP Error: Login failed for root from 10.0.0.1. from 192.0.2.45. AUTHENTICATE PLAIN: A2 NO failed. "
              "user=root from 10.0.0.1. in /x/rcube_imap.php on line 1 (POST /)", "192.0.2.45", "root from 10.0.0.1."),
    (SYSLOG + "IMAP Error: Login failed for dave from 2001:db8::5(X-Real-IP: 192.0.2.3,X-Forwarded-For: 192.0.2.4). "
              "AUTHENTICATE PLAIN: Authentication failed. in /x/rcube_imap.php on line 9 (POST /)", "2001:db8::5", "dave"),
    ("[22-Jan-2026 22:28:21 +0200]: FAILED login for erin from 198.51.100.61", "198.51.100.61", "erin"),
    ("[22-Jan-2026 22:28:21 +0200]: <z9> Failed login for root from 10.0.0.1 from 198.51.100.62 in session z9y8 (error: 0)",
     "198.51.100.62", "root from 10.0.0.1"),
])
def test_failed_logins_name_the_client(parser, line, ip, user):
    doc = parser.parse(line).to_doc()
    assert (doc["event"]["dataset"], doc["event"]["action"], doc["event"]["outcome"]) == (
        "roundcube.log", "webmail_login", "failure")
    assert doc["source"]["ip"] == ip and doc["user"]["name"] == user
    assert "tags" not in doc


def test_the_file_stamp_keeps_its_own_offset(parser):
    doc = parser.parse("[22-Jan-2026 22:28:21 +0200]: FAILED login for erin from 198.51.100.61").to_doc()
    assert doc["@timestamp"] == "2026-01-22T20:28:21.000Z"  # not the parser's Europe/Paris
    assert doc["message"] == "FAILED login for erin from 198.51.100.61"


def test_another_line_of_its_files_is_kept_with_its_stamp_and_tagged(parser):
    doc = parser.parse("[22-Jan-2026 22:28:21 +0200]: PHP Warning: session_start(): failed").to_doc()
    assert doc["tags"] == ["_grokparsefailure"] and doc["event"]["dataset"] == "roundcube.log"
    assert doc["@timestamp"] == "2026-01-22T20:28:21.000Z"
    assert doc["message"] == "PHP Warning: session_start(): failed"


def test_other_bracketed_lines_are_not_taken_for_roundcube(parser):
    # PHP's own error log: `] ` without the colon, a zone name
    doc = parser.parse("[22-Jan-2026 22:28:21 Europe/Berlin] PHP Warning: oops").to_doc()
    assert doc["event"].get("dataset") != "roundcube.log" and "_grokparsefailure" in doc["tags"]
