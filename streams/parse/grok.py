"""Grok pattern files (`patterns/*.grok`): `NAME regex` definitions, read with their origin
(`file:line`) so an error names where it is. Compiling and matching them is the native
core's (`streams._native`, native/src/grok.rs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DEF_LINE = re.compile(r"^([A-Za-z0-9_]+)\s+(.+?)\s*$")


class PatternError(ValueError):
    """A pattern that does not compile or refers to an unknown name, with its origin."""

    def __init__(self, message: str, origin: str | None = None) -> None:
        super().__init__(f"{origin}: {message}" if origin else message)
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    regex: str
    origin: str  # "file:line"


class GrokLibrary:
    """Named pattern definitions, loaded from files and directories (a later one of the
    same name replaces an earlier one)."""

    def __init__(self) -> None:
        self.definitions: dict[str, Definition] = {}

    def add(self, name: str, regex: str, origin: str = "<inline>") -> None:
        self.definitions[name] = Definition(name, regex, origin)

    def load_file(self, path: str | Path) -> list[str]:
        path = Path(path)
        names = []
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PatternError(f"cannot read: {e}", str(path)) from None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _DEF_LINE.match(line)
            if m is None:
                raise PatternError(f"expected 'NAME regex', got {raw!r}", f"{path}:{lineno}")
            self.add(m.group(1), m.group(2), f"{path}:{lineno}")
            names.append(m.group(1))
        return names

    def load_dir(self, directory: str | Path) -> list[str]:
        names: list[str] = []
        if not Path(directory).is_dir():  # a mistyped --patterns-dir must not be ignored
            raise PatternError("not a directory of pattern files", str(directory))
        for p in sorted(Path(directory).glob("*.grok")):
            names += self.load_file(p)
        return names
