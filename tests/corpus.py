"""Helpers shared by the corpus contract tests: field lookup and the failJSON reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
MISSING = object()

# fail2ban's samples convention: `# failJSON: {...}` applies to the next log line
_FAILJSON = re.compile(r"^#+\s*failJSON:\s*(\{.*\})\s*$")


def get(doc, path: str, default=None):
    """`a.b.c` in a nested document; `default` when any part is absent."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return default
        doc = doc[part]
    return doc


def read_failjson(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(every log line of the file, [(index of a line, its failJSON expectation)])."""
    lines: list[str] = []
    cases: list[tuple[int, dict]] = []
    pending = None
    for raw in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        m = _FAILJSON.match(raw)
        if m:
            try:
                pending = json.loads(m.group(1))
            except ValueError:
                pending = None
            continue
        if not raw.strip() or raw.startswith("#"):
            continue
        if pending is not None:
            cases.append((len(lines), pending))
            pending = None
        lines.append(raw)
    return lines, cases


def failjson_cases(path: Path) -> list[tuple[str, dict]]:
    lines, cases = read_failjson(path)
    return [(lines[i], exp) for i, exp in cases]
