"""Fail2ban's own log: post-processing after a `patterns/fail2ban.yaml` rule matched.

- `unwrap`: syslog-wrapped messages; `log.logger` from the syslog program when that is a
  fail2ban logger name (`fail2ban.actions[123]: NOTICE [jail] Ban ...`, logtarget=SYSLOG);
- `source.ip` when the ticket id (`source.address`) is an address;
- dates written by fail2ban (`Found 1.2.3.4 - 2019-12-02 09:25:50`, local time like the
  line's own stamp) become ISO 8601 UTC, as `@timestamp` does;
- `Increase Ban ... (3 # 2d 7h 15m -> ...)` ban times in seconds (`-1` = permanent,
  fail2ban's own convention);

Continuation lines of multi-line entries (`ERROR` entries with a command's output) are
attributed by `LineParser` with `continuation`.
"""

from __future__ import annotations

import re

from ..hooks import as_ip

_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+)([ywdhms])")


def bantime_seconds(text: str) -> int | float | None:
    """fail2ban's `seconds2str` output (`1y 3w 4d`, `2d 7h 15m`, `59s`) -> seconds."""
    if text == "permanent" or text == "-1":
        return -1
    parts = _DURATION.findall(text)
    if parts:
        return sum(int(n) * _UNITS[u] for n, u in parts)
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if v.is_integer() else v


def unwrap(fields: dict, ev, parser) -> None:
    """A syslog-wrapped message, its head split by F2B_WRAPPED: parse the body with the
    `fail2ban` rules, the logger name from the program when it is one."""
    f2b = fields["fail2ban"]
    body = f2b.pop("body")
    del fields["fail2ban"]
    log = fields.get("log")
    if log is None or "logger" not in log:
        proc = fields.get("process")
        name = proc.get("name") if proc else None
        if name and name.startswith("fail2ban."):
            fields.setdefault("log", {})["logger"] = name
    parser.apply(parser.by_name["fail2ban"], body, fields, ev)
    ev.meta["body_rule"] = ev.meta.get("rule")


def fail2ban_hook(fields: dict, ev, parser) -> None:
    src = fields.get("source")
    if src is not None:
        addr = src.get("address")
        if addr is not None and "ip" not in src:
            ip = as_ip(addr)
            if ip is not None:
                src["ip"] = ip
    f2b = fields.get("fail2ban")
    if f2b is None:
        return
    times = parser.times
    for key in ("found_time", "last_ban", "ban_end"):
        v = f2b.get(key)
        if v is not None and v[:1].isdigit():
            stamp = times.iso(v)
            if stamp is not None:
                f2b[key] = stamp[1]
    text = f2b.pop("bantime_text", None)
    if text is not None:
        secs = bantime_seconds(text.strip())
        if secs is not None:
            f2b["bantime"] = secs


def continuation(fields: dict, ev, context: tuple) -> None:
    """A line without a header right after a fail2ban own-log entry: its continuation."""
    stamp, logger, pid, level = context
    if stamp is not None:
        fields["@timestamp"] = stamp
    log: dict = {"logger": logger}
    if level:
        log["level"] = level
    fields["log"] = log
    if pid:
        fields["process"] = {"pid": int(pid)}
    fields["event"]["dataset"] = "fail2ban.log"
    ev.tags.append("multiline_continuation")
