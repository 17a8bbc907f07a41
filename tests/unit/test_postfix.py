"""Postfix parser: the post-processing of the rules (kv tails, delays, relay, tls, command
counters, conversions, ECS aliases: the `ops:` of patterns/postfix.yaml) through whole
lines, the postfix-grok-patterns corpus contract and fail2ban's postfix sample contract."""

from __future__ import annotations

import re
import time
from functools import cache
from pathlib import Path

import pytest
import yaml

from streams.parse.dispatch import LineParser

from ..corpus import MISSING, failjson_cases
from ..corpus import get as _get

DATA = Path(__file__).resolve().parent.parent / "data"
PGP_CASES = sorted((DATA / "postfix-grok-patterns" / "cases").glob("*.yaml"))
F2B_POSTFIX = DATA / "fail2ban-samples" / "logs" / "postfix"
SUBPATTERNS = {"POSTFIX_TLS_FEATURES", "POSTFIX_COMMAND_COUNTER_DATA", "POSTFIX_DELAYS", "POSTFIX_RELAY"}
COMPONENT = {"POSTFIX_TRIVIAL_REWRITE": "trivial-rewrite", "POSTFIX_SCRIPT": "postfix-script"}


def get(doc, path):
    return _get(doc, path, MISSING)


@cache
def parser(year: int = 2023, tz: str = "UTC") -> LineParser:
    return LineParser(year=year, timezone=tz)




def norm(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def parse(msg: str, program: str = "postfix/smtpd") -> dict:
    return parser().parse(f"Oct 26 18:13:50 mail {program}[1234]: {msg}").to_doc()


def kv_tail(tail: str) -> dict:
    """`postfix` of an smtpd `QID: key=value, ...` line (POSTFIX_KEYVALUE) with that tail."""
    doc = parse(f"0F5383D: {tail}")
    assert "tags" not in doc, doc
    return doc["postfix"]


def command_counters(data: str) -> dict:
    """The `cmd_*` fields of an smtpd `disconnect from ...` line with those counters."""
    doc = parse(f"disconnect from unknown[192.0.2.1] {data}")
    assert "tags" not in doc and doc["postfix"]["command_counter_data"] == data, doc
    return {k: v for k, v in doc["postfix"].items() if k.startswith("cmd_")}


# -- post-processing (the rules' ops) through whole lines ----------------------------------
def test_kv_tail_delivery():
    pf = kv_tail("to=<a@example.com>, orig_to=<b@example.com>, relay=mx.example.net[192.0.2.1]:25, "
                 "delay=3.6, delays=0.2/0.02/0.04/3.3, tls=dane/requiretls?, dsn=2.0.0,")
    assert pf["to"] == "a@example.com" and pf["orig_to"] == "b@example.com"
    assert (pf["relay_hostname"], pf["relay_ip"], pf["relay_port"]) == ("mx.example.net", "192.0.2.1", 25)
    assert pf["relay"] == "mx.example.net[192.0.2.1]:25"
    assert (pf["delay_before_qmgr"], pf["delay_in_qmgr"], pf["delay_conn_setup"], pf["delay_transmission"]) == \
        (0.2, 0.02, 0.04, 3.3)
    assert pf["tls_security_level"] == "dane" and pf["requiretls"] == "requiretls"
    assert pf["requiretls_policy_undecided"] == "?"
    assert pf["dsn"] == "2.0.0"


def test_kv_relay_service_and_client():
    pf = kv_tail("relay=1.example.com.si[private/dovecot-lmtp], client=unknown[2001:db8::1]:4242")
    assert pf["relay_hostname"] == "1.example.com.si" and pf["relay_service"] == "private/dovecot-lmtp"
    assert pf["client_ip"] == "2001:db8::1" and pf["client_port"] == 4242 and pf["client_hostname"] == "unknown"
    pf = kv_tail("to=local@localhost, relay=local")
    assert pf["relay_service"] == "local" and pf["to"] == "local@localhost"


def test_kv_empty_sender_and_commas():
    pf = kv_tail("from=<>, to=<x@example.com>, proto=ESMTP, helo=<[192.0.2.3]>")
    assert pf["from"] == "" and pf["to"] == "x@example.com" and pf["proto"] == "ESMTP"
    assert pf["helo"] == "[192.0.2.3]"


def test_tls_features_with_downgrade_and_violation():
    pf = kv_tail("tls=may:encrypt?/!requiretls:nocertmatch")
    assert pf["tls_security_level"] == "may" and pf["tls_downgrade_level"] == "encrypt"
    assert pf["tls_policy_undecided"] == "?" and pf["requiretls_policy_violation"] == "!"
    assert pf["requiretls_downgrade_level"] == "nocertmatch"


def test_command_counters():
    assert command_counters("helo=1 ehlo=1/2 auth=0/1 quit=1 commands=3/4") == {
        "cmd_helo": 1, "cmd_ehlo_accepted": 1, "cmd_ehlo": 2, "cmd_auth_accepted": 0,
        "cmd_auth": 1, "cmd_quit": 1, "cmd_count_accepted": 3, "cmd_count": 4}


def test_hook_conversions_and_ecs():
    # the client as smtpd logs it (`client=unknown[addr]:port`: no host name for ECS), and
    # a tail with typed keys
    fields = parse("0F5383D: client=unknown[::ffff:192.0.2.9]:25, from=<a@b.example>, size=5360, nrcpt=1, delay=11")
    pf = fields["postfix"]
    assert pf["queueid"] == "0F5383D" and pf["client_ip"] == "::ffff:192.0.2.9" and pf["client_port"] == 25
    assert pf["size"] == 5360 and pf["nrcpt"] == 1
    assert isinstance(pf["delay"], float) and pf["delay"] == 11.0
    assert "keyvalue_data" not in pf
    assert fields["source"] == {"address": "::ffff:192.0.2.9", "ip": "192.0.2.9", "port": 25}
    assert fields["email"]["from"]["address"] == ["a@b.example"] and fields["email"]["local_id"] == "0F5383D"


def test_grok_conversions():
    doc = parse("NOQUEUE: reject: RCPT from unknown[192.0.2.1]:2525: 550 5.1.1 <a@b>: Recipient address "
                "rejected: User unknown; from=<c@d> to=<a@b> proto=ESMTP helo=<x>")
    assert doc["postfix"]["status_code"] == 550 and doc["postfix"]["client_port"] == 2525
    doc = parse("PREGREET 14 after 0.08 from [192.0.2.2]:59415: EHLO ylmf-pc", "postfix/postscreen")
    assert doc["postfix"]["postscreen_violation_time"] == 0.08
    doc = parse("statistics: max connection count 3 for (smtp:192.0.2.3) at Oct 26 18:13:50", "postfix/anvil")
    assert doc["postfix"]["anvil_conn_count"] == 3 and doc["postfix"]["anvil_timestamp"] == "Oct 26 18:13:50"


def test_delivery_line_end_to_end():
    doc = parse("0D9633D: to=<jos@example.com>, relay=mail1.example.net[10.74.103.11]:25, delay=11, "
                "delays=5.4/0.06/5.1/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as F12DF84004)",
                "postfix/smtp")
    pf = doc["postfix"]
    assert pf["status"] == "sent" and pf["smtp_response"] == "250 2.0.0 Ok: queued as F12DF84004"
    assert pf["delay"] == 11.0 and pf["delay_transmission"] == 0.03 and pf["relay_port"] == 25
    assert doc["destination"]["ip"] == "10.74.103.11"
    assert doc["event"]["outcome"] == "success" and doc["event"]["dataset"] == "postfix.log"
    assert doc["email"]["to"]["address"] == ["jos@example.com"]


def test_multi_instance_and_service_names():
    for prog in ("postfix-out/smtpd", "postfix/submission/smtpd", "postfix/smtps/smtpd"):
        doc = parse("connect from unknown[192.0.2.1]", prog)
        assert doc["event"]["action"] == "connect" and doc["source"]["ip"] == "192.0.2.1", prog


def test_unknown_shape_of_known_level_still_structured():
    doc = parse("panic: myfree: corrupt or unallocated memory block", "postfix/qmgr")
    assert doc["postfix"]["message_level"] == "panic" and "tags" not in doc
    doc = parse("error: open database /etc/postfix/virtual.db: No such file or directory", "postfix/trivial-rewrite")
    assert doc["postfix"]["message_level"] == "error"


def test_unknown_shape_is_a_grok_failure():
    doc = parse("this is not a postfix message shape", "postfix/smtpd")
    assert doc["tags"] == ["_grokparsefailure"] and doc["event"]["dataset"] == "postfix.log"


@pytest.mark.parametrize("msg,program", [
    ("NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1 <a@b>: " + "x; " * 3000 + "from=<a@b> to=<c@d> proto=ESMTP helo=<" + "h" * 5000, "postfix/smtpd"),
    ("0D9633D: to=<a@b>, " + "relay=x, " * 3000 + "status", "postfix/smtp"),
    ("warning: " + "unknown[1.2.3.4]: " * 2000 + "x; from=<a> " * 2000 + "=", "postfix/smtpd"),
    ("4104E3D: milter-reject: " + "a; from=<x> " * 3000 + ": ", "postfix/cleanup"),
    ("statistics: max connection rate 1/60s for (" + "smtp:" * 3000 + "1.2.3.4 at Oct 26 18:13:50", "postfix/anvil"),
    ("PREGREET 6 after 1.2 from [" + "1." * 5000 + "]:x", "postfix/postscreen"),
])
def test_near_miss_lines_stay_linear(msg, program):
    t = time.perf_counter()
    parse(msg, program)
    assert time.perf_counter() - t < 0.25


# -- the postfix-grok-patterns contract ------------------------------------------------------
def _pgp_case(path: Path):
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = re.search(r"%\{(\w+)\}", case["pattern"]).group(1)
    return name, case


LINE_CASES = [p for p in PGP_CASES if _pgp_case(p)[0] not in SUBPATTERNS]
SUB_CASES = [p for p in PGP_CASES if _pgp_case(p)[0] in SUBPATTERNS]


@pytest.mark.parametrize("path", SUB_CASES, ids=[p.stem for p in SUB_CASES])
def test_postfix_grok_patterns_subpattern_case(path):
    """Upstream's sub-pattern cases (a value inside a line, split by a later step there)
    go in a line that carries that value, split here by the rules' ops."""
    name, case = _pgp_case(path)
    data = str(case["data"])
    if name == "POSTFIX_COMMAND_COUNTER_DATA":
        pf = command_counters(data)
    else:
        key = {"POSTFIX_DELAYS": "delays", "POSTFIX_TLS_FEATURES": "tls", "POSTFIX_RELAY": "relay"}[name]
        pf = kv_tail(f"{key}={data}")
    for key, want in case["results"].items():
        got = pf.get(key[len("postfix_"):], MISSING)
        assert got is not MISSING, f"{key} missing in {pf}"
        assert norm(got) == norm(want), f"{key}: want {want!r}, got {got!r}"


@pytest.mark.parametrize("path", LINE_CASES, ids=[p.stem for p in LINE_CASES])
def test_postfix_grok_patterns_case(path):
    name, case = _pgp_case(path)
    comp = COMPONENT.get(name, name[len("POSTFIX_"):].lower())
    doc = parser().parse(f"Oct 26 18:13:50 mail postfix/{comp}[1234]: {case['data']}".rstrip("\n")).to_doc()
    assert "tags" not in doc, doc
    for key, want in (case.get("results") or {}).items():
        if key == "postfix_keyvalue_data":
            # every key of the tail (keys only: values may hold `=` themselves, e.g. SRS addresses)
            for k in re.findall(r"(?:^|[\s,])([\w-]+)=", str(want)):
                assert get(doc, f"postfix.{k}") is not MISSING, f"postfix.{k} missing"
            continue
        got = get(doc, "postfix." + key[len("postfix_"):])
        assert got is not MISSING, f"{key} missing in {doc.get('postfix')}"
        assert norm(got) == norm(want), f"{key}: want {want!r}, got {got!r}"


# -- fail2ban's postfix samples ---------------------------------------------------------------


F2B = list(failjson_cases(F2B_POSTFIX))
# The same line is expected both ways in fail2ban's file (not a failure in its default
# mode "auth", a failure in "aggressive"): we follow the default mode (outcome unknown).
F2B_MODE_DEPENDENT = {"Jan 14 16:18:16 xxx postfix/smtpd[14933]: warning: host[192.0.2.5]: "
                      "SASL CRAM-MD5 authentication failed: Invalid authentication mechanism"}


@pytest.mark.parametrize("line,exp", F2B, ids=[f"{i}" for i in range(len(F2B))])
def test_fail2ban_postfix_sample(line, exp):
    doc = parser(2005, "Europe/Paris").parse(line).to_doc()
    failure = get(doc, "event.outcome") == "failure"
    host = exp.get("host")
    if exp["match"]:
        if line in F2B_MODE_DEPENDENT:
            assert get(doc, "event.outcome") == "unknown"
            return
        assert failure, doc
        assert get(doc, "source.address") == host
        assert get(doc, "source.ip") == host
        assert list(get(doc, "event.category")) in (["authentication"], ["network"], ["email"])
        if exp.get("user"):
            assert get(doc, "user.name") == exp["user"]
    else:
        assert not failure, doc
