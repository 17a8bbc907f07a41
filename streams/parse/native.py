"""The native parse core (`streams._native.Parser`) built from the pattern directories:
Python reads the `.grok` definitions and the product `.yaml` files and hands their data
to the core, which compiles and runs them (see native/README.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from .. import PATTERNS_DIR
from .._native import Grok, Parser
from ..clock import Clock, SystemClock
from ..inputs import DEFAULT_MAX_LINE
from .grok import GrokLibrary, PatternError
from .timestamps import UnknownTimezone

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def pattern_data(pattern_dirs: Iterable[Path] | None = None) -> tuple[dict[str, str], list[dict]]:
    """(grok definitions, parser specs in load order) of the built-in patterns and the
    user's directories (later ones override definitions and parsers of the same name)."""
    defs, parsers, _ = _pattern_data(pattern_dirs)
    return defs, parsers


def _pattern_data(pattern_dirs: Iterable[Path] | None) -> tuple[dict[str, str], list[dict], dict[str, str]]:
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
            # the shapes the core needs, named where they are wrong (the core checks the rest)
            if not isinstance(data, dict):
                raise PatternError("the file must be a mapping", str(path))
            specs = data.get("parsers") or []
            if not isinstance(specs, list):
                raise PatternError("parsers must be a list", str(path))
            for i, spec in enumerate(specs):
                if not isinstance(spec, dict):
                    raise PatternError("a parser must be a mapping", f"{path}: parsers[{i}]")
                _no_builtin_hooks(spec, f"{path}: parsers[{i}]")
                parsers.append({**spec, "origin": f"{path}: parsers[{i}]"})
    defs = {n: d.regex for n, d in lib.definitions.items()}
    try:  # every definition compiles, used or not: a bad one fails at start with its origin
        Grok(defs).validate()
    except ValueError as e:
        first = str(e).splitlines()[0]
        name, _, why = first.partition(": ")
        d = lib.definitions.get(name)
        raise PatternError(f"{name}: {why}", d.origin if d else None) from None
    return defs, parsers, {n: d.origin for n, d in lib.definitions.items()}


def _no_builtin_hooks(spec: dict, origin: str) -> None:
    """The built-in hooks of old rule files (`hooks: [postfix]`) became ops: say so where."""
    rules = spec.get("rules")
    for where, hooks in [(origin, spec.get("hooks")),
                         *((f"{origin}.rules[{j}]", r.get("hooks")) for j, r in enumerate(rules)
                           if isinstance(rules, list) and isinstance(r, dict))]:
        for h in hooks if isinstance(hooks, list) else ():
            if isinstance(h, str) and ":" not in h:
                raise PatternError(f"hook {h!r}: the built-in hooks are declarative `ops:` now (see "
                                   "native/OPS.md and the shipped patterns); a Python hook is named "
                                   "`module:function`", where)


def native_parser(pattern_dirs: Iterable[Path] | None = None, *, year: int | None = None,
                  timezone: str | None = None, clock: Clock | None = None,
                  max_line: int = DEFAULT_MAX_LINE) -> Parser:
    defs, parsers, origins = _pattern_data(pattern_dirs)
    now = (clock or SystemClock()).now()
    try:
        return Parser(defs, parsers, year=year, timezone=timezone or "UTC", now=now, max_line=max_line)
    except ValueError as e:  # a rule file, a pattern or an op the core refuses: it names where
        msg = str(e)
        if "time zone" in msg:
            raise UnknownTimezone(msg) from None
        # a rule's pattern: where it is defined too
        m = re.search(r"\brule (\w+):", msg)
        if m is not None and (origin := origins.get(m[1])) is not None:
            msg = f"{msg} (pattern {m[1]} at {origin})"
        raise PatternError(msg) from None
