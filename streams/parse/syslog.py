"""Syslog header parsing: RFC 3164 (BSD, with its real-world variants) and RFC 5424.

`parse_syslog(line, fields, times)` writes `host.hostname` and `host.name` (ECS's name
of the host: the one field metrics and the index read; the pipelines give one to lines
that name no host), `process.name`, `process.pid`, `@timestamp` and, where the header
has them, `log.syslog.*` (priority, facility, severity; for RFC 5424 also version,
appname, procid, msgid, structured_data) into `fields` and returns (program, message),
or None when the line is not syslog-shaped. No I/O here. This is the hot path of every syslog line: one
regex call, one tuple unpack, cached timestamps.
"""

from __future__ import annotations

import re

from .timestamps import MONTHS, TimeParser

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
              "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

# RFC 3164 and what real senders make of it: optional PRI (and a space after it),
# `Mmm d[d] [yyyy] hh:mm:ss[.frac][:]` or an RFC 3339 stamp (rsyslog's high-precision
# file format), then HOST, then TAG[PID]: and the message. Hostname and tag are optional.
_BSD = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)? ?"
    r"(?:(?P<bsd>(?P<mon>[A-Za-z]{3}) +(?P<day>\d{1,2}) +(?:(?P<year>\d{4}) +)?"
    r"(?P<time>\d{1,2}:\d\d:\d\d(?:[.,]\d{1,9})?)):?"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?))"
    r"(?: <[a-z]+\d?\.[a-z]+>)?"  # FreeBSD `syslogd -v`: `<mail.info>` after the time
    r"(?: +(?P<host>\S+)(?: (?P<tag>[^\s\[:]+)(?:\[(?P<pid>[^\]\s]*)\])?:?)? ?)? ?(?P<msg>.*)",
    re.DOTALL,
)
# The shape of nearly every line of a syslog file, matched first because it is twice as
# cheap as the general pattern: `Mmm dd hh:mm:ss host tag[pid]: msg`, no PRI.
_COMMON = re.compile(
    r"(?P<bsd>(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]?\d) (?P<time>\d\d:\d\d:\d\d)) "
    r"(?P<host>[^\s:\[\]]+) (?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)", re.DOTALL)
# The same shape with rsyslog's high-precision RFC 3339 stamp (its file default):
# `2024-08-26T01:33:38.572449+00:00 host tag[pid]: msg`. What it matches, `_BSD` would
# split the same way (it also drops one space opening the message).
_COMMON_ISO = re.compile(
    r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<host>[^\s:\[\]<]+) (?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)", re.DOTALL)
# A journal export or a relay that dropped the timestamp: `host prog[pid]: msg`.
_NO_TIME = re.compile(r"(?:<(?P<pri>\d{1,3})>)?(?P<host>[\w.-]+) (?P<tag>[\w./-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)",
                      re.DOTALL)
_TAG_ONLY = re.compile(r"\[?([^\s\[\]:]+)\]?(?:\[([^\]\s]*)\])?:?$")  # also `[sshd]:`
# a tag with context, Dovecot 2.4's own log: `auth(user,ip,sasl:login)<session>:`
_TAG_CTX = re.compile(r"(\w[\w-]*\([^\s()]*\)(?:<[^\s<>]*>)?)():$")
# daemontools/multilog: `@4000000050b7b6e10cd5ef6c prog[pid]: msg` (TAI64N label, no host)
_TAI64N = re.compile(r"@(4[0-9a-f]{15})[0-9a-f]{8} ([^\s\[:]+)(?:\[(\d+)\])?: (.*)", re.DOTALL)
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<ver>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    # the message after a space, or right after the structured data (a sender that
    # leaves the space out must not lose its message)
    r"(?P<sd>-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?:(?: |(?<=\]))(?P<msg>.*))?",
    re.DOTALL,
)
_SD_ELEMENT = re.compile(r"\[([^\s\]=\"]+)((?:\s+[^\s=\]\"]+=\"(?:[^\"\\]|\\.)*\")*)\s*\]", re.DOTALL)
_SD_PARAM = re.compile(r"([^\s=\]\"]+)=\"((?:[^\"\\]|\\.)*)\"", re.DOTALL)
_SD_UNESCAPE = re.compile(r"\\([\"\\\]])")

_PRI_CACHE: dict[str, dict | None] = {}


def priority_fields(pri: str) -> dict | None:
    """'38' -> {'priority': 38, 'facility': {...}, 'severity': {...}}; None if out of range."""
    hit = _PRI_CACHE.get(pri, False)
    if hit is not False:
        return hit
    n = int(pri)
    value = None
    if n <= 191:
        value = {"priority": n,
                 "facility": {"code": n >> 3, "name": FACILITIES[n >> 3]},
                 "severity": {"code": n & 7, "name": SEVERITIES[n & 7]}}
    _PRI_CACHE[pri] = value
    return value


def _int_or_text(v: str) -> int | str:
    return int(v) if v.isdecimal() else v  # not isdigit(): int("²") raises


def structured_data(sd: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for el in _SD_ELEMENT.finditer(sd):
        out[el.group(1)] = {k: _SD_UNESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(el.group(2))}
    return out


def _set_pri(fields: dict, syslog: dict, pri: str | None) -> None:
    if pri is None:
        return
    p = priority_fields(pri)
    if p is None:
        fields.setdefault("tags", []).append("_syslog_bad_priority")
        syslog["priority"] = int(pri)
    else:
        # copies: the cached dicts are shared and documents get mutated downstream
        syslog["priority"] = p["priority"]
        syslog["facility"] = dict(p["facility"])
        syslog["severity"] = dict(p["severity"])


def parse_rfc5424(m: re.Match, fields: dict, times: TimeParser) -> tuple[str | None, str]:
    syslog: dict = {"version": int(m["ver"])}
    _set_pri(fields, syslog, m["pri"])
    ts = m["ts"]
    stamp = times.iso(ts) if ts != "-" else None
    if stamp is not None:
        fields["@timestamp"] = stamp[1]
    host, app, procid, msgid, sd = m["host"], m["app"], m["procid"], m["msgid"], m["sd"]
    if host != "-":
        syslog["hostname"] = host
        fields["host"] = {"hostname": host, "name": host}
    program = None
    if app != "-":
        program = syslog["appname"] = app
    if procid != "-":
        syslog["procid"] = _int_or_text(procid)
    if msgid != "-":
        syslog["msgid"] = msgid
    if sd != "-":
        syslog["structured_data"] = structured_data(sd)
    proc = {}
    if program is not None:
        proc["name"] = program
    if procid != "-":
        proc["pid"] = _int_or_text(procid)
    if proc:
        fields["process"] = proc
    fields.setdefault("log", {})["syslog"] = syslog
    msg = m["msg"] or ""
    if msg.startswith("\ufeff"):
        msg = msg[1:]
    return program, msg


def parse_syslog(line: str, fields: dict, times: TimeParser) -> tuple[str | None, str] | None:
    c = line[:1]  # one slice decides the rare shapes
    if c == "<":
        m = _RFC5424.match(line)
        if m is not None:
            return parse_rfc5424(m, fields, times)
    elif c == "@" and (t := _TAI64N.match(line)) is not None:
        # like Fail2ban, the ~10 s TAI-UTC offset is ignored
        try:
            fields["@timestamp"] = times.epoch(int(t[1], 16) - (1 << 62))[1]
        except (OverflowError, OSError, ValueError):  # a label past year 9999: no time
            pass
        fields["process"] = {"name": t[2], "pid": int(t[3])} if t[3] else {"name": t[2]}
        return t[2], t[4]
    if line[10:11] == "T" and (m := _COMMON_ISO.match(line)) is not None:
        iso, host, tag, pid, msg = m.groups()
        stamp = times.cache.get(iso, False)  # the cache hit of times.iso(), inlined
        if stamp is False:
            stamp = times.iso(iso)
        if stamp is not None:
            fields["@timestamp"] = stamp[1]
        fields["host"] = {"hostname": host, "name": host}
        fields["process"] = {"name": tag, "pid": int(pid)} if pid else {"name": tag}
        return tag, msg[1:] if msg[:1] == " " else msg
    m = _COMMON.match(line)
    if m is not None:
        bsd, mon, day, clock, host, tag, pid, msg = m.groups()
        stamp = times.cache.get(bsd, False)  # the cache hit of times.syslog_cached(), inlined
        if stamp is False:
            stamp = times.syslog_cached(bsd, mon, day, clock, None)
        if stamp is not None:
            fields["@timestamp"] = stamp[1]
            fields["host"] = {"hostname": host, "name": host}
            fields["process"] = {"name": tag, "pid": int(pid)} if pid else {"name": tag}
            return tag, msg
    m = _BSD.match(line)
    if m is not None:
        pri, bsd, mon, day, year, clock, iso, host, tag, pid, msg = m.groups()
        if iso is not None:
            stamp = times.iso(iso)
        else:
            stamp = times.syslog_cached(bsd, mon, day, clock, year)
            if stamp is None:
                if mon.lower() not in MONTHS:  # not a month name: not a syslog line after all
                    return None
                # a date that is none (a leap second `23:59:60`, `Apr 31`): the header all
                # the same, without its time
                fields.setdefault("tags", []).append("_syslog_bad_timestamp")
        if host is not None and (host[-1] == ":" or "[" in host):
            # no hostname: what we took for it is the tag (`Feb 1 10:00:00 sshd[12]: msg`)
            tm = _TAG_ONLY.match(host) or _TAG_CTX.match(host)
            rest = line[m.start("host") + len(host):]
            host = None
            if tm is not None:
                tag, pid = tm.groups()
                msg = rest[1:] if rest[:1] == " " else rest
    else:
        m = _NO_TIME.match(line)
        if m is None:
            return None
        pri, host, tag, pid, msg = m.groups()
        stamp = None
    if stamp is not None:
        fields["@timestamp"] = stamp[1]
    if host is not None:
        fields["host"] = {"hostname": host, "name": host}
    if tag is not None:
        if pid:
            fields["process"] = {"name": tag, "pid": int(pid) if pid.isdecimal() else pid}
        else:
            fields["process"] = {"name": tag}
    if pri is not None:
        syslog: dict = {}
        _set_pri(fields, syslog, pri)
        fields["log"] = {"syslog": syslog}
    return tag, msg
