"""Generic post-processing hooks shared by product parsers."""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=65536)
def as_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None for a host name."""
    t = text.strip("[]")
    if t.lower().startswith("::ffff:") and "." in t:
        t = t[7:]
    try:
        return str(ipaddress.ip_address(t.partition("%")[0]))
    except ValueError:
        return None


def source_address(fields: dict, event, parser) -> None:
    """`source.address` is the host as logged; `source.ip` only when it is an address.
    Daemons' decorations of an address are taken off: `[1.2.3.4]`, `IPv6:2001:db8::1`
    (sendmail), and an IPv4-mapped `::ffff:1.2.3.4` is the IPv4 client it stands for."""
    src = fields.get("source")
    if not isinstance(src, dict):
        return
    addr = src.get("address")
    if addr is None:
        ip = src.get("ip")
        if ip is not None:
            src["address"] = ip
        return
    if addr[:1] == "[" and addr[-1:] == "]":
        addr = src["address"] = addr[1:-1]
    if addr[:2] == "::" and addr[:7].lower() == "::ffff:" and "." in addr:  # cheap test first
        addr = src["address"] = addr[7:]
    elif addr[:5] == "IPv6:":
        addr = src["address"] = addr[5:]
    if "ip" not in src:
        ip = as_ip(addr)
        if ip is not None:
            src["ip"] = ip
