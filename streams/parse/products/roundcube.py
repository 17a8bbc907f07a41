"""Roundcube webmail."""

from __future__ import annotations


def imap_target(fields: dict, ev, parser) -> None:
    """Roundcube 1.5+ names the IMAP server: `Login failed for <user> against <host> from
    <ip>`. The name is matched greedily (it may contain `from`), so the server is split
    off here."""
    user = fields.get("user")
    name = user.get("name") if user else None
    if name and " against " in name:
        name, _, host = name.rpartition(" against ")
        user["name"] = name
        fields.setdefault("roundcube", {})["imap_host"] = host
