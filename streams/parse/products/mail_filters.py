"""Mail filters next to the MTA: SpamAssassin's spamd, OpenDKIM and amavisd-new.

`spamd_result` completes `spamd: result: <flag> <score> - <tests> <key=value,...>`: the
verdict from the flag, the tests as a list, and the comma-separated details
(`scantime`, `size`, `user`, `uid`, `required_score`, `rhost`, `raddr`, `rport`, `mid`,
`autolearn`, `bayes`, ...) as typed fields.
"""

from __future__ import annotations

import re

from ..hooks import as_ip

# `key=value` pairs separated by `,` (values may hold spaces: `autolearn=no autolearn_force=no`)
_KV = re.compile(r"(\w+)=([^,]*)")
_FLOATS = ("scantime", "required_score", "bayes")
_INTS = ("size", "uid", "rport")


def spamd_result(fields: dict, ev, parser) -> None:
    sa = fields["spamassassin"]
    sa["verdict"] = "spam" if sa.pop("flag") == "Y" else "ham"
    sa["score_rounded"] = int(sa["score_rounded"])
    tests = sa.pop("tests_text", "")
    sa["tests"] = [t for t in tests.split(",") if t and t != "none"]
    details = sa.pop("details", None)
    if not details:
        return
    for key, value in _KV.findall(details):
        value = value.strip()
        if key == "autolearn":
            sa["autolearn"] = value.split(" ", 1)[0]
            continue
        if key == "mid":
            if value not in ("(unknown)", ""):
                fields.setdefault("email", {})["message_id"] = value.strip("<>")
            continue
        if key in _FLOATS:
            try:
                sa[key] = float(value)
            except ValueError:
                sa[key] = value
        elif key in _INTS and value.lstrip("-").isdigit():
            sa[key] = int(value)
        else:
            sa[key] = value
    if "required_score" in sa and "score" not in sa:
        sa["score"] = float(sa["score_rounded"])
    user = sa.get("user")
    if user:
        u = fields.setdefault("user", {})
        u["name"] = user
        if "uid" in sa:
            u["id"] = str(sa["uid"])
    raddr = sa.get("raddr")
    if raddr:
        ip = as_ip(raddr)
        if ip is not None:
            src = fields.setdefault("source", {})
            src["ip"] = ip
            if isinstance(sa.get("rport"), int):
                src["port"] = sa["rport"]
            rhost = sa.get("rhost")
            if rhost and rhost != raddr:
                src["domain"] = rhost


# amavis' `key: value, ` tail: `Queue-ID: X, Message-ID: <y>, mail_id: z, Hits: 1.2, size: 5, 104 ms`
_AMAVIS_KV = re.compile(r"([\w-]+): ([^,]*)")
_AMAVIS_MS = re.compile(r"(\d+) ms$")


def amavis_result(fields: dict, ev, parser) -> None:
    """Recipients as a list, the verdict as `event.type`, the details as typed fields."""
    am = fields["amavis"]
    event = fields["event"]
    event["type"] = ("denied",) if am["action"] != "Passed" else ("allowed",)
    email = fields.setdefault("email", {})
    sender = email.get("from", {}).get("address")
    if sender is not None:
        email["from"]["address"] = [sender] if sender else []
    email["to"] = {"address": [a.strip("<>") for a in am.pop("to_text").split(",")]}
    if "actions" in am:
        am["actions"] = am["actions"].split(",")
    details = am.pop("details", None)
    if not details:
        return
    for key, value in _AMAVIS_KV.findall(details):
        key = key.lower().replace("-", "_")
        if key == "message_id":
            email["message_id"] = value.strip("<>")
        elif key == "queue_id":
            email["local_id"] = am["queue_id"] = value
        elif key == "hits":
            if value != "-":
                try:
                    am["score"] = float(value)
                except ValueError:
                    pass
        elif key == "size":
            if value.isdigit():
                am["size"] = int(value)
        else:
            am[key] = value
    m = _AMAVIS_MS.search(details)
    if m is not None:
        am["elapsed_ms"] = int(m.group(1))
