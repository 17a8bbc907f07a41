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
    """(line without its LF, problems) for every line, empty ones included."""
    tail = b""
    first = True
    while True:
        chunk = stream.read(CHUNK)
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
        data = tail + chunk if tail else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
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
    if tail:
        yield decode_line(tail)


class InputError(Exception):
    """Reading an input failed midway (a truncated or damaged `.gz`, a read error); the
    lines before it were read. Told apart from errors in writing the outputs."""


class CheckedReader:
    """A binary input whose read errors become `InputError` (one check per block read)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(str(e)) from e


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
