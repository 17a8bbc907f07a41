"""The native grok port (streams._native.Grok) against the Python one, its oracle: every
message the sample cases, sample logs and corpora give a product parser, and a near miss
of each (last character changed), get the same rule and the same fields (same keys,
nesting, values and types) from both."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import yaml

from streams import SAMPLES_DIR
from streams._native import Grok, GrokLimitError
from streams.parse.dispatch import LineParser

DATA = Path(__file__).resolve().parent.parent / "data"


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def corpus_lines() -> list[str]:
    """Every line of the sample cases, the sample logs and the text corpora under
    tests/data (JSON lines: their strings too; `key = value` lines: the value too)."""
    lines = [yaml.safe_load(p.read_text(encoding="utf-8"))["line"]
             for p in sorted((SAMPLES_DIR / "cases").rglob("*.yaml"))]
    files = sorted((SAMPLES_DIR / "logs").iterdir()) + sorted(p for p in DATA.rglob("*") if p.is_file())
    for path in files:
        if path.suffix in (".mmdb", ".md") or path.name.startswith(("LICENSE", "COPYING")):
            continue
        for raw in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            lines.append(raw)
            if raw.startswith("{"):
                try:
                    _strings(json.loads(raw), lines)
                except ValueError:
                    pass
            elif " = " in raw:
                lines.append(raw.partition(" = ")[2])
    return lines


class _Recorder:
    """Stands in for a parser's matcher: notes each message, then matches as before."""

    def __init__(self, name: str, matcher, seen: dict) -> None:
        self.name, self.matcher, self.seen = name, matcher, seen

    def match(self, text: str, doc: dict):
        self.seen.setdefault((self.name, text), None)
        return self.matcher.match(text, doc)

    def narrow(self, text: str):
        return self.matcher.narrow(text)


@cache
def setup():
    """(the Python LineParser, native matchers by parser name, [(parser, message)])."""
    lp = LineParser()
    grok = Grok({n: d.regex for n, d in lp.library.definitions.items()})
    native = {p.name: grok.compile_rules(p.name, [(r.name, f"%{{{r.name}}}", p.sets + r.sets) for r in p.rules])
              for p in lp.parsers}
    seen: dict = {}
    originals = {p.name: p.matcher for p in lp.parsers}
    for p in lp.parsers:
        p.matcher = _Recorder(p.name, p.matcher, seen)
    try:
        for line in corpus_lines():
            lp.parse(line)
    finally:
        for p in lp.parsers:
            p.matcher = originals[p.name]
    return lp, grok, native, list(seen)


def typed(value):
    """A value with its types spelled out (True == 1 and 1 == 1.0 in Python)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def near_miss(msg: str) -> str:
    return msg[:-1] + ("#" if msg[-1:] != "#" else "@")


_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def variants(msg: str) -> list[str]:
    """The message, its near miss, and shapes that try where PCRE2 and `re` could part:
    non-ASCII digits (`\\d` and int() are Unicode-aware in both), non-ASCII spaces (U+001C
    is `\\s` in Python, not in PCRE2), a combining mark at the end (`\\w` in PCRE2, not in
    Python), a lone surrogate (an undecodable byte, a JSON `\\udcff`) and the first half."""
    return [msg, near_miss(msg), msg.translate(_ARABIC_INDIC), msg.replace(" ", "\u2003", 1),
            msg.replace(" ", "\x1c", 1), msg + "\u0301", msg.replace(" ", " \udcff", 1), msg[: len(msg) // 2]]


def both(lp: LineParser, native: dict, name: str, msg: str):
    doc: dict = {}
    rule = lp.by_name[name].matcher.match(msg, doc)
    want = None if rule is None else (rule.name, typed(doc))
    got = native[name].match(msg)
    return want, None if got is None else (got[0], typed(got[1]))


def test_every_definition_and_rule_compiles():
    lp, grok, native, _ = setup()
    grok.validate()
    assert len(lp.library.definitions) >= 300
    assert sum(len(m.rules) for m in native.values()) == sum(len(p.rules) for p in lp.parsers)
    for p in lp.parsers:
        assert native[p.name].rules == [r.name for r in p.rules]


def test_same_rule_and_fields_as_python_on_the_corpus():
    lp, _, native, messages = setup()
    per_parser = {p.name: 0 for p in lp.parsers}
    surrogates, matched, diffs = 0, 0, []
    for name, msg in messages:
        for text in variants(msg):
            surrogates += any(0xD800 <= ord(c) < 0xE000 for c in text)
            want, got = both(lp, native, name, text)
            per_parser[name] += 1
            matched += want is not None
            if want != got:
                diffs.append((name, text, want, got))
    compared = sum(per_parser.values())
    print(f"\ncompared {compared} messages ({len(messages)} distinct (parser, message) pairs, each with "
          f"its near miss and 6 other variants; {matched} matched a rule; {surrogates} with a lone surrogate): {len(diffs)} differences")
    print("per parser:", per_parser)
    assert len(messages) > 1000
    assert matched > 1000
    assert not diffs, "\n".join(f"{n}: {t!r}\n  python {w}\n  native {g}" for n, t, w, g in diffs[:10])


def test_mutated_messages_same_as_python():
    """Corpus messages with 1 to 3 characters replaced, inserted or deleted (fixed seed)."""
    import random

    lp, _, native, messages = setup()
    rnd = random.Random(14)
    alphabet = " .:-_=[]()<>@/,;'\"0123456789abcXYZ\u00e9\u0663\u2003\u0301\x1c\t\n#"
    diffs, matched = [], 0
    for _ in range(20000):
        name, msg = rnd.choice(messages)
        t = list(msg)
        for _ in range(rnd.randint(1, 3)):
            op, i = rnd.random(), rnd.randrange(len(t) + 1)
            if op < 0.4 and i < len(t):
                t[i] = rnd.choice(alphabet)
            elif op < 0.7:
                t.insert(i, rnd.choice(alphabet))
            elif i < len(t):
                del t[i]
        want, got = both(lp, native, name, "".join(t))
        matched += want is not None
        if want != got:
            diffs.append((name, "".join(t), want, got))
    assert matched > 5000
    assert not diffs, diffs[:3]


def test_long_texts_same_as_python_and_within_the_limits():
    """Texts near the 64 KiB line limit (a long tail, a message repeated, long gaps): the
    default limits are not reached, and the results agree."""
    lp, _, native, messages = setup()
    compared = 0
    for name, msg in messages[::20]:
        for text in (msg + " x" * 30000, msg * 200, msg.replace(" ", " " * 2000)):
            want, got = both(lp, native, name, text)  # GrokLimitError would fail the test
            assert want == got, (name, text[:200])
            compared += 1
    assert compared > 500


def test_every_rule_is_jit_compiled():
    _, _, native, _ = setup()
    assert all(m.jit for m in native.values())


@pytest.mark.parametrize("cls", [r"\w", r"\W", r"\s", r"\S", r"\d", r"\D", r"\b.", r".\B.", "."])
def test_classes_as_python(cls):
    """Every character of the Basic Multilingual Plane that Python 3.11's Unicode knows is
    in a class for PCRE2 as for `re` (PCRE2's newer Unicode tables know more letters)."""
    import re
    import unicodedata

    py = re.compile(cls, re.DOTALL)
    m = Grok({"C": cls}).compile_rules("c", [("c", "%{C}", ())])
    pad = "ab" if cls == r".\B." else ""
    diff = [hex(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"
            and (py.fullmatch(pad[:1] + chr(c)) is None) != (m.match(pad[:1] + chr(c)) is None)]
    assert not diff


def test_limit_is_an_error_not_a_non_match():
    grok = Grok({"BAD": "(?:a+)+b", "INT": r"\d+"}, match_limit=10_000)
    m = grok.compile_rules("t", [("bad", "%{BAD}", ()), ("int", "%{INT:n:int}", ((("x",), "y", True),))])
    assert m.match("aab") == ("bad", {})
    assert m.match("12") == ("int", {"n": 12, "x": {"y": True}})
    top = grok.compile_rules("t", [("int", "%{INT:n:int}", (((), "tags", ("a", "b")), (("x", "y"), "z", "c")))])
    assert top.match("7") == ("int", {"n": 7, "tags": ("a", "b"), "x": {"y": {"z": "c"}}})
    assert m.match("zz") is None
    with pytest.raises(GrokLimitError, match="match limit"):
        m.match("a" * 40 + "!b")


def test_errors_name_the_rule():
    grok = Grok({"OK": "a", "BAD": "(b", "F": r"%{OK:a} %{OK:a.b}"})
    with pytest.raises(ValueError, match="rule bad: does not compile"):
        grok.compile_rules("t", [("ok", "%{OK}", ()), ("bad", "%{BAD}", ())])
    with pytest.raises(ValueError, match="unknown pattern %{NOPE}"):
        grok.compile_rules("t", [("r", "%{NOPE}", ())])
    with pytest.raises(ValueError, match="a.b is both a value and an object"):
        grok.compile_rules("t", [("f", "%{F}", ())])
    with pytest.raises(ValueError, match="bad field name"):
        grok.compile_rules("t", [("ok", "%{OK}", ((("a", ""), "b", 1),))])
    with pytest.raises(ValueError, match="BAD"):
        grok.validate()
