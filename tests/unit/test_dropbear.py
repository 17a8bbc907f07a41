"""Dropbear (the SSH server of OpenWrt and other embedded systems): its failures read as
sshd's do (`ssh_login`, `event.outcome: failure`, the client's address and port), with
and without the pid and time the journal repeats in the message."""

from __future__ import annotations

import pytest

from streams.parse.dispatch import LineParser


@pytest.fixture(scope="module")
def parser() -> LineParser:
    return LineParser(year=2026)


FAILURES = [
    ("bad password attempt for 'admin' from 198.51.100.87:5543", "198.51.100.87", 5543, "admin", None),
    ("Bad PAM password attempt for 'root' from 203.0.113.4:60588", "203.0.113.4", 60588, "root", None),
    ("login attempt for nonexistent user from ::ffff:198.51.100.215:60495", "198.51.100.215", 60495, None,
     "invalid user"),
    ("Login attempt for nonexistent user 'oracle' from 2001:db8::7:60794", "2001:db8::7", 60794, "oracle",
     "invalid user"),
    ("Exit before auth (user 'root', 10 fails): Max auth tries reached - user 'root' from 203.0.113.4:60588",
     "203.0.113.4", 60588, "root", "maximum authentication attempts exceeded"),
    ("[825] Jul 10 23:53:52 Bad password attempt for 'root' from 203.0.113.4:52289", "203.0.113.4", 52289,
     "root", None),
    ("[825] Jul 10 23:57:29 Exit before auth from <192.0.2.3:52289>: (user 'root', 10 fails): "
     "Max auth tries reached - user 'root'", "192.0.2.3", 52289, "root", "maximum authentication attempts exceeded"),
    ("[826] Jul 10 23:59:24 Exit before auth from <192.0.2.3:52325>: Max auth tries reached - user 'is invalid'",
     "192.0.2.3", 52325, None, "maximum authentication attempts exceeded"),
]


@pytest.mark.parametrize(("msg", "ip", "port", "user", "reason"), FAILURES)
def test_failures_carry_the_client(parser, msg, ip, port, user, reason):
    doc = parser.parse(f"Jul 27 01:04:12 gw1 dropbear[1335]: {msg}").to_doc()
    assert doc["event"]["dataset"] == "dropbear.log"
    assert (doc["event"]["action"], doc["event"]["outcome"]) == ("ssh_login", "failure")
    assert (doc["source"]["ip"], doc["source"]["port"]) == (ip, port)
    assert (doc.get("user") or {}).get("name") == user  # `is invalid` is no account name
    assert doc["event"].get("reason") == reason
    assert "tags" not in doc


@pytest.mark.parametrize(("msg", "action", "outcome", "ip"), [
    ("Child connection from 192.0.2.50:41000", "ssh_connection", None, "192.0.2.50"),
    ("Password auth succeeded for 'root' from 192.0.2.50:41000", "ssh_login", "success", "192.0.2.50"),
    ("Pubkey auth succeeded for 'admin' with ssh-ed25519 key SHA256:Zm9v from 192.0.2.51:41001", "ssh_login",
     "success", "192.0.2.51"),
    ("Exit (root) from <192.0.2.50:41000>: Disconnect received", "ssh_disconnect", None, "192.0.2.50"),
    ("Exit before auth from <192.0.2.52:41002>: Exited normally", "ssh_disconnect", None, "192.0.2.52"),
])
def test_other_lines_are_not_failures(parser, msg, action, outcome, ip):
    doc = parser.parse(f"Jul 11 08:00:02 gw1 dropbear[900]: {msg}").to_doc()
    assert (doc["event"]["action"], doc["event"].get("outcome"), doc["source"]["ip"]) == (action, outcome, ip)


def test_an_unknown_dropbear_line_is_kept_and_tagged(parser):
    doc = parser.parse("Jul 11 08:10:02 gw1 dropbear[903]: Early exit: Terminated by signal").to_doc()
    assert doc["event"]["dataset"] == "dropbear.log" and doc["tags"] == ["_grokparsefailure"]
    assert doc["message"] == "Early exit: Terminated by signal"
