"""Postfix post-processing: what postfix-grok-patterns' Logstash config does after grok.

- the key=value tail (`postfix.keyvalue_data`) is split into `postfix.<key>` (values
  trimmed of `<>,`), and some values are split further: `delays=a/b/c/d` into the four
  delay_* fields, `relay=host[ip]:port` and `client=host[ip]:port` into their parts,
  `tls=dane/requiretls?` into the TLS feature fields;
- smtpd's command counters (`ehlo=2 rcpt=0/1 commands=5/7`) become `postfix.cmd_*`;
- numbers are converted as that config converts them (its integer and float lists);
- ECS aliases: source.* (client), destination.* (relay), email.*, user.name, log.level;
- event.action / event.outcome where the line means something: outcome `failure` is kept
  for a remote party that was refused or failed (rejects, SASL failures, postscreen
  violations, dropped sessions) and for failed deliveries; the rule file sets the rest.
"""

from __future__ import annotations

import re

from ..hooks import as_ip

_KV = re.compile(r"([\w-]+)=(?:<([^<>]*)>|([^\s,<>]*))")
_HOSTPORT = re.compile(r"(?P<host>[^\s\[\]]+)?\[(?P<inner>[^\]]*)\](?::(?P<port>\d+))?$")
_IPLIKE = re.compile(r"[0-9A-Fa-f]*[.:][0-9A-Fa-f:.]*$")
_DELAYS = re.compile(r"([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)$")
_TLS = re.compile(
    r"(?P<tls_security_level>\w+)(?::(?P<tls_downgrade_level>\w+))?(?P<tls_policy_undecided>\?)?"
    r"(?:/(?P<requiretls_policy_violation>!)?(?P<requiretls>requiretls)"
    r"(?::(?P<requiretls_downgrade_level>\w+))?(?P<requiretls_policy_undecided>\?)?)?$")
_CMD = re.compile(r"([a-z]+)=(?:(\d+)/)?(\d+)")
_FROM_CLIENT = re.compile(r" from (?P<host>[^\s\[\]]+)?\[(?P<ip>[0-9A-Fa-f]*[.:][0-9A-Fa-f:.]*)\](?::(?P<port>\d+))?")

# postfix-grok-patterns' `mutate { convert }` lists, for the keys a kv tail can bring
# (grok captures convert themselves with `:int` / `:float` in patterns/postfix.grok)
KV_INT = frozenset(("size", "nrcpt", "client_port", "relay_port", "status_code"))
KV_FLOAT = frozenset(("delay",))

# smtpd/postscreen/cleanup actions that refuse the client's request
_REFUSING_ACTIONS = frozenset(("reject", "milter-reject", "defer", "milter-defer", "defer_if_permit",
                               "defer_if_reject", "milter-tempfail", "discard", "milter-discard"))
_DELIVERY_OUTCOME = {"sent": "success", "delivered": "success", "deliverable": "success",
                     "bounced": "failure", "deferred": "failure", "expired": "failure",
                     "undeliverable": "failure", "softbounce": "failure"}
# a session dropped after these commands is lawful traffic (or is counted elsewhere:
# an AUTH failure is followed by `disconnect ... auth=0/1`)
_BENIGN_LOST_STAGES = frozenset(("DATA", "BDAT", "AUTH", "END-OF-MESSAGE", "QUIT", "RSET"))
# not a credential failure: smtpd lost its auth server, or the client asked for a mechanism
# that is not offered (fail2ban's default `auth` mode ignores both; only its aggressive
# mode counts the second)
_NON_FAILURE_SASL = ("Connection lost to authentication server", "Invalid authentication mechanism")
_PS_ACCESS_OUTCOME = {"PASS NEW": "success", "PASS OLD": "success", "WHITELISTED": "success",
                      "ALLOWLISTED": "success", "BLACKLISTED": "failure", "DENYLISTED": "failure"}


def _to_int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


def _to_float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def split_hostport(value: str, prefix: str, pf: dict) -> None:
    """`host[1.2.3.4]:25` -> {prefix}_hostname/_ip/_port; `host[private/x]` -> _service;
    a bare word (`none`, `local`, `dovecot`) is the transport -> _service."""
    m = _HOSTPORT.match(value)
    if m is None:
        pf[f"{prefix}_service"] = value
        return
    host, inner, port = m.group("host", "inner", "port")
    if host:
        pf[f"{prefix}_hostname"] = host
    if inner == "unknown":
        pf[f"{prefix}_ip_unknown"] = inner
    elif _IPLIKE.match(inner):
        pf[f"{prefix}_ip"] = inner
    else:
        pf[f"{prefix}_service"] = inner
    if port:
        pf[f"{prefix}_port"] = int(port)


def split_delays(value: str, pf: dict) -> None:
    m = _DELAYS.match(value)
    if m is None:
        return
    before, in_qmgr, conn_setup, transmission = m.groups()  # straight-line: no generator per line
    pf["delay_before_qmgr"] = _to_float(before)
    pf["delay_in_qmgr"] = _to_float(in_qmgr)
    pf["delay_conn_setup"] = _to_float(conn_setup)
    pf["delay_transmission"] = _to_float(transmission)


def split_tls(value: str, pf: dict) -> None:
    m = _TLS.match(value)
    if m is None:
        return
    for k, v in m.groupdict().items():
        if v is not None:
            pf[k] = v


def parse_kv(text: str, pf: dict) -> None:
    """`to=<a@b>, relay=h[1.2.3.4]:25, delay=0.1, ...` into pf, like Logstash's kv with
    trim_value "<>," (an empty `from=<>` stays, as an empty string)."""
    for key, bracketed, bare in _KV.findall(text):
        value = bracketed if bare == "" and bracketed else bare
        if key in pf:
            continue
        # the raw value stays too (upstream's kv step has it before the split)
        pf[key] = value
        if key in KV_INT:
            pf[key] = _to_int(value)
        elif key in KV_FLOAT:
            pf[key] = _to_float(value)
        elif key == "relay":
            split_hostport(value, "relay", pf)
        elif key == "client":
            split_hostport(value, "client", pf)
        elif key == "delays":
            split_delays(value, pf)
        elif key == "tls":
            split_tls(value, pf)


_CMD_KEYS: dict[str, tuple[str, str]] = {}  # command -> (cmd_<name>, cmd_<name>_accepted)


def parse_command_counters(text: str, pf: dict) -> None:
    """`ehlo=2 rcpt=0/1 commands=5/7` -> cmd_ehlo=2, cmd_rcpt_accepted=0, cmd_rcpt=1,
    cmd_count_accepted=5, cmd_count=7 (integers)."""
    keys = _CMD_KEYS
    for name, accepted, total in _CMD.findall(text):
        pair = keys.get(name)
        if pair is None:  # the field names of a command, built once (a bounded cache)
            key = "cmd_count" if name == "commands" else f"cmd_{name}"
            pair = (key, f"{key}_accepted")
            if len(keys) < 256:
                keys[name] = pair
        if accepted:
            pf[pair[1]] = int(accepted)
        pf[pair[0]] = int(total)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# -- rule hooks: event.action / event.outcome from what the rule captured ---------------------
def action_outcome(fields: dict, ev, parser) -> None:
    """smtpd/postscreen `QID: reject: RCPT from ...`, cleanup header/body check actions."""
    action = fields["postfix"]["action"]
    event = fields["event"]
    event["action"] = action.replace("-", "_")
    if action in _REFUSING_ACTIONS:
        event["outcome"] = "failure"


def delivery_outcome(fields: dict, ev, parser) -> None:
    """`status=sent|bounced|deferred|expired ...` of a delivery agent or qmgr."""
    status = fields["postfix"]["status"]
    event = fields["event"]
    event["action"] = status
    outcome = _DELIVERY_OUTCOME.get(status)
    if outcome is not None:
        event["outcome"] = outcome


def lostconn_outcome(fields: dict, ev, parser) -> None:
    """`lost connection after CONNECT from ...`: a failure when the client drops the
    session before doing anything lawful (fail2ban's ddos mode); `too many errors` too."""
    pf = fields["postfix"]
    lost = pf["smtpd_lostconn_data"]
    event = fields["event"]
    event["action"] = _slug(lost)
    if lost == "too many errors" or (lost == "lost connection" and pf.get("smtp_stage", "DATA")
                                     not in _BENIGN_LOST_STAGES):
        event["outcome"] = "failure"


def sasl_outcome(fields: dict, ev, parser) -> None:
    """`warning: host[ip]: SASL LOGIN authentication failed: ...`: the client failed,
    unless smtpd lost its own authentication server or the mechanism was not offered."""
    reason = fields["postfix"].get("sasl_failure_reason") or ""
    fields["event"]["outcome"] = "unknown" if reason.startswith(_NON_FAILURE_SASL) else "failure"


def command_counters(fields: dict, ev, parser) -> None:
    """`disconnect from ... auth=0/2 ... commands=3/5`: per-command counters; a session
    whose every AUTH failed is an authentication failure (fail2ban's ddos mode)."""
    pf = fields["postfix"]
    ccd = pf.get("command_counter_data")
    if ccd:
        parse_command_counters(ccd, pf)
        if pf.get("cmd_auth_accepted") == 0 and pf.get("cmd_auth"):
            fields["event"]["outcome"] = "failure"
            fields["event"]["category"] = ["authentication"]


def postscreen_access(fields: dict, ev, parser) -> None:
    access = fields["postfix"]["postscreen_access"]
    event = fields["event"]
    event["action"] = _slug(access)
    outcome = _PS_ACCESS_OUTCOME.get(access)
    if outcome is not None:
        event["outcome"] = outcome


def postscreen_violation(fields: dict, ev, parser) -> None:
    fields["event"]["action"] = _slug(fields["postfix"]["postscreen_violation"])


def proxy_outcome(fields: dict, ev, parser) -> None:
    result = fields["postfix"]["proxy_result"]
    fields["event"]["action"] = f"proxy_{result}".replace("-", "_")
    if result in _REFUSING_ACTIONS:
        fields["event"]["outcome"] = "failure"


def milter_outcome(fields: dict, ev, parser) -> None:
    result = fields["postfix"]["milter_result"]
    fields["event"]["action"] = f"milter_{result}".replace("-", "_")
    if result in _REFUSING_ACTIONS:
        fields["event"]["outcome"] = "failure"


def postsuper_action(fields: dict, ev, parser) -> None:
    pf = fields["postfix"]
    fields["event"]["action"] = _slug(pf.get("postsuper_action") or pf["postsuper_summary_action"])


def client_in_text(fields: dict, ev, parser) -> None:
    """Free text naming the client (`header ... from host[ip]`, milter and warning lines)."""
    pf = fields["postfix"]
    if "client_ip" in pf:
        return
    text = pf.get("message") or pf.get("milter_message")
    if text and "[" in text:
        m = _FROM_CLIENT.search(text)
        if m is not None:
            if m["host"]:
                pf["client_hostname"] = m["host"]
            pf["client_ip"] = m["ip"]
            if m["port"]:
                pf["client_port"] = int(m["port"])


# the keys `_endpoint` reads, built once instead of per line
_CLIENT_KEYS = ("client_ip", "client_hostname", "client_port")
_RELAY_KEYS = ("relay_ip", "relay_hostname", "relay_port")


def _endpoint(pf: dict, keys: tuple[str, str, str]) -> dict | None:
    """`client_*` / `relay_*` (`keys`: their _ip, _hostname, _port) -> an ECS `source` /
    `destination` object."""
    ip_key, host_key, port_key = keys
    addr = pf.get(ip_key)
    if addr is None:
        return None
    out = {"address": addr}
    canon = as_ip(addr)
    if canon is not None:
        out["ip"] = canon
    host = pf.get(host_key)
    if host and host != "unknown" and host != addr:
        out["domain"] = host
    port = pf.get(port_key)
    if port.__class__ is int:
        out["port"] = port
    return out


# -- parser hook: kv tail and ECS aliases, for every postfix line --------------------------------
def postfix_hook(fields: dict, ev, parser) -> None:
    pf = fields.get("postfix")
    if pf is None:
        return
    kv = pf.pop("keyvalue_data", None)
    if kv:
        parse_kv(kv, pf)
    src = _endpoint(pf, _CLIENT_KEYS)
    if src is not None:
        fields["source"] = src
    dst = _endpoint(pf, _RELAY_KEYS)
    if dst is not None:
        fields["destination"] = dst
    email = {}
    qid = pf.get("queueid")
    if qid is not None and qid != "NOQUEUE":
        email["local_id"] = qid
    sender = pf.get("from")
    if sender:
        email["from"] = {"address": [sender]}
    rcpt = pf.get("to")
    if rcpt:
        email["to"] = {"address": [rcpt]}
    mid = pf.get("message-id")
    if mid:
        email["message_id"] = mid
    if email:
        fields["email"] = email
    user = pf.get("sasl_username")
    if user:
        fields["user"] = {"name": user}
    level = pf.get("message_level")
    if level is not None:
        fields.setdefault("log", {})["level"] = level
