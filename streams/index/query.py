"""Riemann's query language: parse once with pyparsing, compile to a flat Python predicate.

    q = compile_query('service =~ "fail2ban%" and (state = "critical" or metric > 0.9)')
    q(event) -> bool                  match_all(q, events) -> list[Event]

Grammar (Riemann's `resources/query.g4` and `src/riemann/query.clj`), loosest first::

    query     := or EOF
    or        := and ('or' and)*
    and       := not ('and' not)*
    not       := 'not' not | '(' or ')' | 'tagged' STRING | value [op operand]
    op        := '=' | '!=' value        '<' | '>' | '<=' | '>=' NUMBER
                 '=~' STRING (LIKE)      '~=' STRING (regex)
    value     := STRING | NUMBER | 'true' | 'false' | 'nil' | 'null' | NAME

Semantics, as Riemann's:

- `=` is Clojure's `=`: types must agree (`state = true` never matches `"true"`, `nil`
  only matches a missing value); `!=` is its negation, so `state != "ok"` matches an
  event without state, and `metric != nil` an event with a metric.
- `<` `>` `<=` `>=` take a number literal on the right (Riemann's grammar: `metric > ttl`
  is an error) and are false unless the value on the left is a number; never raise.
- `=~` is LIKE: `%` matches any run of characters, the rest is literal, whole value.
  `~=` is a regular expression searched anywhere in the value (Clojure's `re-find`).
  Both are false on a missing or non-string value.
- `tagged "x"`: `"x"` is one of the event's tags.
- A bare value is a predicate with Clojure's truthiness: `true`, `host` (has a host),
  `0` and `""` match; `false`, `nil` and a missing field do not.
- Strings take Clojure's escapes (`\\" \\\\ \\t \\n \\r \\b \\f \\uXXXX`, octal `\\NNN`); any
  other escape is an error, as in Riemann, so a regex class is written `"\\\\d+"`.
- Numbers: `1`, `-1`, `1.5`, `-1.2e-5`, `1E5`, `Infinity`, `NaN`, and Clojure's `1L`/`1N`.
- Keywords (`and or not tagged true false nil null`) are lowercase and reserved, as in
  Riemann; `AND` is an attribute name, and the error message says so.
- Fields: `host service state metric ttl description time`; `metric_f`, `metric_d` and
  `metric_sint64` (the protobuf names) read `metric`. Any other name is a custom
  attribute, `event.attributes[name]`, `message` and `tags` included (Riemann has no
  message; tags are read with `tagged`).

Where we deviate, and why:

- Numbers compare by value across int and float (`metric = 4` matches `4.0`): Clojure's
  `(= 4 4.0)` is false, a trap for a float metric.
- Attributes are strings (Riemann's protobuf has no other kind), so an attribute compared
  with a number (`paws > 3`, `paws = 4`) is read as a number when it spells one, else
  the comparison is false. Without this no numeric test on an attribute could ever match.
- LIKE's `%` also spans newlines (Riemann's `.*` stops at one): a multi-line description
  is still one value.
- Names are `[letter_][word . : -]*` and commas are not whitespace: in Riemann's lexer
  `=` and `<` may sit inside a name, so `host="a"` fails there; here it parses.
- Regular expressions are RE2's (google-re2), not Java's: a query comes from the network
  and runs on the event loop, on every index update for a `/stream` subscription, so its
  regex must run in linear time (Java's and Python's backtracking engines take hours on
  `(a+)+$`). RE2 has no backreferences, lookaround, possessive quantifiers or atomic
  groups: such a pattern is a QueryError with RE2's reason. Other differences: `\\d \\w
  \\s \\b` are ASCII, `$` is only the end of the value (not before a final newline), `\\Z`
  is written `\\z`. A pattern over RE2_MAX_MEM is refused, not compiled.
- A query costs at most: MAX_LENGTH characters, MAX_TERMS predicates (MAX_TERMS - 1
  `and`/`or`), MAX_REGEXES `~=`, parentheses MAX_DEPTH deep; over that it is a QueryError
  with the reason. Riemann has no limits; a query from the network must have some. A
  query too deep for Python's recursion (`not not … true`) is a QueryError too, never a
  RecursionError.

A query is compiled to the source of one Python expression over `e` (the event), then
to a function with `compile()`. The source holds only our own fixed code: every literal
of the query (strings, numbers, regexes, attribute names) is passed in as a closure
constant, never spliced into the source text. The same expression also becomes a list
comprehension, so `match_all` costs no Python call per event.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

import pyparsing as pp
import re2

from streams.event import Event

__all__ = ["Query", "QueryError", "compile_query", "match_all", "parse_query"]

KEYWORDS = frozenset({"and", "or", "not", "tagged", "true", "false", "nil", "null"})
# Event slots a query may name; the protobuf spellings of metric read the one metric.
FIELDS = {"host": "host", "service": "service", "state": "state", "metric": "metric", "metric_f": "metric",
          "metric_d": "metric", "metric_sint64": "metric", "ttl": "ttl", "description": "description",
          "time": "time"}
MAX_DEPTH = 32
MAX_LENGTH = 4096     # characters: Riemann dashboards' queries are a line or two
MAX_TERMS = 256       # predicates, each evaluated per event (per index update for a subscriber)
MAX_REGEXES = 8       # `~=`, each up to RE2_MAX_MEM
RE2_MAX_MEM = 1 << 20  # RE2's budget per regex (its default: 8 MiB); ~60k instructions
OPERATORS = frozenset({"=", "!=", "<", ">", "<=", ">=", "=~", "~="})
_ORDER = frozenset({"<", ">", "<=", ">="})

_NAME_CHAR = r"[\w.:-]"
_KW_RE = "|".join(sorted(KEYWORDS))
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[0-7]{1,3}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f"}
_NUMERIC = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")
_TOKEN_AT = re.compile(r'"(?:[^"\\]|\\.)*"?|[=!<>~]+|[\w.:-]+|\S', re.DOTALL)
_PAREN = re.compile(r'"(?:[^"\\]|\\.)*"?|[()]', re.DOTALL)
_WORD = re.compile(r'"(?:[^"\\]|\\.)*"?|[^\W\d][\w.:-]*', re.DOTALL)
# What the up-front cost check counts: strings (skipped), parentheses, operators, words.
_COST = re.compile(r'"(?:[^"\\]|\\.)*"?|[()]|[=!<>~]+|[^\W\d][\w.:-]*', re.DOTALL)


class QueryError(ValueError):
    """A query that does not parse. `position` is the 0-based offset in `query` (the
    column, for a one-line query); `message` says what was expected there. `str()` adds
    the query's line and a caret under the position (columns count from 0)."""

    def __init__(self, query: str, position: int, message: str) -> None:
        super().__init__(query, position, message)  # args as the constructor's: picklable
        self.query = query
        self.position = position
        self.message = message

    def __str__(self) -> str:
        start = self.query.rfind("\n", 0, self.position) + 1
        end = self.query.find("\n", self.position)
        line = self.query[start:end if end >= 0 else None]
        col = self.position - start
        lineno = self.query.count("\n", 0, start) + 1
        where = f"column {col}" if lineno == 1 else f"line {lineno}, column {col}"
        shown = re.sub(r"\s", " ", line)  # a tab would shift the caret
        return f"parse error at {where}: {self.message}\n  {shown}\n  {' ' * col}^"


# -- parsing ----------------------------------------------------------------------------
# The AST is made of tuples, close to Riemann's: literals are Python values (str, int,
# float, bool, None), ("field", slot) an Event slot, ("attr", name) a custom attribute,
# (op, left, right) a comparison, ("tagged", tag), ("not", x), ("and"|"or", x, y, ...).


class _Operand:
    """A value with where it started, so that the comparison can point at it."""

    __slots__ = ("pos", "node", "kind")

    def __init__(self, pos: int, node: Any, kind: str) -> None:
        self.pos, self.node, self.kind = pos, node, kind


def _fatal(s: str, loc: int, msg: str) -> pp.ParseFatalException:
    return pp.ParseFatalException(s, loc, msg)


def _value(s: str, loc: int, toks: pp.ParseResults) -> _Operand:
    m: re.Match = toks[0]
    kind, text = m.lastgroup, m.group()
    if kind == "string":
        return _Operand(loc, _unescape(s, loc, text), kind)
    if kind == "unterminated":
        raise _fatal(s, loc, "unterminated string")
    if kind == "number":
        text = text.rstrip("lLnN") if text[-2:-1].isdigit() else text  # Clojure's 1L, 1N: plain ints
        return _Operand(loc, int(text) if text.lstrip("-").isdigit() else float(text), kind)
    if kind == "constant":
        return _Operand(loc, {"true": True, "false": False}.get(text), kind)
    return _Operand(loc, ("field", FIELDS[text]) if text in FIELDS else ("attr", text), kind)


def _unescape(s: str, loc: int, raw: str) -> str:
    """The text of the string literal `raw` found at `loc` of `s`, with Clojure's escapes."""
    def unescape(m: re.Match) -> str:
        esc = m.group(1)
        if esc in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[esc]
        if esc[0] == "u":
            return chr(int(esc[1:], 16))
        if esc[0] in "01234567":
            if int(esc, 8) > 0o377:
                raise _fatal(s, loc + 1 + m.start(), f"octal escape \\{esc} is above \\377")
            return chr(int(esc, 8))
        raise _fatal(s, loc + 1 + m.start(), f"unsupported escape \\{esc} in string (write \\\\ for a backslash)")

    return _ESCAPE.sub(unescape, raw[1:-1])


# Parse actions return [node]: a bare None would mean "tokens unchanged" to pyparsing.
def _simple(s: str, loc: int, toks: pp.ParseResults) -> list:
    if len(toks) == 1:
        return [toks[0].node]
    left, (op_pos, op), right = toks
    if op not in OPERATORS:
        raise _fatal(s, op_pos, f"unknown operator {op!r} (one of = != < > <= >= =~ ~=)")
    if op in _ORDER and right.kind != "number":
        raise _fatal(s, right.pos, f"expected a number after {op!r}")
    if op in ("=~", "~=") and right.kind != "string":
        raise _fatal(s, right.pos, f"expected a string after {op!r}")
    if op == "~=":
        try:
            _regex(right.node)
        except re2.error as exc:
            raise _fatal(s, right.pos, _regex_refusal(exc)) from None
    return [(op, left.node, right.node)]


@functools.cache
def _re2_options() -> re2.Options:
    opts = re2.Options()
    opts.max_mem = RE2_MAX_MEM
    opts.log_errors = False  # a refusal is the caller's QueryError, not a line on stderr
    return opts


def _utf8(text: str) -> bytes:
    # RE2 reads UTF-8; a lone surrogate (a `\ud800` escape, an undecodable log byte)
    # must not raise, so it is passed through as the bytes it would be
    return text.encode("utf-8", "surrogatepass")


def _regex(pattern: str) -> Any:
    """The RE2 regex for a `~=` pattern (raises re2.error). Bytes in, bytes searched: the
    wrapper's str path maps every match back to str offsets, which we never read."""
    return re2.compile(_utf8(pattern), _re2_options())


def _regex_refusal(exc: re2.error) -> str:
    reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    if "too large" in reason:
        return f"regular expression too large (over RE2's memory budget of {RE2_MAX_MEM >> 10} KiB)"
    return (f"bad regular expression: {reason} (RE2 syntax: linear time, so no backreferences, "
            "lookaround or possessive quantifiers)")


def _tagged(s: str, loc: int, toks: pp.ParseResults) -> list:
    tag = toks[0]
    if tag.kind != "string":
        raise _fatal(s, tag.pos, "expected a string after 'tagged'")
    return [("tagged", tag.node)]


def _chain(op: str) -> Callable[[pp.ParseResults], list]:
    def action(toks: pp.ParseResults) -> list:
        items = list(toks)
        if len(items) == 1:
            return items
        flat: list[Any] = []
        for item in items:  # "a and (b and c)" is one n-ary node
            flat.extend(item[1:] if isinstance(item, tuple) and item[0] == op else [item])
        return [(op, *flat)]
    return action


def _keyword(word: str) -> pp.Regex:
    return pp.Regex(word + f"(?!{_NAME_CHAR})").set_name(f"'{word}'")


@functools.cache
def _grammar() -> pp.ParserElement:
    """Built on first use (no import-time work). Elements after a `-` stop backtracking, so
    an error is reported where it is, not at the start of the enclosing clause."""
    # One regex for every kind of value: alternatives would each cost a ParseException.
    value = pp.Regex("|".join([
        r'(?P<string>"(?:[^"\\]|\\.)*")',
        r'(?P<unterminated>"(?:[^"\\]|\\.)*\\?\Z)',
        rf"(?P<number>-?(?:Infinity|NaN|\d+[lLnN]|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?!{_NAME_CHAR}))",
        rf"(?P<constant>(?:true|false|nil|null)(?!{_NAME_CHAR}))",
        rf"(?P<name>(?!(?:{_KW_RE})(?!{_NAME_CHAR}))[^\W\d]{_NAME_CHAR}*)",
    ]), re.DOTALL, as_match=True).set_parse_action(_value).set_name("a value")
    # Any run of operator characters, so that `==` is reported as an unknown operator.
    op = pp.Regex(r"[=!<>~]+").set_parse_action(lambda s, loc, t: [(loc, t[0])]).set_name("an operator")
    simple = (value + pp.Optional(op - value)).set_parse_action(_simple)
    tagged = (_keyword("tagged").suppress() - value).set_parse_action(_tagged)

    query = pp.Forward()
    negation = pp.Forward()
    group = pp.Suppress("(") - query - pp.Suppress(pp.Literal(")").set_name("')'"))
    not_ = (_keyword("not").suppress() - negation).set_parse_action(lambda t: [("not", t[0])])
    negation <<= (simple | group | not_ | tagged).set_name("a predicate")  # the most common first
    conj = (negation + pp.ZeroOrMore(_keyword("and").suppress() - negation)).set_parse_action(_chain("and"))
    disj = (conj + pp.ZeroOrMore(_keyword("or").suppress() - conj)).set_parse_action(_chain("or"))
    query <<= disj
    return query + pp.StringEnd().set_name("end of query")


def _error(text: str, exc: pp.ParseBaseException) -> QueryError:
    loc = min(exc.loc, len(text))
    msg = exc.msg
    if msg.startswith("Expected "):
        expected = msg[len("Expected "):]
        if expected == "end of query":
            expected = "'and', 'or' or the end of the query"
        elif expected == "')'" and (opened := _unclosed(text, loc)) is not None:
            expected = f"')' to close the '(' at column {opened}"
        m = _TOKEN_AT.match(text, loc)
        msg = f"expected {expected}, found {m.group()!r}" if m else f"expected {expected}, found the end"
    for word in _WORD.findall(text):
        if word.lower() in KEYWORDS and word not in KEYWORDS:
            msg += f" (keywords are lowercase: {word!r} reads as an attribute name)"
            break
    return QueryError(text, loc, msg)


def _unclosed(text: str, end: int) -> int | None:
    """Where the innermost '(' still open at `end` starts (strings skipped)."""
    stack = []
    for m in _PAREN.finditer(text, 0, end):
        if m.group() == "(":
            stack.append(m.start())
        elif m.group() == ")" and stack:
            stack.pop()
    return stack[-1] if stack else None


def parse_query(text: str) -> Any:
    """The AST of `text` (see above); raises QueryError."""
    if not isinstance(text, str):
        raise TypeError(f"a query is a str, not {type(text).__name__}")
    if not text.strip():
        raise QueryError(text, 0, "empty query")
    if len(text) > MAX_LENGTH:
        raise QueryError(text, MAX_LENGTH, f"query longer than {MAX_LENGTH} characters ({len(text)})")
    _check_cost(text)
    try:
        return _grammar().parse_string(text, parse_all=True)[0]
    except pp.ParseBaseException as exc:
        raise _error(text, exc) from None
    except RecursionError:  # a long `not not not ...` chain: pyparsing recurses ~10 frames a level
        raise QueryError(text, 0, "query nested too deeply") from None


def _check_cost(text: str) -> None:
    """The limits (see the module docstring) checked on the tokens before parsing, so that
    a refusal costs one scan and points at the token over the limit. Parentheses deeper
    than MAX_DEPTH: pyparsing's recursion, then Python's own compiler, would fail on them
    with something other than a QueryError."""
    depth, joins, regexes = 0, 0, 0
    for m in _COST.finditer(text):
        token = m.group()
        if token == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise QueryError(text, m.start(), f"parentheses nested deeper than {MAX_DEPTH}")
        elif token == ")":
            depth -= 1
        elif token == "and" or token == "or":
            joins += 1
            if joins >= MAX_TERMS:
                raise QueryError(text, m.start(), f"more than {MAX_TERMS} predicates")
        elif token == "~=":
            regexes += 1
            if regexes > MAX_REGEXES:
                raise QueryError(text, m.start(), f"more than {MAX_REGEXES} regular expressions (~=)")


# -- compiling --------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return v.__class__ is float or v.__class__ is int


def _num(v: Any) -> float | int | None:
    """An attribute read as a number: the number it spells, else None."""
    if v.__class__ is str:
        return float(v) if _NUMERIC.fullmatch(v) else None
    return v if _is_number(v) else None


def _eq(a: Any, b: Any) -> bool:
    """Clojure's `=` for our values, except that 4 = 4.0."""
    if _is_number(a) and _is_number(b):
        return a == b
    return a.__class__ is b.__class__ and a == b


def _truthy(v: Any) -> bool:
    return v is not None and v is not False


_COMPARE = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


def _like(pattern: str) -> tuple[str, list[Any]]:
    """A test on `v` (known to be a str) for a LIKE pattern, in plain string operations:
    head and tail anchored with startswith/endswith, the middle parts found left to right
    (the leftmost match of each part is always a right choice when `%` is the only
    wildcard). Returns the code, with `{k}` for the k-th constant it needs."""
    parts = re.sub("%+", "%", pattern).split("%")
    if len(parts) == 1:
        return "v == {0}", parts
    head, mids, tail = parts[0], parts[1:-1], parts[-1]
    if not head and not tail and len(mids) <= 1:
        return ("{0} in v", mids) if mids else ("True", [])
    consts: list[Any] = []
    tests = []
    if head and tail or mids:
        tests.append(f"len(v) >= {sum(map(len, parts))}")
    if head:
        consts.append(head)
        tests.append(f"v.startswith({{{len(consts) - 1}}})")
    if tail:
        consts.append(tail)
        tests.append(f"v.endswith({{{len(consts) - 1}}})")
    end = f", len(v) - {len(tail)}" if tail else ""
    start = str(len(head))
    for mid in mids:  # the bounds keep each part clear of the head, the tail and the part before
        consts.append(mid)
        tests.append(f"(i := v.find({{{len(consts) - 1}}}, {start}{end})) >= 0")
        start = f"i + {len(mid)}"
    return " and ".join(tests), consts


def _like_regex(pattern: str) -> Any:
    """LIKE as one regex, for a literal on the left (decided once). RE2: Python's `re`
    takes O(n^k) on `.*a.*a…b` with k `%` (measured: 4 `%` over 800 characters, 7 s)."""
    return re2.compile(b"(?s)" + b".*".join(map(re2.escape, map(_utf8, pattern.split("%")))), _re2_options())


class _Compiler:
    def __init__(self) -> None:
        self.consts: list[Any] = []

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"_c{len(self.consts) - 1}"

    def value(self, node: Any) -> str:
        if isinstance(node, tuple):
            if node[0] == "field":
                return f"e.{node[1]}"  # a key of FIELDS' values, never user text
            return f"e.attributes.get({self.const(node[1])})"
        if node is None or node is True or node is False:
            return repr(node)
        return self.const(node)

    def pred(self, node: Any) -> str:
        if not isinstance(node, tuple):
            return repr(_truthy(node))
        kind = node[0]
        if kind in ("field", "attr"):
            return f"((v := {self.value(node)}) is not None and v is not False)"
        if kind == "not":
            return f"(not {self.pred(node[1])})"
        if kind in ("and", "or"):
            return "(" + f" {kind} ".join(self.pred(n) for n in node[1:]) + ")"
        if kind == "tagged":
            return f"({self.const(node[1])} in e.tags)"  # Event's containers are never None
        op, left, right = node
        if op == "=":
            return self.equal(left, right)
        if op == "!=":
            return f"(not {self.equal(left, right)})"
        if op in _ORDER:
            return self.order(op, left, right)
        return self.match(op, left, right)

    def equal(self, left: Any, right: Any) -> str:
        if not isinstance(left, tuple) and isinstance(right, tuple):
            left, right = right, left
        if not isinstance(left, tuple):
            return repr(_eq(left, right))
        x = self.value(left)
        if isinstance(right, tuple):
            return f"_eq({x}, {self.value(right)})"
        if right is None or right is True or right is False:
            return f"({x} is {right!r})"
        if isinstance(right, str):
            return f"({x} == {self.const(right)})"  # only a str equals a str
        if left[0] == "attr":
            return f"(_num({x}) == {self.const(right)})"
        return f"((v := {x}) == {self.const(right)} and v.__class__ is not bool)"

    def order(self, op: str, left: Any, right: int | float) -> str:
        if not isinstance(left, tuple):
            return repr(_is_number(left) and _COMPARE[op](left, right))
        c = self.const(right)
        if left[0] == "attr":
            return f"((v := _num({self.value(left)})) is not None and v {op} {c})"
        return f"(((v := {self.value(left)}).__class__ is float or v.__class__ is int) and v {op} {c})"

    def match(self, op: str, left: Any, pattern: str) -> str:
        if op == "~=":
            code, args = "{0}(_utf8(v)) is not None", [_regex(pattern).search]
        else:
            code, args = _like(pattern)  # string operations: linear in the value
        if not isinstance(left, tuple):  # a literal on the left: decide now
            find = _regex(pattern).search if op == "~=" else _like_regex(pattern).fullmatch
            return repr(isinstance(left, str) and find(_utf8(left)) is not None)
        test = code.format(*(self.const(a) for a in args))
        return f"((v := {self.value(left)}).__class__ is str and {test})"


_HELPERS = {"_eq": _eq, "_num": _num, "_utf8": _utf8}


class Query:
    """A compiled query: `q(event) -> bool`. `q.match` is the bare function (one call less
    in a hot loop); `q.filter(events)` the matching events, as a list."""

    __slots__ = ("text", "ast", "source", "match", "filter")

    def __init__(self, text: str) -> None:
        self.text = text
        self.ast = parse_query(text)
        comp = _Compiler()
        expr = comp.pred(self.ast)
        names = ", ".join(f"_c{i}" for i in range(len(comp.consts)))
        # The query's constants come in as the factory's arguments (closure cells), not as source.
        self.source = (f"def _factory({names}):\n"
                       f"    def match(e):\n        return {expr}\n"
                       f"    def filter(events):\n        return [e for e in events if {expr}]\n"
                       f"    return match, filter\n")
        namespace = dict(_HELPERS)
        try:
            code = compile(self.source, "<query>", "exec")
        except (SyntaxError, RecursionError, MemoryError):  # Python's nesting limits, e.g. 150 nots
            raise QueryError(text, 0, "query nested too deeply") from None
        exec(code, namespace)  # our code only: see the module docstring
        self.match, self.filter = namespace["_factory"](*comp.consts)

    def __call__(self, event: Event) -> bool:
        return self.match(event)

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


@functools.lru_cache(maxsize=512)
def compile_query(text: str) -> Query:
    """The compiled query for `text`, cached (bounded LRU); raises QueryError."""
    return Query(text)


def match_all(query: Query | str, events: Iterable[Event]) -> list[Event]:
    """The events `query` matches, in order."""
    if isinstance(query, str):
        query = compile_query(query)
    return query.filter(events)

