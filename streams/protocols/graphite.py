"""Graphite plaintext protocol: `path value timestamp\\n` lines. No I/O.

Graphite 1.1 tags ride in the path: `name;tag=value;tag2=value2`. A tag value may hold dots
(`host=mx1.example.org`) but no `;`, no whitespace (the line's separator) and no leading `~`.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]+")
_TAG_UNSAFE = re.compile(r"[\s;]+")


def sanitize(segment: str) -> str:
    """One path segment: dots, spaces, slashes and the like become `_`."""
    s = _UNSAFE.sub("_", str(segment)).strip("_")
    return s or "unknown"


def sanitize_tag_value(value: str) -> str:
    """A Graphite 1.1 tag value: dots kept; whitespace and `;` become `_`, no leading `~`."""
    s = _TAG_UNSAFE.sub("_", str(value)).strip("_").lstrip("~")
    return s or "unknown"


def render_path(template: str, **parts: str) -> str:
    """`streams.<host>.<dataset>.<name>` with each part sanitised into one segment;
    `name` may hold dots on purpose (a sub-tree), each of its pieces is sanitised.
    After a `;` the template holds Graphite 1.1 tags (`streams.<name>;host=<host>`): parts
    there are tag values, sanitised by `sanitize_tag_value` (dots kept)."""
    out, sep, tags = template.partition(";")
    for key, value in parts.items():
        if sep and f"<{key}>" in tags:
            tags = tags.replace(f"<{key}>", sanitize_tag_value(value))
        if key == "name":
            value = ".".join(sanitize(p) for p in str(value).split("."))
        else:
            value = sanitize(value)
        out = out.replace(f"<{key}>", value)
    return out + sep + tags


def plain_path(path: str) -> str:
    """A tagged path made plain for a Graphite without tags: `name;a=x.y;b=z` -> `name.x_y.z`
    (the tag values, in their order, as sanitised segments)."""
    name, sep, tags = path.partition(";")
    if not sep:
        return path
    return ".".join([name, *(sanitize(t.partition("=")[2]) for t in tags.split(";") if t)])


def format_line(path: str, value: float, timestamp: int) -> bytes:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{path} {value} {int(timestamp)}\n".encode()
