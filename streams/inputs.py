"""Reading log files line by line, robustly: bytes in, (text, problems) out.

Blocks of 1 MiB are decoded at once (the common, valid case costs one decode per block);
a block with invalid UTF-8, NUL bytes or CRLF endings falls back to line-by-line
decoding. Invalid UTF-8 is decoded with backslash escapes (nothing lost, still valid
JSON) and flagged; NUL bytes are kept and flagged; a final line without LF still counts;
a UTF-8 byte order mark opening the input is dropped. A line longer than `max_line`
characters is cut there at read (tagged `_line_truncated`) and the rest skipped to its LF,
so memory stays bounded whatever the input. Compressed files (gzip, bzip2, xz) are found
by their magic number as well as their suffix; zstd and the like are refused with a reason.
"""

from __future__ import annotations

import lzma
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
# a line longer than this many characters is cut there and tagged (`--max-line`, `[parse]
# max_line`); the rest of it is skipped up to its LF, so a file without line ends (a binary
# one, a sparse lastlog) is never held whole in memory
DEFAULT_MAX_LINE = 64 * 1024
LINE_TRUNCATED = "_line_truncated"
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


def iter_blocks(stream: BinaryIO, progress: Callable[[int], None] | None = None,
                max_line: int = DEFAULT_MAX_LINE) -> Iterator[bytes]:
    """The input as blocks of whole lines (up to about CHUNK bytes, each ending in LF), for
    the native core's batch API, which decodes and cuts lines as `iter_lines` does. A line
    with no LF for `4 * max_line + 4` bytes is cut there (at a character boundary: it is
    longer than `max_line` characters whatever its text) and the rest of it skipped, so
    memory stays bounded. A failed read raises `InputError` after the blocks before it."""
    hold = 4 * max_line + 4   # bytes enough for max_line characters of any UTF-8 text
    # read1: what is there, up to CHUNK (a file: CHUNK; a pipe or stdin: what its writer
    # wrote), where read() would wait for a whole CHUNK before a line is handled
    read = stream.read1 if hasattr(stream, "read1") else stream.read
    tail = b""
    first = True
    overlong = False
    while True:
        try:
            chunk = read(CHUNK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:  # a truncated archive, a read error
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
        if overlong:  # the rest of a line already cut: skipped up to its LF
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            yield _whole_chars(tail) + b"\n"
            tail, overlong, chunk = b"", False, chunk[nl + 1:]
        data = tail + chunk if tail else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
            if len(tail) > hold:  # no LF for this long: memory stays bounded
                tail, overlong = tail[:hold], True
            continue
        yield data[:cut + 1]
        tail = data[cut + 1:]
    if overlong:
        yield _whole_chars(tail) + b"\n"
    elif tail:
        yield tail + b"\n"


def iter_lines(stream: BinaryIO, progress: Callable[[int], None] | None = None,
               max_line: int = DEFAULT_MAX_LINE) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(line without its LF, problems) for every line, empty ones included; a line longer
    than `max_line` characters comes cut there, tagged `_line_truncated`. A failed read
    raises `InputError` after the lines before it."""
    for block in iter_blocks(stream, progress, max_line):
        block = block[:-1]  # its last LF
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text or "\r" in text:
            for raw in block.split(b"\n"):
                yield _decoded(raw, max_line)
            continue
        for line in text.split("\n"):
            if len(line) > max_line:
                yield line[:max_line], (LINE_TRUNCATED,)
            else:
                yield line, NO_PROBLEMS


def _whole_chars(head: bytes) -> bytes:
    """`head` without a UTF-8 character the cut split in two."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.end == len(head) and e.reason == "unexpected end of data":
            return head[:e.start]
    return head


def _decoded(raw: bytes, max_line: int) -> tuple[str, tuple[str, ...]]:
    line, problems = decode_line(raw)
    if len(line) > max_line:
        return line[:max_line], problems + (LINE_TRUNCATED,)
    return line, problems


class InputError(Exception):
    """Reading an input failed midway (a truncated or damaged `.gz`, a read error); the
    lines before it were read. Told apart from errors in writing the outputs."""


class UnsupportedCompression(OSError):
    """Compressed with something the standard library cannot read (zstd, lz4, zip...)."""


# magic numbers: those read through the standard library, and some it cannot read
_MAGIC = ((re.compile(rb"\x1f\x8b\x08"), "gzip"), (re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)"), "bzip2"),
          (re.compile(rb"\xfd7zXZ\x00"), "xz"))
_UNSUPPORTED_MAGIC = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"), (b"PK\x03\x04", "zip"),
                      (b"7z\xbc\xaf\x27\x1c", "7z"), (b"\x1f\x9d", "compress (.Z)"), (b"LZIP", "lzip"),
                      (b"\x89LZO", "lzo"))
_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
_UNSUPPORTED_SUFFIXES = {".zst": "zstd", ".lz4": "lz4", ".zip": "zip", ".7z": "7z", ".Z": "compress (.Z)",
                         ".lz": "lzip", ".lzo": "lzo", ".br": "brotli"}


def compression_of(path: str) -> str | None:
    """"gzip", "bzip2", "xz" or None (plain), by the name's suffix, else by the first bytes
    (a rotated `auth.log.1` may be compressed without its `.gz`); `UnsupportedCompression`
    for another compression. A FIFO or a device is not looked into (it cannot be read twice)."""
    suffix = Path(path).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]   # a `.gz` that is not gzip is reported when it is read
    head = b""
    if Path(path).is_file():
        with open(path, "rb") as f:
            head = f.read(10)
    for magic, kind in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raise UnsupportedCompression(f"unsupported compression ({kind}): decompress it first")
    if suffix in _UNSUPPORTED_SUFFIXES:
        raise UnsupportedCompression(f"unsupported compression ({_UNSUPPORTED_SUFFIXES[suffix]}, by its name): "
                                     "decompress it first")
    for magic, kind in _MAGIC:
        if magic.match(head):
            return kind
    return None


def open_input(path: str, kind: str | None | bool = False) -> BinaryIO:
    """The file's bytes, decompressed (`kind`: from `compression_of`, which is asked when
    not given). OSError (`UnsupportedCompression` among them) when it cannot be opened."""
    if path == "-":
        return sys.stdin.buffer
    if kind is False:
        kind = compression_of(path)
    if kind == "gzip":
        import gzip
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "bzip2":
        import bz2
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


# binary files of /var/log, with no suffix like the text logs beside them
_BINARY_LOGS = frozenset({"lastlog", "wtmp", "btmp", "utmp", "faillog", "tallylog"})


def is_binary(path: str, kind: str | None) -> bool:
    """wtmp, lastlog and the like by name; anything else with NUL bytes in its first 4 KiB
    (decompressed). A file that cannot be read is not called binary: reading it says why."""
    if Path(path).name.split(".", 1)[0] in _BINARY_LOGS:
        return True
    try:
        with open_input(path, kind) as f:
            return b"\x00" in f.read(4096)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return False
