"""Line -> Event: recognise the line's shape, split its header, dispatch on the program.

Shapes, decided by the first characters so no line pays for a shape it cannot have:
`{` a JSON line (Wazuh `alerts.json`); `YYYY-MM-DD HH:MM:SS` a Fail2ban own-log line or
Exim's main log; anything else syslog (RFC 5424, RFC 3164 and variants, the no-host and
journal shapes). The message part then goes to the product
parser that owns the program name, which tries its rules as one compiled alternation.
A line nobody understands is still an event: `_grokparsefailure`, `event.original` kept.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson

from .. import PATTERNS_DIR
from ..clock import Clock
from ..event import Event
from ..inputs import DEFAULT_MAX_LINE, LINE_TRUNCATED
from .grok import GrokLibrary
from .products import wazuh
from .products.fail2ban import continuation as fail2ban_continuation
from .rules import ProductParser, load_rules
from .syslog import parse_syslog
from .timestamps import MONTHS, TimeParser

log = logging.getLogger("streams.parse")

# Fail2ban's own log: `2019-11-22 14:30:26,473 fail2ban.actions        [4002]: NOTICE  ...`
# (0.8 pads the logger before `:`, 0.10+ pads it to 24 columns before `[pid]`).
# The level column (`%(levelname)-7s`, fail2ban's own MSG/TRACE/HEAVY/#05-Lev. too) is
# split off here; the product rules see `[jail] Ban 1.2.3.4`.
_F2B_OWN = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[,.]\d+)?) (?P<logger>fail2ban(?:\.[\w-]+)*+) *+"
    r"(?:\[(?P<pid>\d+)\])? *: +"
    r"(?:(?P<level>CRITICAL|ERROR|WARNING|NOTICE|INFO|MSG|DEBUG|TRACE|HEAVY|WARN|#\d\d-Lev\.|Level \d+)(?: +|$))?"
    r"(?P<msg>.*)", re.DOTALL)

# Exim's own main log: `2013-06-02 09:22:06 [pid] [msgid] message`, no host, no program.
# Taken for Exim only when an Exim rule matches the message; otherwise it is syslog.
_EXIM_MAIN = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: ([+-]\d{4}))? (.*)", re.DOTALL)
# Roundcube's own log files (errors, userlogins): `[30-Dec-2014 13:02:34 -0500]: message`
_ROUNDCUBE_FILE = re.compile(r"\[(\d\d?)-([A-Z][a-z]{2})-(\d{4}) (\d\d:\d\d:\d\d)(?: ([+-]\d{4}))?\]: (.*)", re.DOTALL)


class LineParser:
    """Compiled once from pattern directories; `parse(line)` is the hot path."""

    def __init__(self, pattern_dirs: Iterable[Path] | None = None, *, year: int | None = None,
                 timezone: str | None = None, clock: Clock | None = None,
                 max_line: int = DEFAULT_MAX_LINE) -> None:
        dirs = [PATTERNS_DIR, *(Path(d) for d in pattern_dirs or ())]
        self.library = GrokLibrary()
        for d in dirs:
            self.library.load_dir(d)
        self.parsers: list[ProductParser] = load_rules(dirs, self.library)
        self.library.validate()  # the definitions no rule uses
        self.by_program: dict[str, ProductParser] = {}
        self.by_name: dict[str, ProductParser] = {}
        for p in self.parsers:
            self.by_name[p.name] = p
            for prog in p.programs:
                self.by_program[prog] = p
        self._resolved: dict[str | None, ProductParser | None] = {}
        # `programs: ["*"]`: tried for programs no parser owns, used only when it matches
        self._fallback = self.by_program.get("*")
        self._exim = self.by_name.get("exim")
        self._roundcube = self.by_name.get("roundcube")
        self._fail2ban = self.by_name.get("fail2ban")
        self.times = TimeParser(year=year, tz=timezone, clock=clock)
        self.max_line = max_line
        # (timestamp, logger, pid, level) of the last line when it was a fail2ban own-log line
        self._f2b_context: tuple | None = None
        self.stats: Counter[str] = Counter()

    def new_input(self) -> None:
        """The next line starts another file or stream: a header-less line there does not
        continue the last fail2ban entry of the previous one."""
        self._f2b_context = None

    # -- dispatch ------------------------------------------------------------------------
    def resolve(self, program: str | None) -> ProductParser | None:
        """Program name -> product parser; normalised names are cached."""
        try:
            return self._resolved[program]
        except KeyError:
            pass
        p = None
        if program:
            p = self.by_program.get(program)
            if p is None and "/" in program:
                # postfix multi-instance / service names: postfix-out/smtp, postfix/submission/smtpd
                head, _, tail = program.partition("/")
                p = self.by_program.get(f"{head.partition('-')[0]}/{tail.rpartition('/')[2]}")
            if p is None:
                base = re.split(r"[.\-(]", program, maxsplit=1)[0]
                p = self.by_program.get(base + "*")
        if len(self._resolved) < 4096:
            self._resolved[program] = p
        return p

    def apply(self, parser: ProductParser, msg: str, fields: dict, ev: Event) -> bool:
        rule = parser.matcher.match(msg, fields)
        if rule is None:
            fields["event"]["dataset"] = parser.dataset
            ev.tags.append("_grokparsefailure")
            self.stats["grok_failure"] += 1
            return False
        self._matched(parser, rule, fields, ev)
        return True

    def _matched(self, parser: ProductParser, rule, fields: dict, ev: Event) -> None:
        """After a rule of `parser` matched (its captures and constants are in `fields`; a
        rule may set its own `event.dataset`): the parser's dataset, then the hooks."""
        fields["event"].setdefault("dataset", parser.dataset)
        for h in rule.after:
            h(fields, ev, self)
        ev.meta["rule"] = rule.name

    # -- shapes ------------------------------------------------------------------------------
    def parse(self, line: str) -> Event:
        """One line -> one Event, always: a bug in a pattern hook must not lose the line
        or stop the process, so it becomes a tagged event with the line intact. (One
        function with the shapes, not a wrapper around them: a call less per line.)"""
        cut = len(line) > self.max_line  # a file's lines come cut at read already (inputs.iter_lines)
        if cut:  # the original too: max_line bounds what a line can become
            line = line[: self.max_line]
            self.stats["truncated"] += 1
        original = line
        try:
            fields: dict = {"event": {"original": line}}
            ev = Event.from_parse(fields)
            if cut:
                ev.tags.append(LINE_TRUNCATED)
            c = line[:1]
            if c == "{":
                self._f2b_context = None
                self._json(line, fields, ev)
                return ev
            # `YYYY-MM-DD HH:MM:SS`: Fail2ban's own log or Exim's main log (an RFC 3339
            # syslog stamp has a `T` there and goes straight on)
            if c.isdigit() and line[10:11] == " " and self._dated_line(line, fields, ev):
                return ev
            if c == "[" and self._roundcube_file(line, fields, ev):
                return ev
            res = parse_syslog(line, fields, self.times)
            if res is None:
                ev.message = line
                if self._f2b_context is not None:
                    # a line of a multi-line fail2ban entry (command output, traceback)
                    fail2ban_continuation(fields, ev, self._f2b_context)
                    self.stats["fail2ban_continuation"] += 1
                    return ev
                ev.tags.append("_grokparsefailure")
                self.stats["unrecognised"] += 1
                return ev
            self._f2b_context = None
            program, msg = res
            ev.message = msg
            try:  # resolve(), its cache hit inlined
                parser = self._resolved[program]
            except KeyError:
                parser = self.resolve(program)
            if parser is not None:
                self.apply(parser, msg, fields, ev)
                return ev
            if msg[:1].isalnum() and self._unwrap(msg, fields, ev):
                return ev
            fb = self._fallback
            if fb is not None:
                rule = fb.matcher.match(msg, fields)
                if rule is not None:
                    self._matched(fb, rule, fields, ev)
                    return ev
            fields["event"]["dataset"] = "syslog"
            ev.tags.append("_grokparsefailure")
            self.stats["no_parser"] += 1
            return ev
        except Exception as e:  # noqa: BLE001 - counted, logged, the line kept
            self.stats["parser_error"] += 1
            if self.stats["parser_error"] <= 10:
                log.exception("parser error on a line (kept, tagged _parser_error): %s", e,
                              extra={"line": original[:500]})
            self._f2b_context = None
            ev = Event.from_parse({"event": {"original": original}})
            ev.message = original
            ev.tags.append("_parser_error")
            if cut:
                ev.tags.append(LINE_TRUNCATED)
            return ev

    def _unwrap(self, msg: str, fields: dict, ev: Event) -> bool:
        """A relay's header around a whole syslog line (rsyslog's imfile reading a log file
        and forwarding it with its default template): when the message is itself a syslog
        line whose program has a parser, that inner line is the event. The relay's header
        is kept under `log.syslog` (its priority, `hostname` and `appname`)."""
        inner: dict = {"event": fields["event"]}
        res = parse_syslog(msg, inner, self.times)
        if res is None or (parser := self.resolve(res[0])) is None:
            return False
        syslog = (fields.get("log") or {}).get("syslog") or {}
        relay = fields.get("host")
        if relay is not None:
            syslog["hostname"] = relay["hostname"]
        proc = fields.get("process")
        if proc is not None:
            syslog["appname"] = proc["name"]
        for key in ("@timestamp", "host", "process", "log"):
            fields.pop(key, None)
        fields.update(inner)
        if syslog:
            fields.setdefault("log", {})["syslog"] = {**syslog, **(inner.get("log") or {}).get("syslog", {})}
        ev.message = res[1]
        self.apply(parser, res[1], fields, ev)
        return True

    def _dated_line(self, line: str, fields: dict, ev: Event) -> bool:
        if "fail2ban" in line[19:48] and (m := _F2B_OWN.match(line)) is not None:
            self._fail2ban_own(m, fields, ev)
            return True
        return self._exim_main(line, fields, ev)

    def _exim_main(self, line: str, fields: dict, ev: Event) -> bool:
        p = self._exim
        if p is None or (m := _EXIM_MAIN.match(line)) is None:
            return False
        rule = p.matcher.match(m[3], fields)  # writes nothing when it does not match
        if rule is None:
            return False
        stamp = self.times.iso(m[1] + (m[2] or ""))
        if stamp is not None:
            fields["@timestamp"] = stamp[1]
        fields["process"] = {"name": "exim"}
        self._f2b_context = None
        ev.message = m[3]
        self._matched(p, rule, fields, ev)
        return True

    def _roundcube_file(self, line: str, fields: dict, ev: Event) -> bool:
        """A line of Roundcube's own log files (a message no rule knows, a PHP warning say,
        keeps the stamp and the dataset, tagged)."""
        p = self._roundcube
        if p is None or (m := _ROUNDCUBE_FILE.match(line)) is None:
            return False
        day, mon, year, clock, zone, msg = m.groups()
        month = MONTHS.get(mon.lower())
        if month is None:
            return False
        stamp = self.times.iso(f"{year}-{month:02d}-{int(day):02d} {clock}{zone or ''}")
        if stamp is not None:
            fields["@timestamp"] = stamp[1]
        fields["process"] = {"name": "roundcube"}
        self._f2b_context = None
        ev.message = msg
        self.apply(p, msg, fields, ev)
        return True

    def _fail2ban_own(self, m: re.Match, fields: dict, ev: Event) -> None:
        stamp_text, logger, pid, level, msg = m.groups()  # ts, logger, pid, level, msg
        stamp = self.times.iso(stamp_text)
        ts = None
        if stamp is not None:
            ts = fields["@timestamp"] = stamp[1]
        log = fields["log"] = {"logger": logger}
        if level:
            log["level"] = level
        if pid:
            fields["process"] = {"pid": int(pid)}
        # bounded state: the next header-less line continues this entry
        self._f2b_context = (ts, logger, pid, level)
        ev.message = msg
        parser = self._fail2ban
        if parser is None:
            fields["event"]["dataset"] = "fail2ban.log"
            ev.tags.append("_grokparsefailure")
        else:
            self.apply(parser, msg, fields, ev)

    def _json(self, line: str, fields: dict, ev: Event) -> None:
        ev.message = line
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if doc is None and ('"rule"' in line or '"manager"' in line):
            # a damaged alerts.json line is still a Wazuh alert: recover or salvage it
            doc, recovered = wazuh.loads_lenient(line)
            if not isinstance(doc, dict):
                wazuh.damaged_alert(line, fields, ev, self)
                self.stats["json_failure"] += 1
                return
            if recovered:
                ev.tags.append("_wazuh_json_recovered")
        if not isinstance(doc, dict):
            ev.tags.append("_jsonparsefailure")
            self.stats["json_failure"] += 1
            return
        if isinstance(doc.get("rule"), dict):
            wazuh.apply_alert(doc, fields, ev, self)  # imported at the top: no import per line
        else:
            fields["event"]["dataset"] = "json"
            fields["json"] = doc
