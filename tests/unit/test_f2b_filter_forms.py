"""Failure forms of Fail2ban's filters (config/filter.d, normal mode) that need the
correlation of several lines of one connection or message (single-line forms are sample
cases in samples/cases/)."""

from __future__ import annotations

from streams.parse.dispatch import LineParser


def parse_all(lines):
    p = LineParser(year=2026, timezone="UTC")
    return [p.parse(line).to_doc() for line in lines]


def test_sshd_account_locked_takes_client_of_pid():
    docs = parse_all([
        "Feb 25 14:34:10 belka sshd[1029]: Connection from 10.1.2.27 port 5555 on 10.0.0.1 port 22",
        "Feb 25 14:34:10 belka sshd[1029]: User root not allowed because account is locked",
    ])
    assert docs[1]["event"]["outcome"] == "failure"
    assert docs[1]["source"]["address"] == "10.1.2.27"
    assert docs[1]["user"]["name"] == "root"


def test_sshd_account_locked_without_client_reported_at_close():
    docs = parse_all([
        "Feb 25 14:34:10 belka sshd[2005]: User root not allowed because account is locked",
        "Feb 25 14:34:10 belka sshd[2005]: Connection closed by authenticating user root 10.9.9.9 port 22 [preauth]",
    ])
    assert docs[0]["event"]["outcome"] == "unknown"
    assert docs[1]["event"]["outcome"] == "failure"
    assert docs[1]["source"]["address"] == "10.9.9.9"


def test_sshd_other_not_allowed_without_client_is_no_failure():
    docs = parse_all([
        "Feb 25 14:34:10 belka sshd[2006]: Connection from 10.1.2.28 port 5555 on 10.0.0.1 port 22",
        "Feb 25 14:34:10 belka sshd[2006]: User bob not allowed because shell /bin/nologin is not executable",
    ])
    assert docs[1]["event"]["outcome"] == "unknown"


def test_sendmail_unknown_recipient_with_valid_ones_is_failure():
    docs = parse_all([
        "Feb 25 14:34:10 mx sm-mta[25]: s1AB2cD3001255: <nobody@b.example>... No such user here",
        "Feb 25 14:34:10 mx sm-mta[25]: s1AB2cD3001255: from=<x@y.example>, size=0, class=0, nrcpts=1, "
        "bodytype=8BITMIME, proto=SMTP, daemon=MTA-v4, relay=[203.0.113.25]",
    ])
    assert docs[1]["event"]["outcome"] == "failure"
    assert docs[1]["event"]["reason"] == "unknown recipients"
    assert docs[1]["source"]["address"] == "203.0.113.25"


def test_sendmail_from_without_unknown_recipient_is_no_failure():
    docs = parse_all([
        "Feb 25 14:34:10 mx sm-mta[26]: s1AB2cD3001256: from=<x@y.example>, size=10, class=0, nrcpts=1, "
        "proto=ESMTP, daemon=MTA, relay=ok.example [203.0.113.26]",
    ])
    assert docs[0]["event"]["outcome"] != "failure"
