"""The native syslog header (`streams._native.parse_syslog`) against its oracle, the Python
`streams.parse.syslog.parse_syslog`: every line of samples/logs and of the text corpora in
tests/data (and the raw lines inside their JSON cases), plus generated hostile variants,
each parsed by both with the same year, time zone and clock; fields (values, types and key
order), program and message must be the same, and so must an exception.

A fresh TimeParser per line: its caches are not part of the result (the native side keeps
none), and a shared one would make a line's result depend on the lines before it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from streams import _native
from streams.clock import ManualClock
from streams.parse.syslog import parse_syslog
from streams.parse.timestamps import TimeParser

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [  # (year, tz, now)
    (None, "UTC", 1_767_225_600.0 - 3600),  # 2025-12-31T23:00Z: January lines go to 2026
    (None, "Europe/Paris", 1_772_668_800.5),  # 2026-03-05, mid-second
    (2024, "Europe/Paris", 1_700_000_000.0),
    (None, "America/New_York", 1_709_200_000.0),  # 2024-02-29: leap day
]


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def corpus_lines() -> list[str]:
    files = sorted(p for base in (ROOT / "samples" / "logs", ROOT / "tests" / "data")
                   for p in base.rglob("*") if p.is_file())
    lines: list[str] = []
    for path in files:
        data = path.read_bytes()
        if b"\0" in data[:4096] or path.suffix == ".mmdb":
            continue
        for line in data.decode("utf-8", errors="replace").splitlines():
            if line.startswith("{"):  # JSON cases: the raw lines they quote
                try:
                    lines.extend(s for s in _strings(json.loads(line)) if len(s) >= 8)
                except ValueError:
                    pass
            elif line:
                lines.append(line)
    return list(dict.fromkeys(lines))


HEADS = [
    "<34>", "<999>", "<192>", "<0>", "<٣٨>", "<1234>", "<13> ", "<13>1 ", "<165>1 ", "@4000000050b7b6e10cd5ef6c ",
    "Feb  5 ", "Feb 29 ", "Jan  1 ", "Dec 31 ", "Mar 31 ", "Oct 27 ", "feb 5 ", "FEB 05 2024 ", "Abc 1 ",
    "Feb ٥ ", "Feb  ５ ", "Apr 31 ", "Feb 30 2024 ", "Feb 29 2023 ",
]
CLOCKS = ["02:30:00", "14:34:10", "14:34:10.123", "14:34:10,5", "1:02:03", "24:00:00", "23:59:60",
          "14:34:10.1234567891", "١٤:٣٤:١٠", "14:34:10:", "00:00:00.999999"]
ISOS = [
    "2024-08-26T01:33:38.572449+00:00", "2024-08-26T01:33:38Z", "2024-08-26 01:33:38,5+0200",
    "2024-03-31T02:30:00", "2024-10-27T02:30:00.5", "2024-02-30T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00", "2024-08-26T01:33:38.1234567890Z", "2024-08-26T01:33:38+24:00",
    "2024-W01-1T10:00", "20240826T013338", "2024-08-26T25:00:00", "٢٠٢٤-08-26T01:33:38Z",
    "2024-08-26T01:33:38.5.5", "2024-08-26T01:33:38,123+01:00:30", "2024-08-26T01:33:38-00:00:00.5",
    "2024-08-26T01:33:38.+01", "2024-08-26é01:33:38", "-", "2024-08-26T01:33:38.572449+0000",
]
HOSTS = ["host", "host.example.org", "192.0.2.1", "h:", "sshd[12]:", "[sshd]:", "auth(u,1.2.3.4,sasl:login)<abc>:",
         "a[b", "hôte", "h\u00a0x", "h\u3000x", "-", ""]
TAGS = ["sshd[123]:", "sshd:", "postfix/smtpd[٣٤]:", "tag[]:", "tag[x y]:", "tag[12", "tag:", "tag", "-- MARK --",
        "CRON[99999999999999999999999]:", "a]b:", "prog[1]"]
SD = ['-', '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]',
      '[a x="1"][b y="\\"q\\"" z="\\]"]', '[a x="1"][a y="2"]', '[a x="1" x="2"]', '[a x="un]', '[a x="1"]x',
      '[]', '[ a="1"]', '[a\tx="1"  ]', '[a x="[b y=\\"1\\"]"]', '[x="1"]', '[a x="1"', '[a x=1]']

MSGS = [" msg", "", "msg", " \ufeffmsg", "  x"]


def hostile_lines(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.randrange(8)
        if kind == 0:  # random bytes
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).decode("utf-8", "replace"))
        elif kind == 1:  # a BSD-ish header from pieces
            out.append(rng.choice(HEADS) + rng.choice(CLOCKS) + rng.choice([" ", "  ", ": ", ""])
                       + rng.choice(HOSTS) + rng.choice([" ", "  ", "\t", ""]) + rng.choice(TAGS)
                       + rng.choice([" msg", "", "  two", " \ufeffbom"]))
        elif kind == 2:  # an ISO header
            out.append(rng.choice(["", "<13>", "<200> "]) + rng.choice(ISOS) + rng.choice([" ", "  ", ""])
                       + rng.choice(HOSTS) + " " + rng.choice(TAGS) + " msg")
        elif kind == 3:  # RFC 5424
            out.append(f"<{rng.choice(['165', '999', '0', '١٦٥'])}>{rng.choice(['1', '12', '٣', '123'])} "
                       f"{rng.choice(ISOS)} {rng.choice(HOSTS) or '-'} {rng.choice(['app', '-', 'sshd'])} "
                       f"{rng.choice(['123', '-', '٤٥', '12a', '9' * 30])} {rng.choice(['ID47', '-'])} "
                       + rng.choice(SD) + rng.choice(MSGS))
        elif kind == 4:  # a corpus-like line, mutated
            base = rng.choice(HEADS) + rng.choice(CLOCKS) + " host sshd[1]: message"
            i = rng.randrange(len(base))
            out.append(base[:i] + rng.choice(["\0", "\r", "\n", "\t", " ", "\u2028", "٣", "[", "]", ":", "<",
                                               "\ufffd", "\U0001F600", "\ud800", "\udcff"]) + base[i + rng.randrange(2):])
        elif kind == 5:  # TAI64N and the shape without a time
            out.append(rng.choice([f"@4{rng.getrandbits(60):015x}{rng.getrandbits(32):08x} ", "@4000000050b7b6e1 ",
                                   "<13>", "", "<999>"])
                       + rng.choice(["host sshd[12]: m", "sshd[12]: m", "sshd: m", "h-1.x a/b.c[٣]: m",
                                     "sshd[x]: m"]))
        elif kind == 6:  # lone surrogates (a JSON `\\ud800` escape) in an RFC 5424 line
            sur = rng.choice(["\ud800", "\udfff", "\udc80"])
            out.append(rng.choice([f"<13>1 2024-08-26{sur}01:33:38Z h{sur} app{sur} 1 - [a{sur} x=\"{sur}\"] m{sur}",
                                   f"<13>Feb  5 10:00:00 h{sur} sshd[1]: {sur}", f"{sur}<13>1 - - - - - -"]))
        else:  # very long
            out.append(rng.choice(HEADS) + "14:34:10 host " + "t" * rng.choice([1, 5000]) + "["
                       + "7" * rng.choice([3, 5000]) + "]: " + "x" * 20000)
    return out


def outcome(fn, *args):
    """The result, or the exception's type: raising the same is part of the contract (int()
    refuses a pid of over 4,300 digits on both sides)."""
    try:
        return "ok", fn(*args)
    except Exception as e:
        return "raises", type(e).__name__


def python_side(line, year, tz, now):
    fields: dict = {}
    res = parse_syslog(line, fields, TimeParser(year=year, tz=tz, clock=ManualClock(now)))
    return None if res is None else (fields, res[0], res[1])


def ordered(v):
    """The value with its dicts' key order made visible (== ignores it)."""
    if isinstance(v, dict):
        return [(k, ordered(x)) for k, x in v.items()]
    if isinstance(v, (list, tuple)):
        return [ordered(x) for x in v]
    return (type(v).__name__, v)


LINES = corpus_lines()
HOSTILE = hostile_lines(random.Random(14), 6000)


@pytest.mark.parametrize("year,tz,now", SETTINGS)
def test_native_header_matches_python(year, tz, now):
    diffs = []
    for line in LINES + HOSTILE:
        want = outcome(python_side, line, year, tz, now)
        got = outcome(_native.parse_syslog, line, year, tz, now)
        if ordered(want) != ordered(got):
            diffs.append((line[:200], want, got))
    print(f"compared {len(LINES) + len(HOSTILE)} lines ({len(LINES)} corpus, {len(HOSTILE)} hostile)")
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:3]}"


def test_corpus_is_there():
    assert len(LINES) > 3000 and len(HOSTILE) == 6000
    print(f"lines per setting: {len(LINES)} corpus + {len(HOSTILE)} hostile")


def test_unknown_time_zone_raises():
    with pytest.raises(ValueError):
        _native.parse_syslog("Feb  5 10:00:00 host sshd[1]: x", None, "Mars/Olympus", 0.0)
    with pytest.raises(ValueError):
        TimeParser(tz="Mars/Olympus")


def test_a_few_shapes_directly():
    f, prog, msg = _native.parse_syslog("<999>Mar 27 19:06:53 h sshd[12]: x", 2008, "UTC", 0.0)
    assert f == {"@timestamp": "2008-03-27T19:06:53.000Z", "host": {"hostname": "h", "name": "h"},
                 "process": {"name": "sshd", "pid": 12}, "tags": ["_syslog_bad_priority"],
                 "log": {"syslog": {"priority": 999}}}
    assert (prog, msg) == ("sshd", "x")
    assert _native.parse_syslog("not syslog", None, "UTC", 0.0) is None
