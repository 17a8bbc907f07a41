"""Graphite plaintext metrics written to a file (`nc carbon 2003 < metrics.txt` loads it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..protocols.graphite import format_line


def write_points(points: Iterable[tuple[str, float, int]], path: Path) -> int:
    n = 0
    with path.open("wb") as f:
        for name, value, ts in points:
            f.write(format_line(name, value, ts))
            n += 1
    return n


class GraphiteFileSink:
    """The live pipeline's metrics file: points appended at every flush, pushed to the OS."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, points: list[tuple[str, float, int]]) -> int:
        if not points:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)   # the output directory may have been removed
        with self.path.open("ab") as f:
            f.write(b"".join(format_line(name, value, ts) for name, value, ts in points))
        return len(points)

    def close(self) -> bool:
        return True
