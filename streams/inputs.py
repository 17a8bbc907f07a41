"""Reading log files line by line, robustly: bytes in, (text, problems) out.

Blocks of 1 MiB are decoded at once (the common, valid case costs one decode per block);
a block with invalid UTF-8, NUL bytes or CRLF endings falls back to line-by-line
decoding. Invalid UTF-8 is decoded with backslash escapes (nothing lost, still valid
JSON) and flagged; NUL bytes are kept and flagged; a final line without LF still counts;
a UTF-8 byte order mark opening the input is dropped.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
# a line is read up to this many bytes, the rest skipped (tagged): a file without line ends
# (a binary one, a sparse lastlog) must not be held whole in memory. Far above any
# --max-line the parser is given.
MAX_LINE_READ = 16 << 20
OVERLONG_TAG = "_line_cut_at_read"
NO_PROBLEMS: tuple[str, ...] = ()
_BOM = b"\xef\xbb\xbf"


def decode_line(raw: bytes) -> tuple[str, tuple[str, ...]]:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
        problems: tuple[str, ...] = NO_PROBLEMS
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "backslashreplace")
        problems = ("_invalid_utf8",)
    if "\x00" in text:
        problems += ("_nul_bytes",)
    return text, problems


def iter_lines(stream: BinaryIO, progress: Callable[[int], None] | None = None
               ) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(line without its LF, problems) for every line, empty ones included. A failed read
    raises `InputError` after the lines before it."""
    tail = b""
    first = True
    overlong = False
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (OSError, EOFError, zlib.error) as e:  # a truncated `.gz`, a read error
            raise InputError(str(e)) from e
        if not chunk:
            break
        if progress is not None:
            progress(len(chunk))
        if first:
            first = False
            if chunk.startswith(_BOM):  # a file written with a UTF-8 byte order mark
                chunk = chunk[len(_BOM):]
                if not chunk:
                    continue
        if overlong:  # the rest of a line already cut at MAX_LINE_READ: skipped up to its LF
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            yield _cut_line(tail)
            tail, overlong, chunk = b"", False, chunk[nl + 1:]
        data = tail + chunk if tail else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
            if len(tail) > MAX_LINE_READ:  # no LF for this long (a binary file): memory stays bounded
                tail, overlong = tail[:MAX_LINE_READ], True
            continue
        block, tail = data[:cut], data[cut + 1:]
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text or "\r" in text:
            for raw in block.split(b"\n"):
                yield decode_line(raw)
            continue
        for line in text.split("\n"):
            yield line, NO_PROBLEMS
    if overlong:
        yield _cut_line(tail)
    elif tail:
        yield decode_line(tail)


def _cut_line(head: bytes) -> tuple[str, tuple[str, ...]]:
    """The first MAX_LINE_READ bytes of a longer line, tagged as cut."""
    text, problems = decode_line(head)
    return text, problems + (OVERLONG_TAG,)


class InputError(Exception):
    """Reading an input failed midway (a truncated or damaged `.gz`, a read error); the
    lines before it were read. Told apart from errors in writing the outputs."""


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if p.suffix == ".gz":
        import gzip
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return p.open("rb")


# binary files of /var/log, with no suffix like the text logs beside them
_BINARY_LOGS = frozenset({"lastlog", "wtmp", "btmp", "utmp", "faillog", "tallylog"})


def expand_paths(paths: list[str], skipped: list[str] | None = None) -> list[str]:
    """Directories expand to the log files inside them (sorted, recursive); binary files
    found there (wtmp, lastlog, anything with NUL bytes in its first 4 KiB) are left out
    and listed in `skipped`. A file named on its own is always read."""
    out: list[str] = []
    for p in paths:
        pp = Path(p)
        if p != "-" and pp.is_dir():
            for f in sorted(pp.rglob("*")):
                if not (f.is_file() and _is_log(f)):
                    continue
                if _is_binary(f):
                    if skipped is not None:
                        skipped.append(str(f))
                    continue
                out.append(str(f))
        else:
            out.append(p)
    return out


def _is_log(f: Path) -> bool:
    return f.suffix in (".log", ".json", ".jsonl", ".gz", "") or f.name.endswith((".log.1",))


def _is_binary(f: Path) -> bool:
    if f.name.split(".", 1)[0] in _BINARY_LOGS:
        return True
    if f.suffix == ".gz":
        return False
    try:
        with f.open("rb") as fh:
            return b"\x00" in fh.read(4096)
    except OSError:
        return False  # reported when it is opened
