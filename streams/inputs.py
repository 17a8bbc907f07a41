"""Reading log files line by line, robustly: bytes in, (text, problems) out.

Invalid UTF-8 is decoded with backslash escapes (nothing lost, still valid JSON) and
flagged; NUL bytes are kept and flagged; a final line without LF still counts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def decode_line(raw: bytes) -> tuple[str, tuple[str, ...]]:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
        problems: tuple[str, ...] = ()
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "backslashreplace")
        problems = ("_invalid_utf8",)
    if "\x00" in text:
        problems += ("_nul_bytes",)
    return text, problems


def iter_raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines without their LF; bounded memory even for one huge line is not a goal here:
    the parser cuts long lines, the reader hands them over whole."""
    tail = b""
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if p.suffix == ".gz":
        import gzip
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return p.open("rb")


def expand_paths(paths: list[str]) -> list[str]:
    """Directories expand to the log files inside them (sorted, recursive)."""
    out: list[str] = []
    for p in paths:
        pp = Path(p)
        if p != "-" and pp.is_dir():
            out += [str(f) for f in sorted(pp.rglob("*")) if f.is_file() and _is_log(f)]
        else:
            out.append(p)
    return out


def _is_log(f: Path) -> bool:
    return f.suffix in (".log", ".json", ".jsonl", ".gz", "") or f.name.endswith((".log.1",))
