"""Graphite plaintext protocol: `path value timestamp\\n` lines. No I/O."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]+")


def sanitize(segment: str) -> str:
    """One path segment: dots, spaces, slashes and the like become `_`."""
    s = _UNSAFE.sub("_", str(segment)).strip("_")
    return s or "unknown"


def render_path(template: str, **parts: str) -> str:
    """`streams.<host>.<dataset>.<name>` with each part sanitised into one segment;
    `name` may hold dots on purpose (a sub-tree), each of its pieces is sanitised."""
    out = template
    for key, value in parts.items():
        if key == "name":
            value = ".".join(sanitize(p) for p in str(value).split("."))
        else:
            value = sanitize(value)
        out = out.replace(f"<{key}>", value)
    return out


def format_line(path: str, value: float, timestamp: int) -> bytes:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{path} {value} {int(timestamp)}\n".encode()
