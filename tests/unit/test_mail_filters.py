"""OpenDKIM and SpamAssassin spamd result lines (written from their format strings)."""

from __future__ import annotations

import pytest

from streams.parse.dispatch import LineParser

from ..corpus import get


@pytest.fixture(scope="module")
def parser():
    return LineParser(year=2024)


def parse(parser, msg, prog="opendkim[1234]"):
    ev = parser.parse(f"Jun 23 10:00:00 mail {prog}: {msg}")
    assert "_grokparsefailure" not in ev.tags
    return ev.to_doc()


@pytest.mark.parametrize("msg,verdict,outcome", [
    ("4F1A12345: DKIM-Signature field added (s=mail, d=example.com)", "signed", "success"),
    ("4F1A12345: DKIM verification successful", "pass", "success"),
    ("4F1A12345: bad signature data", "fail", "failure"),
    ("4F1A12345: s=sel d=example.com SSL error:04091068:rsa routines:INT_RSA_VERIFY:bad signature", "fail", "failure"),
    ("4F1A12345: no signature data", "none", "unknown"),
])
def test_opendkim_verdicts(parser, msg, verdict, outcome):
    doc = parse(parser, msg)
    assert get(doc, "event.dataset") == "opendkim.log"
    assert get(doc, "opendkim.verdict") == verdict
    assert get(doc, "event.outcome") == outcome
    assert get(doc, "opendkim.queueid") == "4F1A12345"


def test_opendkim_signing_domain(parser):
    doc = parse(parser, "4F1A12345: DKIM-Signature field added (s=mail, d=example.com)")
    assert get(doc, "opendkim.selector") == "mail" and get(doc, "opendkim.domain") == "example.com"


def test_spamd_result(parser):
    doc = parse(parser, "spamd: result: Y 15 - BAYES_99,HTML_MESSAGE scantime=0.5,size=2345,user=bob,uid=1001,"
                        "required_score=5.0,rhost=mx.example.net,raddr=192.0.2.9,rport=45678,mid=<abc@example.com>,"
                        "autolearn=no autolearn_force=no", "spamd[2345]")
    assert get(doc, "event.dataset") == "spamassassin.log"
    sa = doc["spamassassin"]
    assert sa["verdict"] == "spam" and sa["score"] == 15 and sa["required_score"] == 5.0
    assert sa["tests"] == ["BAYES_99", "HTML_MESSAGE"] and sa["autolearn"] == "no"
    assert get(doc, "email.message_id") == "abc@example.com"
    assert get(doc, "user.name") == "bob" and get(doc, "source.ip") == "192.0.2.9"


def test_spamd_result_padded_score_and_no_tests(parser):
    doc = parse(parser, "spamd: result: .  0 - none scantime=0.1,size=10,user=x,uid=1,required_score=5.0,"
                        "rhost=localhost,raddr=127.0.0.1,rport=1,mid=(unknown),autolearn=disabled", "spamd[1]")
    assert doc["spamassassin"]["verdict"] == "ham" and doc["spamassassin"]["tests"] == []
    assert "email" not in doc


@pytest.mark.parametrize("msg,verdict,score", [
    ("spamd: clean message (-1.2/5.0) for bob:1001 in 0.3 seconds, 2345 bytes.", "ham", -1.2),
    ("spamd: identified spam (15.1/5.0) for bob:1001 in 0.5 seconds, 2345 bytes.", "spam", 15.1),
])
def test_spamd_summary(parser, msg, verdict, score):
    doc = parse(parser, msg, "spamd[2345]")
    assert doc["spamassassin"]["verdict"] == verdict
    assert doc["spamassassin"]["score"] == score and doc["spamassassin"]["required_score"] == 5.0
    assert get(doc, "user.name") == "bob" and doc["spamassassin"]["size"] == 2345
