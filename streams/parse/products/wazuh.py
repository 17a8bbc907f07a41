"""Wazuh alerts: `alerts.json` lines and alerts forwarded by wazuh-csyslogd.

The alert keeps Wazuh's own layout at the top level of the document (`rule.*`, `agent.*`,
`manager.*`, `data.*`, `full_log`, `location`, `decoder.*`, `predecoder.*`,
`GeoLocation.*`, `id`, `timestamp`) so that Wazuh's index template and dashboards work
unchanged. ECS fields are added only where Wazuh has nothing: `@timestamp` (from the
alert's `timestamp`), `event.dataset: wazuh.alerts`, `event.kind: alert`,
`event.severity` (= `rule.level`), `source.ip`/`source.port` (from `data.srcip`/`srcport`
when an address), `user.name` (from `data.dstuser`/`data.srcuser`). A Wazuh value is never
overwritten by one of ours.

A damaged alert is kept: raw control characters inside strings (an unescaped newline in
`full_log`) are recovered with a lenient parse and tagged `_wazuh_json_recovered`; JSON
that cannot be read is tagged `_jsonparsefailure` and, when recognisable, still gets the
few identifying fields a regex can find (`_wazuh_partial`).
"""

from __future__ import annotations

import json
import re

import orjson

from ..hooks import as_ip

DATASET = "wazuh.alerts"

# Salvage from an unreadable alert: flat `"key":"value"` / `"key":number` pairs of the
# objects that identify it (first occurrence of each object).
_OBJ = re.compile(r'"(rule|agent|manager|data)"\s*:\s*\{([^{}]*)')
_PAIR = re.compile(r'"(\w+)"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?))')
_LOCATION = re.compile(r"\(([^)]*)\) (\S+?)->(.*)", re.DOTALL)
_TOP_STR = re.compile(r'"(timestamp|location|id|full_log)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def loads_lenient(text: str) -> tuple[object | None, bool]:
    """(document, recovered): orjson first; then a parser that accepts raw control
    characters inside strings (what a capture with unescaped newlines needs)."""
    try:
        return orjson.loads(text), False
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, strict=False), True
    except ValueError:
        return None, False


def _merge(dst: dict, src: dict) -> None:
    """Wazuh's values win: `src` (the alert) goes into `dst` (our document)."""
    if dst.keys().isdisjoint(src):  # the usual case (no key in common): one C-level update
        dst.update(src)
        return
    for k, v in src.items():
        cur = dst.get(k)
        if isinstance(cur, dict) and isinstance(v, dict):
            _merge(cur, v)
        else:
            dst[k] = v


def _ecs(fields: dict, ev, parser, alert_stamp: bool = False) -> None:
    """The ECS fields we derive from Wazuh's; only where the alert has no such field."""
    event = fields.get("event")
    if not isinstance(event, dict):  # an alert with its own non-object `event`: leave it
        event = None
    else:
        event.setdefault("dataset", DATASET)
        event.setdefault("kind", "alert")
        event.setdefault("module", "wazuh")
    rule = fields.get("rule")
    if isinstance(rule, dict) and event is not None:
        level = rule.get("level")
        if isinstance(level, str) and level.isdigit():
            level = int(level)
        if isinstance(level, int) and "severity" not in event:
            event["severity"] = level
    ts = fields.get("timestamp")
    if isinstance(ts, str) and not alert_stamp:
        # the alert's time, not the syslog header's (the forwarding time, year-less)
        stamp = parser.times.iso(ts)
        if stamp is not None:
            fields["@timestamp"] = stamp[1]
    agent = fields.get("agent")
    host = fields.get("host")
    if isinstance(agent, dict) and isinstance(agent.get("name"), str) and (host is None or (
            isinstance(host, dict) and "name" not in host)):
        # an alerts.json line names no host: the alert is about its agent (the manager's
        # own alerts carry the manager as agent 000), so metrics go per agent
        fields.setdefault("host", {})["name"] = agent["name"]
    data = fields.get("data")
    if isinstance(data, dict):
        srcip = data.get("srcip")
        if isinstance(srcip, str) and "source" not in fields:
            ip = as_ip(srcip)
            if ip is not None:
                src = fields["source"] = {"ip": ip}
                port = data.get("srcport")
                if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
                    src["port"] = int(port)
        if "user" not in fields:
            user = data.get("dstuser") or data.get("srcuser")
            if isinstance(user, str) and user:
                fields["user"] = {"name": user}


def apply_alert(doc: dict, fields: dict, ev, parser) -> None:
    """Put a parsed alert object into the document (called for alerts.json lines and for
    the JSON body of a syslog-forwarded alert)."""
    old_json = "rule" not in doc and "crit" in doc
    if old_json:
        doc = _from_csyslog_json(doc)
    if "message" in doc:  # Wazuh's own `message` stays; the raw line is event.original
        ev.message = None
    else:  # the logged line the alert is about, else what the rule says (not the JSON twice)
        rule = doc.get("rule")
        text = doc.get("full_log") or (rule.get("description") if isinstance(rule, dict) else None)
        if isinstance(text, str):
            ev.message = text
    _merge(fields, doc)
    if old_json:
        _manager_agent(fields)
    _ecs(fields, ev, parser, "@timestamp" in doc)


def _from_csyslog_json(doc: dict) -> dict:
    """Old csyslogd JSON (`{"crit":3,"id":5502,"component":...}`) -> Wazuh's layout."""
    rule = {"level": doc.get("crit"), "id": str(doc.get("id"))}
    out: dict = {"rule": rule}
    if "description" in doc:
        rule["description"] = doc["description"]
    if isinstance(doc.get("classification"), str):
        rule["groups"] = [g for g in doc["classification"].split(",") if g]
    loc = doc.get("component")
    if isinstance(loc, str):
        m = _LOCATION.fullmatch(loc)
        if m is None:
            out["location"] = loc
        else:
            out["agent"] = {"name": m[1]}
            if as_ip(m[2]) is not None:
                out["agent"]["ip"] = m[2]
            out["location"] = m[3]
    if "message" in doc:
        out["full_log"] = doc["message"]
    data = {}
    for theirs, ours in (("src_ip", "srcip"), ("src_port", "srcport"), ("dst_ip", "dstip"),
                         ("dst_port", "dstport"), ("acct", "dstuser")):
        if theirs in doc:
            data[ours] = doc[theirs]
    if data:
        out["data"] = data
    return out


def _salvage(text: str, fields: dict) -> None:
    for name, body in _OBJ.findall(text):
        if name in fields:
            continue
        obj = {}
        for k, s, n in _PAIR.findall(body):
            if k not in obj:
                obj[k] = s if n == "" else (int(n) if n.lstrip("-").isdigit() else float(n))
        if obj:
            fields[name] = obj
    for k, v in _TOP_STR.findall(text):
        if k not in fields:
            fields[k] = v


def damaged_alert(text: str, fields: dict, ev, parser) -> None:
    """An alert whose JSON cannot be read: kept, tagged, identified as far as possible."""
    ev.tags.append("_jsonparsefailure")
    fields["event"]["dataset"] = DATASET
    n = len(fields)
    _salvage(text, fields)
    if len(fields) > n:
        ev.tags.append("_wazuh_partial")
        _ecs(fields, ev, parser)


def wazuh_json_hook(fields: dict, ev, parser) -> None:
    """`ossec: {alert}` (csyslogd JSON output): parse the body, merge it."""
    text = ev.message or ""
    doc, recovered = loads_lenient(text)
    if not isinstance(doc, dict):
        damaged_alert(text, fields, ev, parser)
        return
    if recovered:
        ev.tags.append("_wazuh_json_recovered")
    apply_alert(doc, fields, ev, parser)


def wazuh_text_hook(fields: dict, ev, parser) -> None:
    """csyslogd default/splunk formats: the pattern filled Wazuh's fields; complete them."""
    _manager_agent(fields)
    wz = fields.get("wazuh")
    if wz and "classification" in wz:
        fields["rule"]["groups"] = [g for g in wz.pop("classification").split(",") if g]
        if not wz:
            del fields["wazuh"]
    _ecs(fields, ev, parser)


def _manager_agent(fields: dict) -> None:
    """manager.name = the sending host; agent from `(agent) ip->` or else the manager."""
    host = fields.get("host")
    manager = host.get("hostname") if isinstance(host, dict) else None
    if manager and "manager" not in fields:
        fields["manager"] = {"name": manager}
    agent = fields.get("agent")
    if agent is None:
        # no `(agent) ip->` in the location: the alert comes from the manager itself
        if manager:
            fields["agent"] = {"id": "000", "name": manager}
    else:
        wz = fields.get("wazuh")
        addr = wz.pop("agent_address", None) if wz else None
        if addr is not None and as_ip(addr) is not None:
            agent["ip"] = addr
        if wz is not None and not wz:
            del fields["wazuh"]
