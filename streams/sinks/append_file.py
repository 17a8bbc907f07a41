"""A file a long-running process appends to, one batch at a time, that survives its
directory being deleted.

`streams run` acks a message (RELP `rsp 200`) once its batch was written and flushed to the
OS. If an operator removes the output directory (`rm -rf out/`) the open files have no name
any more: writes into them succeed and are lost with them. So `flush()` writes the batch,
then checks that the file still has a link; if not, it recreates the directory, opens the
file anew and writes the batch again there, before the acks go out. Lines written before
the deletion went with the deleted file: that was the operator's doing, and it is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("streams.sink.files")


class AppendFile:
    def __init__(self, path: Path, buffer_size: int = 32 * 1024, stats: MutableMapping[str, int] | None = None) -> None:
        self.path = path
        self.buffer_size = buffer_size
        self.stats = stats   # its `recreated` counts the times the file was found deleted
        self._f: BinaryIO | None = None
        self._batch: list[bytes] = []

    @property
    def is_open(self) -> bool:
        return self._f is not None

    @property
    def pending(self) -> bool:
        return bool(self._batch)

    def write(self, data: bytes) -> None:
        self._batch.append(data)

    def discard(self) -> None:
        """Forget the batch (it was refused as a whole)."""
        self._batch.clear()

    def flush(self) -> None:
        """Hand the batch to the OS, in a file that still has its name (raises OSError)."""
        if not self._batch:
            return
        data = b"".join(self._batch)
        self._batch.clear()
        f = self._open()
        f.write(data)
        f.flush()
        if os.fstat(f.fileno()).st_nlink == 0:
            if self.stats is not None:
                self.stats["recreated"] = self.stats.get("recreated", 0) + 1
            log.error("output file deleted while open: recreated and this batch written again (what was "
                      "written to it before is gone with it)", extra={"path": str(self.path)})
            self.close_file()
            f = self._open()
            f.write(data)
            f.flush()

    def _open(self) -> BinaryIO:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("ab", buffering=self.buffer_size)
        return self._f

    def close_file(self) -> None:
        """Close the file (SIGHUP, or too many open): the next flush opens it again. A file
        that fails to close (a full disk) is forgotten all the same."""
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError as e:
                log.error("closing an output file failed: %s", e, extra={"path": str(self.path)})

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.close_file()
