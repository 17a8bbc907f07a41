"""A grok compiler: pattern files of `NAME regex` lines, `%{SYNTAX[:field[:type]]}`
references, compiled once into Python regular expressions.

Field names are ECS paths, written `source.ip` or `[source][ip]`. Python group names
cannot hold dots, so every capture becomes a numbered group and a side table maps it to
its path and conversion. Several top-level patterns can be compiled into one
alternation; the wrapper group that closed last (`Match.lastindex`) tells which one
matched, so a line costs one regex call instead of one per pattern. That alternation is
narrowed per message by the first characters its patterns can start with
(`KeyedAlternation`), so the call tries only the patterns that can match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from re import _constants as _C  # the stdlib's regex parser (3.11+), read by `openings`
from re import _parser as _sre_parser
from typing import Any

_REF = re.compile(r"%\{(\w+)(?::([\w@.\[\]-]+))?(?::(int|float|integer|string))?\}")
# Oniguruma/PCRE named group `(?<name>`, not the lookbehinds `(?<=` and `(?<!`.
_NAMED = re.compile(r"\(\?<(?![=!])([\w@.\[\]-]+)>")
_DEF_LINE = re.compile(r"^([A-Za-z0-9_]+)\s+(.+?)\s*$")


class PatternError(ValueError):
    """A pattern that does not compile or refers to an unknown name, with its origin."""

    def __init__(self, message: str, origin: str | None = None) -> None:
        super().__init__(f"{origin}: {message}" if origin else message)
        self.origin = origin


def _to_int(v: str) -> int | str:
    try:
        return int(v)
    except ValueError:
        return v


def _to_float(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


CONVERTERS: dict[str, Callable[[str], Any] | None] = {
    "int": _to_int, "integer": _to_int, "float": _to_float, "string": None,
}


def field_path(name: str) -> tuple[str, ...]:
    """`[source][ip]` or `source.ip` -> ('source', 'ip')."""
    if name.startswith("["):
        parts = tuple(p for p in re.split(r"\]\[|\[|\]", name) if p)
    else:
        parts = tuple(name.split("."))
    if not parts or any(not p for p in parts):
        raise PatternError(f"bad field name {name!r}")
    return parts


@dataclass(frozen=True, slots=True)
class Capture:
    group: int
    parents: tuple[str, ...]
    leaf: str
    convert: Callable[[str], Any] | None

    @property
    def path(self) -> str:
        return ".".join((*self.parents, self.leaf))


def put(doc: dict, parents: tuple[str, ...], leaf: str, value: Any) -> None:
    d = doc
    for p in parents:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = d[p] = {}
        d = nxt
    d[leaf] = value


def apply_captures(m: re.Match, captures: tuple[Capture, ...], doc: dict) -> None:
    for c in captures:
        v = m.group(c.group)
        if v is None:
            continue
        if c.convert is not None:
            v = c.convert(v)
        put(doc, c.parents, c.leaf, v)


Static = tuple[tuple[str, ...], str, Any]  # (parents, leaf, value): a field every match sets


def compile_filler(captures: tuple[Capture, ...], statics: tuple[Static, ...] = ()) -> Callable[[re.Match, dict], None]:
    """Generate `fill(match, doc)` that writes the captures (and constant fields) into the
    nested document with straight-line code: one `group()` call, one dict lookup per
    level, no loops and no empty sub-objects. Done once per pattern at start-up, so the
    per-line cost is that of hand-written code."""
    tree: dict = {}
    for c in captures:
        node = tree
        for p in c.parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PatternError(f"field {c.path} is both a value and an object")
        node.setdefault(c.leaf, [])
        if isinstance(node[c.leaf], dict):
            raise PatternError(f"field {c.path} is both a value and an object")
        node[c.leaf].append(("cap", c.group, c.convert))
    for i, (parents, leaf, value) in enumerate(statics):
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PatternError(f"field {'.'.join((*parents, leaf))} is both a value and an object")
        if isinstance(node.setdefault(leaf, []), dict):
            raise PatternError(f"field {'.'.join((*parents, leaf))} is both a value and an object")
        node[leaf].append(("const", i, value))

    ns: dict[str, Any] = {}
    groups = sorted({c.group for c in captures})
    src = ["def fill(m, doc):"]
    if len(groups) == 1:
        src.append(f"    v{groups[0]} = m.group({groups[0]})")
    elif groups:
        src.append(f"    {', '.join(f'v{g}' for g in groups)} = m.group({', '.join(map(str, groups))})")

    def needs(node: dict) -> str | None:
        """Condition under which a sub-object gets created (None: always)."""
        conds = []
        for child in node.values():
            if isinstance(child, dict):
                c = needs(child)
                if c is None:
                    return None
                conds.append(c)
            else:
                for kind, key, _ in child:
                    if kind == "const":
                        return None
                    conds.append(f"v{key} is not None")
        return " or ".join(conds) if conds else "False"

    counter = [0]

    def emit(node: dict, var: str, indent: str) -> None:
        for key, child in node.items():
            if isinstance(child, dict):
                counter[0] += 1
                sub = f"d{counter[0]}"
                cond = needs(child)
                inner = indent
                if cond is not None:
                    src.append(f"{indent}if {cond}:")
                    inner = indent + "    "
                src.append(f"{inner}{sub} = {var}.get({key!r})")
                src.append(f"{inner}if {sub}.__class__ is not dict:")
                src.append(f"{inner}    {sub} = {var}[{key!r}] = {{}}")
                emit(child, sub, inner)
                continue
            for kind, ref, extra in child:
                if kind == "const":
                    ns[f"k{ref}"] = extra
                    src.append(f"{indent}{var}[{key!r}] = k{ref}")
                elif extra is None:
                    src.append(f"{indent}if v{ref} is not None:")
                    src.append(f"{indent}    {var}[{key!r}] = v{ref}")
                else:
                    ns[f"c{ref}"] = extra
                    src.append(f"{indent}if v{ref} is not None:")
                    src.append(f"{indent}    {var}[{key!r}] = c{ref}(v{ref})")

    emit(tree, "doc", "    ")
    if len(src) == 1:
        src.append("    pass")
    exec("\n".join(src), ns)  # noqa: S102 - code generated from validated field paths
    fill = ns["fill"]
    fill.source = "\n".join(src)
    return fill


class _Builder:
    """Expands one expression; numbers its captures `_g1`, `_g2`, …"""

    def __init__(self, lib: GrokLibrary) -> None:
        self.lib = lib
        self.fields: list[tuple[str, tuple[str, ...], Callable | None]] = []
        self.used: set[str] = set()  # definitions expanded (proven sound once this compiles)

    def group(self, path: tuple[str, ...], conv: Callable | None) -> str:
        name = f"_g{len(self.fields) + 1}"
        self.fields.append((name, path, conv))
        return name

    def expand(self, text: str, origin: str, stack: tuple[str, ...] = ()) -> str:
        def named(m: re.Match) -> str:
            return f"(?P<{self.group(field_path(m.group(1)), None)}>"

        text = _NAMED.sub(named, text)

        def ref(m: re.Match) -> str:
            name, fld, typ = m.groups()
            if name in stack:
                raise PatternError(f"recursive pattern %{{{name}}} ({' -> '.join((*stack, name))})", origin)
            defn = self.lib.definitions.get(name)
            if defn is None:
                raise PatternError(f"unknown pattern %{{{name}}}", origin)
            self.used.add(name)
            inner = self.expand(defn.regex, defn.origin, (*stack, name))
            if fld is None:
                return f"(?:{inner})"
            try:
                path = field_path(fld)
            except PatternError as e:
                raise PatternError(str(e), origin) from None
            return f"(?P<{self.group(path, CONVERTERS[typ] if typ else None)}>{inner})"

        return _REF.sub(ref, text)


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    regex: str
    origin: str  # "file:line"


class Grok:
    """One compiled expression; `match` fills a dict, anchored at both ends."""

    __slots__ = ("regex", "captures", "pattern", "fill")

    def __init__(self, pattern: str, regex: re.Pattern, captures: tuple[Capture, ...]) -> None:
        self.pattern = pattern
        self.regex = regex
        self.captures = captures
        self.fill = compile_filler(captures)

    def match(self, text: str, doc: dict | None = None) -> dict | None:
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        doc = {} if doc is None else doc
        self.fill(m, doc)
        return doc


class Alternation:
    """Several top-level expressions compiled into one anchored regex.

    `match(text, doc)` returns the payload of the first expression that matches the
    whole text (captures written into `doc`), or None.
    """

    __slots__ = ("regex", "branches")

    def __init__(self, regex: re.Pattern, branches: dict[int, tuple[Any, Callable[[re.Match, dict], None]]]) -> None:
        self.regex = regex
        self.branches = branches

    def match(self, text: str, doc: dict) -> Any:
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        payload, fill = self.branches[m.lastindex]
        fill(m, doc)
        return payload

    def narrow(self, text: str) -> Alternation | None:
        """The alternation `match` runs on `text`: itself."""
        return self


KEY_LEN = 4  # characters of a message that pick its candidate expressions
_MAX_OPENINGS = 64
_MAX_STEPS = 10_000
_REPEATS = (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT)
_ZERO_WIDTH = (_C.AT, _C.ASSERT, _C.ASSERT_NOT)


class KeyedAlternation:
    """An alternation that first narrows its expressions by the text's first KEY_LEN
    characters, so a line pays only for the expressions that can start like it.

    The possible openings of each expression are derived from its regex at start
    (`openings`); an expression whose opening is not a small set of literals is a
    candidate for every key. Per key, the candidates keep their priority order, so the
    first match is the one the full alternation gives. Keys with the same candidates
    share one narrowed alternation; any other key gets the wildcards' one."""

    __slots__ = ("_by_key", "_other")

    def __init__(self, full: Alternation, opens: list[frozenset[str] | None],
                 assemble: Callable[[tuple[int, ...]], Alternation]) -> None:
        shared: dict[tuple[int, ...], Alternation | None] = {(): None, tuple(range(len(opens))): full}

        def narrowed(items: tuple[int, ...]) -> Alternation | None:
            if items not in shared:
                shared[items] = _Lazy(lambda: assemble(items))
            return shared[items]

        keys = set().union(*(o for o in opens if o is not None))
        self._by_key = {k: narrowed(tuple(i for i, o in enumerate(opens) if o is None or k in o)) for k in keys}
        self._other = narrowed(tuple(i for i, o in enumerate(opens) if o is None))

    def narrow(self, text: str) -> Alternation | None:
        """The alternation `match` runs on `text` (None: no expression can match it)."""
        return self._by_key.get(text[:KEY_LEN], self._other)

    def match(self, text: str, doc: dict) -> Any:
        alt = self._by_key.get(text[:KEY_LEN], self._other)  # narrow(), inlined: once per line
        if alt is None:
            return None
        m = alt.regex.fullmatch(text)  # Alternation.match, inlined (a call less per line)
        if m is None:
            return None
        payload, fill = alt.branches[m.lastindex]
        fill(m, doc)
        return payload


class _Lazy(Alternation):
    """An alternation compiled on first use, so start-up costs only the full one."""

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[], Alternation]) -> None:  # regex and branches: on first use
        self._build = build

    def __getattr__(self, name: str) -> Any:  # called only while `regex` and `branches` are unset
        alt = self._build()
        self.regex, self.branches = alt.regex, alt.branches
        return getattr(alt, name)


class _Open(Exception):
    """The expression can start with something other than a short set of literals."""


def openings(expr: str, length: int = KEY_LEN) -> frozenset[str] | None:
    """Every possible first `length` characters of a match of `expr` (a regex), or None
    when they are not a small set of literal strings (a class like `\\w`, a repeat, a
    case-insensitive group, or a match that can be shorter than `length`). Zero-width
    assertions are skipped: that only widens the set."""
    out: set[str] = set()
    steps = [0]

    def walk(frames: tuple, pre: str) -> None:
        steps[0] += 1
        if steps[0] > _MAX_STEPS:  # many optional parts in a row: not worth the start-up time
            raise _Open
        if len(pre) >= length:
            out.add(pre[:length])
            if len(out) > _MAX_OPENINGS:
                raise _Open
            return
        if not frames:
            raise _Open
        (seq, i), rest = frames[0], frames[1:]
        if i == len(seq):
            walk(rest, pre)
            return
        op, av = seq[i]
        nxt = ((seq, i + 1), *rest)
        if op is _C.LITERAL:
            walk(nxt, pre + chr(av))
        elif op is _C.IN and all(o is _C.LITERAL for o, _ in av):
            for _, c in av:
                walk(nxt, pre + chr(c))
        elif op is _C.SUBPATTERN and not av[1] & re.IGNORECASE:
            walk(((av[3].data, 0), *nxt), pre)
        elif op is _C.ATOMIC_GROUP:
            walk(((av.data, 0), *nxt), pre)
        elif op is _C.BRANCH:
            for alt in av[1]:
                walk(((alt.data, 0), *nxt), pre)
        elif op in _REPEATS and av[:2] in ((0, 1), (1, 1)):
            if av[0] == 0:
                walk(nxt, pre)
            walk(((av[2].data, 0), *nxt), pre)
        elif op in _ZERO_WIDTH:
            walk(nxt, pre)
        else:
            raise _Open

    try:
        parsed = _sre_parser.parse(expr, re.DOTALL)
        if parsed.state.flags & re.IGNORECASE:
            return None
        walk(((parsed.data, 0),), "")
    except (_Open, RecursionError):
        return None
    return frozenset(out)


class GrokLibrary:
    """Named pattern definitions, loaded from files and directories."""

    def __init__(self) -> None:
        self.definitions: dict[str, Definition] = {}
        self._sound: set[str] = set()  # names already compiled as part of a good pattern

    # -- loading ---------------------------------------------------------------------
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

    def validate(self, names: Iterable[str] | None = None) -> None:
        """Compile every definition not yet compiled as part of a top-level pattern, so
        a bad one fails at start with its origin."""
        for name in names if names is not None else list(self.definitions):
            if name not in self._sound:
                self.compile(f"%{{{name}}}", origin=self.definitions[name].origin)

    # -- compiling -------------------------------------------------------------------
    def _expand(self, expr: str, origin: str) -> tuple[str, _Builder]:
        b = _Builder(self)
        return b.expand(expr, origin), b

    @staticmethod
    def _captures(regex: re.Pattern, b: _Builder) -> tuple[Capture, ...]:
        idx = regex.groupindex
        return tuple(Capture(idx[n], path[:-1], path[-1], conv) for n, path, conv in b.fields)

    def compile(self, expr: str, origin: str = "<expression>") -> Grok:
        text, b = self._expand(expr, origin)
        try:
            rx = re.compile(text, re.DOTALL)
        except re.error as e:
            raise PatternError(f"does not compile: {e}", origin) from None
        try:
            grok = Grok(expr, rx, self._captures(rx, b))
        except PatternError as e:  # `%{INT:a} %{INT:a.b}`: name where, when not named yet
            if e.origin is not None:
                raise
            raise PatternError(str(e), origin) from None
        self._sound |= b.used
        return grok

    def compile_alternation(self, items: Iterable[tuple]) -> Alternation | KeyedAlternation:
        """items: (payload, expression, origin[, statics]). Order is priority order.
        `statics` are (parents, leaf, value) fields written on every match of that item."""
        b = _Builder(self)
        parts = []  # (body, wrapper name, payload, statics, origin, first field, end field)
        for i, (payload, expr, origin, *rest) in enumerate(items):
            start = len(b.fields)
            body = b.expand(expr, origin)
            parts.append((body, f"_w{i}", payload, tuple(rest[0]) if rest else (), origin, start, len(b.fields)))

        def assemble(chosen: Iterable[int]) -> Alternation:
            sel = [parts[i] for i in chosen]
            rx = re.compile("(?:" + "|".join(f"(?P<{w}>{body})" for body, w, *_ in sel) + ")", re.DOTALL)
            idx = rx.groupindex
            branches = {}
            for _, wname, payload, statics, origin, s, e in sel:
                caps = tuple(Capture(idx[n], p[:-1], p[-1], c) for n, p, c in b.fields[s:e])
                try:
                    branches[idx[wname]] = (payload, compile_filler(caps, statics))
                except PatternError as err:
                    raise PatternError(str(err), origin) from None
            return Alternation(rx, branches)

        try:
            full = assemble(range(len(parts)))
        except re.error:
            # compile the items one by one to name the one at fault
            for body, *_, origin, _s, _e in parts:
                try:
                    re.compile(body)
                except re.error as e:
                    raise PatternError(f"does not compile: {e}", origin) from None
            raise
        self._sound |= b.used
        return _keyed(full, [openings(body) for body, *_ in parts], assemble)


def _keyed(full: Alternation, opens: list[frozenset[str] | None],
           assemble: Callable[[tuple[int, ...]], Alternation]) -> Alternation | KeyedAlternation:
    """`full` narrowed per opening key, when the openings of its items tell them apart."""
    if all(o is None for o in opens):
        return full
    return KeyedAlternation(full, opens, assemble)
