"""Which files a replay reads, in which order, and which files of a folder it leaves out, and why.

A folder is walked whole: every regular file in it is read unless it cannot hold log lines
we can read, and then it is listed with its reason (`Skipped`), never dropped unseen:
binary files (wtmp, lastlog, NUL bytes in the first 4 KiB), compression the standard
library cannot read (zstd, lz4, zip...), files that cannot be opened, what is not a
regular file (socket, FIFO, device), broken links and link loops, a file reached twice
through a link, hidden entries and README/`*.md` notes. Plain, `.gz`, `.bz2` and `.xz`
files are read whatever their name (`mail.warn`, `messages`, `auth.log-20261201`).

Logrotate's families are read oldest first, so that time runs forward through them (for
Fail2ban's continuation lines, the year of year-less timestamps, the metrics):
`auth.log-20261130`, `auth.log-20261201` (dated, ascending), `auth.log.2.gz`, `auth.log.1`
(numbered, descending), then `auth.log`. A file named on its own is always read, in the
order given.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .inputs import UnsupportedCompression, compression_of, is_binary

_ROTATED = re.compile(r"(?P<base>.+?)(?:\.(?P<n>\d{1,4})|[-.](?P<date>\d{8}(?:\d{2}){0,3}|\d{4}-\d\d-\d\d))$")
_COMPRESSED = (".gz", ".bz2", ".xz")


@dataclass(frozen=True)
class Skipped:
    """A file of a folder left out. `unreadable`: it may hold log lines that were not read
    (it could not be opened, or its compression is unsupported): the replay exits 1."""

    path: str
    reason: str
    unreadable: bool = False

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def expand_paths(paths: list[str], skipped: list[Skipped] | None = None, output: Path | None = None) -> list[str]:
    """The files to read: folders expanded (recursively, each rotation family oldest first),
    files and `-` as given. Files of a folder left out are appended to `skipped`; so is
    `output`, the replay's own output folder, when it is inside one (`replay /var/log -o
    /var/log/out` would read its last outputs as logs)."""
    out: list[str] = []
    left: list[Skipped] = [] if skipped is None else skipped
    seen: dict[tuple[int, int], str] = {}
    out_key = None
    if output is not None:
        try:
            st = output.stat()
            out_key = (st.st_dev, st.st_ino)
        except OSError:
            pass   # not made yet: nothing of it to read
    for p in paths:
        if p != "-" and os.path.isdir(p):
            _walk(Path(p), out, left, seen, set(), out_key)
        else:
            out.append(p)
            try:
                st = os.stat(p)
                seen.setdefault((st.st_dev, st.st_ino), p)
            except (OSError, ValueError):
                pass  # reported when it is opened
    return out


def rotation_key(name: str) -> tuple[str, int, str | int]:
    """Sort key of a file name: its family (the name without compression and rotation
    suffixes), then dated rotations ascending, numbered ones descending, the live file last."""
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    m = _ROTATED.fullmatch(name)
    if m is None:
        return name, 2, 0
    if m["date"] is not None:
        return m["base"], 0, m["date"].replace("-", "")
    return m["base"], 1, -int(m["n"])


def _walk(folder: Path, out: list[str], skipped: list[Skipped], seen: dict[tuple[int, int], str],
          folders: set[tuple[int, int]], output: tuple[int, int] | None) -> None:
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        skipped.append(Skipped(str(folder), f"folder not readable: {e.strerror or e}", True))
        return
    if (st.st_dev, st.st_ino) == output:
        skipped.append(Skipped(str(folder), "the replay's own output folder"))
        return
    if (st.st_dev, st.st_ino) in folders:  # a link back to a folder being walked
        skipped.append(Skipped(str(folder), "symbolic link loop (a folder already being read)"))
        return
    folders = folders | {(st.st_dev, st.st_ino)}
    files: list[tuple[tuple, str]] = []
    subfolders: list[Path] = []
    for entry in entries:
        path = Path(entry.path)
        kind = _kind(path, entry.name, skipped)
        if kind == "folder":
            subfolders.append(path)
        elif kind == "file":
            files.append((rotation_key(entry.name), str(path)))
    for _, path in sorted(files):
        reason = _left_out(path, seen)
        if reason is None:
            out.append(path)
        else:
            skipped.append(reason)
    for sub in subfolders:
        _walk(sub, out, skipped, seen, folders, output)


def _kind(path: Path, name: str, skipped: list[Skipped]) -> str | None:
    """"folder", "file", or None when left out (and listed)."""
    if name.startswith("."):
        skipped.append(Skipped(str(path), "hidden"))
        return None
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            reason = "symbolic link loop"
        elif path.is_symlink() and e.errno == errno.ENOENT:
            reason = f"broken symbolic link (to {os.readlink(path)})"
        else:
            skipped.append(Skipped(str(path), f"not readable: {e.strerror or e}", True))
            return None
        skipped.append(Skipped(str(path), reason))
        return None
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if not stat.S_ISREG(st.st_mode):
        what = ("a socket" if stat.S_ISSOCK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special")
        skipped.append(Skipped(str(path), f"not a regular file ({what})"))
        return None
    if name.upper().startswith("README") or name.endswith(".md"):
        skipped.append(Skipped(str(path), "a note, not a log (README, *.md)"))
        return None
    return "file"


def _left_out(path: str, seen: dict[tuple[int, int], str]) -> Skipped | None:
    """Why a regular file of a folder is not read, or None: it is."""
    try:
        st = os.stat(path)
    except OSError as e:
        return Skipped(path, f"not readable: {e.strerror or e}", True)
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return Skipped(path, f"the same file as {seen[key]} (a link)")
    seen[key] = path
    try:
        kind = compression_of(path)
        if is_binary(path, kind):
            return Skipped(path, "binary (wtmp, lastlog, or NUL bytes at its start)")
    except UnsupportedCompression as e:
        return Skipped(path, str(e), True)
    except OSError as e:
        return Skipped(path, f"not readable: {e.strerror or e}", True)
    return None
