"""The native parse core (`streams._native.Parser`) built from the pattern directories:
Python reads the `.grok` definitions and the product `.yaml` files and hands their data
to the core, which compiles and runs them (see native/README.md)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from .. import PATTERNS_DIR
from .._native import Parser
from ..clock import Clock, SystemClock
from ..inputs import DEFAULT_MAX_LINE
from .grok import GrokLibrary, PatternError

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def pattern_data(pattern_dirs: Iterable[Path] | None = None) -> tuple[dict[str, str], list[dict]]:
    """(grok definitions, parser specs in load order) of the built-in patterns and the
    user's directories (later ones override definitions and parsers of the same name)."""
    dirs = [PATTERNS_DIR, *(Path(d) for d in pattern_dirs or ())]
    lib = GrokLibrary()
    parsers: list[dict] = []
    for d in dirs:
        lib.load_dir(d)
        for path in sorted(Path(d).glob("*.yaml")):
            try:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader) or {}
            except yaml.YAMLError as e:
                raise PatternError(f"bad YAML: {e}", str(path)) from None
            for i, spec in enumerate(data.get("parsers") or []):
                parsers.append({**spec, "origin": f"{path}: parsers[{i}]"})
    return {n: d.regex for n, d in lib.definitions.items()}, parsers


def native_parser(pattern_dirs: Iterable[Path] | None = None, *, year: int | None = None,
                  timezone: str | None = None, clock: Clock | None = None,
                  max_line: int = DEFAULT_MAX_LINE) -> Parser:
    defs, parsers = pattern_data(pattern_dirs)
    now = (clock or SystemClock()).now()
    return Parser(defs, parsers, year=year, timezone=timezone or "UTC", now=now, max_line=max_line)
