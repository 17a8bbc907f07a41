"""The syslog header (RFC 3164, RFC 5424, rsyslog's file format, TAI64N labels) as the
native core reads it: `streams._native.parse_syslog(line, year, tz, now)` ->
`(fields, program, message)` or None; the year guesses of a running parser (its clock
moving between lines) through `LineParser`."""

import time

import pytest

from streams._native import parse_syslog
from streams.clock import ManualClock
from streams.event import parse_timestamp
from streams.parse.dispatch import LineParser


def parse(line, year=None, tz=None, now=None):
    """(program, message) or None, and the fields the header wrote (as the Python
    `parse_syslog(line, fields, TimeParser(year, tz, clock))` did: no clock = the system's)."""
    res = parse_syslog(line, year, tz or "UTC", time.time() if now is None else now)
    if res is None:
        return None, {}
    fields, prog, msg = res
    return (prog, msg), fields


def stamp(line, now):
    """The @timestamp the header gives a year-less line read at `now` (ISO text)."""
    return parse(line, now=parse_timestamp(now))[1].get("@timestamp")


def test_rfc3164_with_pri():
    (prog, msg), f = parse("<38>Mar 27 19:06:53 source_server sshd(pam_unix)[12750]: session opened", year=2008)
    assert (prog, msg) == ("sshd(pam_unix)", "session opened")
    s = f["log"]["syslog"]
    assert s["priority"] == 38 and s["facility"] == {"code": 4, "name": "auth"}
    assert s["severity"] == {"code": 6, "name": "info"}
    assert f["host"]["hostname"] == "source_server" and f["process"] == {"name": "sshd(pam_unix)", "pid": 12750}
    assert f["@timestamp"] == "2008-03-27T19:06:53.000Z"


@pytest.mark.parametrize("line,host,prog,msg", [
    ("Feb 18 16:01:59 serverX -- MARK --", "serverX", "--", "MARK --"),
    ("<38> Mar  7 19:06:53 example tag: testmessage", "example", "tag", "testmessage"),
    ("<38>Mar 7 2008 19:06:53 example tag: testmessage", "example", "tag", "testmessage"),
    ("<38>Mar 7 19:06:53: example tag: testmessage", "example", "tag", "testmessage"),
    ("<6>AUG 10 22:18:24 host tag This msg", "host", "tag", "This msg"),
    ("<14>2010-08-30T23:00:05Z X4711 AAAA", "X4711", "AAAA", ""),
    ("2024-08-26T01:33:38.572449+00:00 machine postfix/smtpd[60203]: NOQUEUE: x", "machine", "postfix/smtpd", "NOQUEUE: x"),
    ("Feb 17 17:40:17 sshd[19725]: Connection from 192.0.2.10", None, "sshd", "Connection from 192.0.2.10"),
    ("host fail2ban[15699]: [postfix-sasl] Ban 192.0.2.3", "host", "fail2ban", "[postfix-sasl] Ban 192.0.2.3"),
    ("2020-03-24 08:38:47.230409-0700  localhost sshd[2531]: Disconnected", "localhost", "sshd", "Disconnected"),
])
def test_rfc3164_variants(line, host, prog, msg):
    (p, m), f = parse(line, year=2010)
    assert p == prog and m == msg
    assert f.get("host", {}).get("hostname") == host


@pytest.mark.parametrize("line", [
    "Nov 24 00:05:02 mx1 sshd[4007]: x",                                  # the common shape
    "2024-08-26T01:33:38.572449+00:00 mx1 postfix/smtpd[60203]: x",       # rsyslog's file format
    "<38>Mar 7 2008 19:06:53 mx1 tag: x",                                 # the general RFC 3164 pattern
    "mx1 fail2ban[15699]: x",                                             # no time
    "<38>1 2026-11-24T00:00:00Z mx1 sshd 12 - - x",                       # RFC 5424
])
def test_a_header_host_is_ecs_host_name_too(line):
    # host.name is the one field metrics and the index read; host.hostname stays for ECS readers
    _, f = parse(line, year=2026)
    assert f["host"] == {"hostname": "mx1", "name": "mx1"}


def test_no_host_in_the_header_no_host_field():
    _, f = parse("Feb 17 17:40:17 sshd[19725]: Connection from 192.0.2.10", year=2026)
    assert "host" not in f  # `streams parse` prints what the line holds; the pipelines add the default


def test_rfc3164_year_and_timezone():
    _, f = parse("Jan  5 01:31:41 www sshd[1]: x", year=2005, tz="Europe/Paris")
    assert f["@timestamp"] == "2005-01-05T00:31:41.000Z"


def test_year_rollover_from_clock():
    jan_2nd_2025 = "2025-01-02T10:00:00Z"
    assert stamp("Dec 31 23:59:59 h p: x", jan_2nd_2025) == "2024-12-31T23:59:59.000Z"  # last year's December
    assert stamp("Jan  2 09:00:00 h p: x", jan_2nd_2025) == "2025-01-02T09:00:00.000Z"
    dec_31 = "2024-12-31T23:00:00Z"
    assert stamp("Jan  1 00:00:01 h p: x", dec_31) == "2025-01-01T00:00:01.000Z"  # sender's clock ahead


def test_rfc5424_full():
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] '
            '\ufeffAn application event')
    (prog, msg), f = parse(line)
    s = f["log"]["syslog"]
    assert prog == "evntslog" and msg == "An application event"
    assert s["version"] == 1 and s["msgid"] == "ID47" and "procid" not in s
    assert s["structured_data"] == {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                                    "examplePriority@32473": {"class": "high"}}
    assert f["@timestamp"] == "2003-10-11T22:14:15.003Z"


def test_rfc5424_nil_and_offset():
    (prog, msg), f = parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time")
    assert f["@timestamp"] == "2003-08-24T12:14:15.000Z" and f["process"] == {"name": "myproc", "pid": 8710}
    assert msg == "%% It's time"
    (prog, msg), f = parse("<34>1 - - - - - -")
    assert prog is None and msg == "" and "@timestamp" not in f


def test_sd_escapes():
    (_, msg), f = parse(r'<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 k="x\"y\]z\\"] m')
    assert f["log"]["syslog"]["structured_data"] == {"a@1": {"k": 'x"y]z\\'}}
    assert msg == "m"


def test_bad_priority_tagged():
    _, f = parse("<999>Jan  1 00:00:00 h p: m", year=2020)
    assert "_syslog_bad_priority" in f["tags"]


def test_not_syslog():
    assert parse("just some text")[0] is None
    assert parse("Foo 12 12:00:00 h p: m")[0] is None  # not a month


def test_rfc3339_fraction_stamps_share_their_second():
    def iso(text):
        return parse(f"{text} mx prog: x")[1].get("@timestamp")

    assert iso("2024-08-26T01:33:38.572449+02:00") == "2024-08-25T23:33:38.572Z"
    assert iso("2024-08-26T01:33:38.9+02:00") == "2024-08-25T23:33:38.900Z"
    assert iso("2024-08-26 01:33:38,061") == "2024-08-26T01:33:38.061Z"
    assert iso("2024-02-30T01:33:38.5Z") is None
    # one parser, one after the other: the second stamp of the same second is not the
    # first one's (the core's cache of parsed stamps)
    p = LineParser(year=2024)
    for text, want in [("2024-08-26T01:33:38.572449+02:00", "2024-08-25T23:33:38.572Z"),
                       ("2024-08-26T01:33:38.9+02:00", "2024-08-25T23:33:38.900Z"),
                       ("2024-08-26 01:33:38,061", "2024-08-26T01:33:38.061Z"),
                       ("2024-02-30T01:33:38.5Z", None)]:
        assert p.parse(f"{text} mx prog: x").to_doc().get("@timestamp") == want, text


def test_rfc3339_common_shape_matches_general_parse():
    # the fast path gives what the general pattern gives, one space opening the message dropped
    (prog, msg), f = parse("2024-08-26T01:33:38.572449+00:00 mx postfix/qmgr[7]:   three")
    assert (prog, msg) == ("postfix/qmgr", " three")
    assert f == {"@timestamp": "2024-08-26T01:33:38.572Z", "host": {"hostname": "mx", "name": "mx"},
                 "process": {"name": "postfix/qmgr", "pid": 7}}


@pytest.mark.parametrize("now,want", [
    ("2026-03-10T12:00:00Z", "2024-02-29T10:00:00.000Z"),  # the year before (2025) has no Feb 29
    ("2028-01-10T12:00:00Z", "2024-02-29T10:00:00.000Z"),  # this year's Feb 29 is still ahead
    ("2028-03-01T12:00:00Z", "2028-02-29T10:00:00.000Z"),
    ("2025-03-01T12:00:00Z", "2024-02-29T10:00:00.000Z"),
])
def test_leap_day_without_year_takes_the_latest_leap_year(now, want):
    (prog, _), f = parse("Feb 29 10:00:00 host sshd[1]: x", now=parse_timestamp(now))
    assert prog == "sshd" and f["@timestamp"] == want and f["host"]["hostname"] == "host"
    # the same through a parser whose clock says `now`
    doc = LineParser(clock=ManualClock(parse_timestamp(now))).parse("Feb 29 10:00:00 host sshd[1]: x").to_doc()
    assert doc["@timestamp"] == want and doc["host"]["hostname"] == "host"


def test_rfc5424_message_right_after_structured_data_is_kept():
    (prog, msg), f = parse('<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="1"]no space before me')
    assert prog == "app" and msg == "no space before me"
    assert f["log"]["syslog"]["structured_data"] == {"a@1": {"x": "1"}}
    (_, msg), _ = parse('<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="1"] spaced')
    assert msg == "spaced"


@pytest.mark.parametrize("line", [
    "<13>1 2024-02-05T17:32:18Z host app \u00b2 - - msg",   # a superscript digit: isdigit() but not int()
    "<13>Feb  5 17:32:18 host app[\u00b2]: msg",
])
def test_non_decimal_digit_pid_is_kept_as_text(line):
    (prog, msg), f = parse(line, year=2024)
    assert (prog, msg) == ("app", "msg") and f["process"]["pid"] == "\u00b2"


def test_year_guess_is_not_reused_a_year_later():
    # a long-running process (`streams run`) on a quiet host: its daily cron line has the
    # same text every year, and the cache kept the first year's guess for it
    clock = ManualClock(parse_timestamp("2025-03-05T10:00:00Z"))
    p = LineParser(clock=clock)
    line = "Mar  5 06:25:01 host CRON[1]: (root) CMD (x)"
    assert p.parse(line).to_doc()["@timestamp"] == "2025-03-05T06:25:01.000Z"
    clock.set(parse_timestamp("2026-03-05T10:00:00Z"))
    p.parse("Mar  5 06:25:00 host CRON[1]: earlier line, new text")
    assert p.parse(line).to_doc()["@timestamp"] == "2026-03-05T06:25:01.000Z"


def test_tai64n_label_out_of_range_keeps_the_line_parsed():
    # was: OSError/OverflowError from the time conversion, the line tagged _parser_error
    (prog, msg), f = parse("@4fffffffffffffff00000000 prog[3]: msg")
    assert (prog, msg) == ("prog", "msg") and f["process"] == {"name": "prog", "pid": 3}
    assert "@timestamp" not in f
    (_, _), f = parse("@400000005f5e100000000000 prog: msg")
    assert f["@timestamp"] == "2020-09-13T12:26:40.000Z"


@pytest.mark.parametrize("line", ["Dec 31 23:59:60 mx1 sshd[7]: Failed password for root from 192.0.2.1 port 1 ssh2",
                                  "Apr 31 10:00:00 mx1 sshd[7]: Failed password for root from 192.0.2.1 port 1 ssh2"])
def test_a_date_that_is_none_keeps_the_header_tagged(line):
    """A leap second or an impossible date used to lose the whole header (no host, no
    program: the line fell to `syslog`, unparsed); the header stays, without its time."""
    doc = LineParser(year=2016).parse(line).to_doc()
    assert "@timestamp" not in doc and "_syslog_bad_timestamp" in doc["tags"]
    assert doc["host"]["name"] == "mx1" and doc["process"] == {"name": "sshd", "pid": 7}
    assert doc["event"]["dataset"] == "sshd.log" and doc["event"]["outcome"] == "failure"
