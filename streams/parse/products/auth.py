"""Hooks of the authentication parsers (sshd, dovecot, sendmail, PAM, ...).

Some daemons spread one failure over several lines of the same connection (sshd logs
`Connection from HOST` and later `Disconnecting: Too many authentication failures`
without the host; sendmail logs `<rcpt>... User unknown` and later the `from=` line with
the relay). Like Fail2ban, which correlates such lines by pid, these hooks keep a small
per-parser state keyed by (host.hostname, pid) or by queue id. It is bounded (oldest
entries go first) and lives on the LineParser, so one parse run sees one state.

Outcome rules for sshd, per connection (pid):
- a line that names a failure and the client (`Failed password ... from HOST`) is a
  failure, and the connection is marked as "failure reported";
- a failure line without the client (`kex_exchange_identification: ...`, `Disconnecting:
  Too many authentication failures`) takes the client from earlier lines of the pid; if
  none is known the failure stays pending (outcome unknown) and is reported by the line
  that closes the connection with the client address;
- a pre-authentication close (`Connection closed by HOST [preauth]`) is a failure,
  unless a failure was already reported for this connection (then it only ends it);
- `pam_unix(sshd:auth): authentication failure` is not conclusive alone (another PAM
  module may still accept the password): it is a failure when the same connection then
  tries another user, and otherwise stays `unknown`.
"""

from __future__ import annotations

import re

_MAX_STATE = 4096


def _state(parser, name: str) -> dict:
    """The parser's correlation table `name`, made on first use."""
    try:
        return parser._auth_state[name]
    except KeyError:
        table = parser._auth_state[name] = {}
    except AttributeError:
        table = {}
        try:
            parser._auth_state = {name: table}
        except AttributeError:  # a parser object without a __dict__: no correlation
            pass
    return table


def _remember(table: dict, key, value) -> None:
    if key not in table and len(table) >= _MAX_STATE:
        del table[next(iter(table))]
    table[key] = value


def _event(fields: dict) -> dict:
    return fields["event"]


def _conn_key(fields: dict):
    proc = fields.get("process") or {}
    pid = proc.get("pid")
    if pid is None:
        return None
    return ((fields.get("host") or {}).get("hostname"), proc.get("name"), pid)


def _addr(fields: dict) -> str | None:
    src = fields.get("source")
    return src.get("address") if isinstance(src, dict) else None


def _set_source(fields: dict, addr: str) -> None:
    src = fields.get("source")
    if not isinstance(src, dict):
        src = fields["source"] = {}
    src.setdefault("address", addr)


def _conn(fields: dict, parser, create: bool = True) -> dict | None:
    key = _conn_key(fields)
    if key is None:
        return None
    table = _state(parser, "sshd")
    st = table.get(key)
    if st is None and create:
        st = {"addr": None, "reported": False, "pending": False, "pam_users": None}
        _remember(table, key, st)
    return st


def _failure(fields: dict, category: str | None = None) -> None:
    ev = _event(fields)
    ev["outcome"] = "failure"
    if category is not None:
        ev["category"] = (category,)


# -- sshd --------------------------------------------------------------------------------------
def sshd_seen(fields: dict, event, parser) -> None:
    """A line that names the client but reports no failure: remember the client."""
    st = _conn(fields, parser)
    addr = _addr(fields)
    if st is not None and addr is not None:
        st["addr"] = addr


def sshd_failure(fields: dict, event, parser) -> None:
    st = _conn(fields, parser)
    if st is not None:
        addr = _addr(fields)
        if addr is not None:
            st["addr"] = addr
        st["reported"] = True
        st["pending"] = False


def sshd_accepted(fields: dict, event, parser) -> None:
    st = _conn(fields, parser)
    if st is not None:
        st.update(addr=_addr(fields), reported=False, pending=False, pam_users=None)


def sshd_nohost(fields: dict, event, parser) -> None:
    """A pre-authentication failure without the client address."""
    st = _conn(fields, parser)
    if st is not None and st["addr"] is not None:
        _set_source(fields, st["addr"])
        _failure(fields)
        st["reported"] = True
        st["pending"] = False
    else:
        _event(fields)["outcome"] = "unknown"
        if st is not None:
            st["pending"] = True


def sshd_not_allowed(fields: dict, event, parser) -> None:
    """`User X not allowed because account is locked`: a failure of the client of the pid.
    Other reasons without the client (`shell ... does not exist`) stay `unknown`."""
    if (_event(fields).get("reason") or "").startswith("account is locked"):
        sshd_nohost(fields, event, parser)


def sshd_too_many(fields: dict, event, parser) -> None:
    """`Too many authentication failures`: the limit was hit; counted once per connection."""
    st = _conn(fields, parser)
    if st is not None and st["reported"]:
        _event(fields)["outcome"] = "unknown"  # already reported (`maximum ... exceeded`)
        return
    addr = _addr(fields)
    if addr is None and st is not None and st["addr"] is not None:
        addr = st["addr"]
        _set_source(fields, addr)
    if addr is None:
        _event(fields)["outcome"] = "unknown"
        if st is not None:
            st["pending"] = True
        return
    _failure(fields)
    if st is not None:
        st.update(addr=addr, reported=True, pending=False)


def sshd_disconnecting(fields: dict, event, parser) -> None:
    reason = _event(fields).get("reason") or ""
    if reason.startswith("Too many authentication failures"):
        sshd_too_many(fields, event, parser)
    else:  # e.g. `Change of username or service not allowed`
        _failure(fields)
        sshd_failure(fields, event, parser)


def sshd_close(fields: dict, event, parser) -> None:
    """End of a connection: a failure before authentication, unless already reported."""
    key = _conn_key(fields)
    st = _state(parser, "sshd").pop(key, None) if key is not None else None
    preauth = (fields.get("sshd") or {}).get("preauth")
    if st is not None and st["reported"]:
        outcome = "unknown"
    elif preauth or (st is not None and st["pending"]):
        outcome = "failure"
    else:
        outcome = "unknown"
    _event(fields)["outcome"] = outcome


def sshd_end(fields: dict, event, parser) -> None:
    key = _conn_key(fields)
    if key is not None:
        _state(parser, "sshd").pop(key, None)


def sshd_received_disconnect(fields: dict, event, parser) -> None:
    """`Received disconnect`: before authentication, or `Auth fail` / no auth method."""
    ev = _event(fields)
    code = (fields.get("sshd") or {}).get("disconnect", {}).get("code")
    reason = ev.get("reason") or ""
    preauth = (fields.get("sshd") or {}).get("preauth")
    if preauth or (code == 3 and reason.endswith("Auth fail")) or (
            code == 14 and "authentication methods available" in reason):
        ev["outcome"] = "failure"
    else:
        ev["outcome"] = "unknown"
    sshd_end(fields, event, parser)


def _pam_user(fields: dict) -> str | None:
    user = (fields.get("user") or {}).get("name")
    if user:
        return user
    ruser = (fields.get("pam") or {}).get("ruser")
    if ruser:
        fields.setdefault("user", {})["name"] = ruser
        return ruser
    return None


def pam_user(fields: dict, event, parser) -> None:
    """`user=` when logged, else `ruser=`; an empty `rhost=` is no source."""
    _pam_user(fields)


def sshd_pam(fields: dict, event, parser) -> None:
    user = _pam_user(fields)
    st = _conn(fields, parser)
    ev = _event(fields)
    if st is None:
        ev["outcome"] = "unknown"
        return
    addr = _addr(fields)
    if addr is not None:
        st["addr"] = addr
    users = st["pam_users"]
    if users is None:
        users = st["pam_users"] = []
    if users and user not in users:
        ev["outcome"] = "failure"  # a second user in the same connection: guessing
        st["reported"] = True
    else:
        ev["outcome"] = "unknown"
    if user not in users:
        users.append(user)


# -- dovecot ------------------------------------------------------------------------------------
_DOVECOT_CTX = re.compile(r"([\w-]+)\(([^,()]*),([^,()]+)(?:,[^()]*)?\)(?:<([^<>]*)>)?")


def dovecot_context(fields: dict, event, parser) -> None:
    """Dovecot 2.4 puts `auth(user,ip,...)<session>` where the tag goes: split it."""
    proc = fields.get("process") or {}
    name = proc.get("name") or ""
    m = _DOVECOT_CTX.fullmatch(name)
    if m is None:
        return
    proc["name"] = m[1]
    fields.setdefault("user", {}).setdefault("name", m[2])
    _set_source(fields, m[3])
    if m[4]:
        fields.setdefault("dovecot", {})["session"] = m[4]


# -- sendmail -----------------------------------------------------------------------------------
_UNKNOWN_RCPT = ("User unknown", "No such user", "Unknown user", "user unknown")


def sendmail_rcpt(fields: dict, event, parser) -> None:
    """`<rcpt>... User unknown`: remember the queue id for its `from=` line."""
    qid = (fields.get("sendmail") or {}).get("queue_id")
    reason = (fields.get("sendmail") or {}).get("dsn_reason") or ""
    if qid and reason.startswith(_UNKNOWN_RCPT):
        _remember(_state(parser, "sendmail"), (_conn_key(fields), qid), True)


def sendmail_from(fields: dict, event, parser) -> None:
    """`from=..., relay=...` after unknown recipients: the client probed users (also when
    some recipients of the message were valid, `nrcpts` > 0, as Fail2ban counts it)."""
    sm = fields.get("sendmail") or {}
    qid = sm.get("queue_id")
    probed = qid and _state(parser, "sendmail").pop((_conn_key(fields), qid), None)
    ev = _event(fields)
    if probed and _addr(fields) is not None:
        ev["outcome"] = "failure"
        ev["category"] = ("email",)
        ev["reason"] = "all recipients unknown" if sm.get("nrcpts") == 0 else "unknown recipients"
    else:
        ev["outcome"] = "unknown"


# -- perdition ----------------------------------------------------------------------------------
def perdition_status(fields: dict, event, parser) -> None:
    status = (fields.get("perdition") or {}).get("status") or ""
    _event(fields)["outcome"] = "success" if status == "ok" else "failure"


def sshd_connection(fields: dict, event, parser) -> None:
    """`Connection from HOST port N`: a new connection of this pid, fresh state."""
    key = _conn_key(fields)
    if key is None:
        return
    _remember(_state(parser, "sshd"), key,
              {"addr": _addr(fields), "reported": False, "pending": False, "pam_users": None})
