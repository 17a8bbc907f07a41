"""Grok: the pattern files' loader (`GrokLibrary`: definitions with their `file:line`,
PatternError) and the native compiler and matcher they feed (`streams._native.Grok`,
`compile_rules` -> `.match(text)` -> (rule, fields)); the errors of pattern and rule files
as the parser built from a directory (`native_parser`) reports them."""

import re

import pytest

from streams._native import Grok
from streams.parse.grok import GrokLibrary, PatternError
from streams.parse.native import native_parser


@pytest.fixture
def lib(tmp_path):
    from streams import PATTERNS_DIR
    lib = GrokLibrary()
    lib.load_file(PATTERNS_DIR / "base.grok")
    return lib


def grok(lib: GrokLibrary) -> Grok:
    return Grok({n: d.regex for n, d in lib.definitions.items()})


class Compiled:
    """One expression compiled as a one-rule alternation: `match(text)` -> its fields or None."""

    def __init__(self, lib: GrokLibrary, expr: str) -> None:
        self.matcher = grok(lib).compile_rules("test", [("rule", expr, [])])

    def match(self, text: str):
        hit = self.matcher.match(text)
        return None if hit is None else hit[1]


def alternation(lib, items):
    """(rule name, expression, origin) in priority order -> `match(text)` -> rule name or None
    and its fields."""
    matcher = grok(lib).compile_rules("test", [(name, expr, []) for name, expr, _origin in items])

    def match(text):
        hit = matcher.match(text)
        return (None, {}) if hit is None else hit

    return match


def pattern_dir_error(tmp_path, files: dict[str, str]) -> str:
    """The PatternError message of a parser built from a directory holding `files`."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PatternError) as e:
        native_parser([tmp_path])
    return str(e.value)


def test_field_paths(lib, tmp_path):
    assert Compiled(lib, "%{WORD:source.ip}").match("x") == {"source": {"ip": "x"}}
    assert Compiled(lib, "%{WORD:[source][ip]}").match("x") == {"source": {"ip": "x"}}
    assert Compiled(lib, "%{WORD:@timestamp}").match("x") == {"@timestamp": "x"}
    assert "a..b" in pattern_dir_error(tmp_path, {"mine.grok": "BADPATH %{WORD:a..b}\n"})


def test_captures_types_and_nesting(lib):
    g = Compiled(lib, r"%{IP:[source][ip]} port %{POSINT:source.port:int} took %{NUMBER:t:float}s %{WORD}")
    assert g.match("192.0.2.1 port 22 took 0.5s ok") == {"source": {"ip": "192.0.2.1", "port": 22}, "t": 0.5}


def test_anchored(lib):
    g = Compiled(lib, r"%{WORD:w}")
    assert g.match("hello") == {"w": "hello"}
    assert g.match("hello world") is None  # no partial match: patterns are anchored


def test_oniguruma_named_group(lib):
    g = Compiled(lib, r"(?<user.name>[a-z]+)@%{HOSTNAME:domain}")
    assert g.match("bob@example.org") == {"user": {"name": "bob"}, "domain": "example.org"}


@pytest.mark.parametrize("addr", ["1.2.3.4", "255.255.255.255", "::1", "2001:db8::8:800:200c:417a",
                                  "fe80::1%eth0", "::ffff:192.0.2.1", "aaaa:bbbb:cccc:1234::1:1"])
def test_ip(lib, addr):
    assert Compiled(lib, "%{IP:a}").match(addr) == {"a": addr}


@pytest.mark.parametrize("bad", ["256.1.1.1", "1.2.3", "12:34:56", "host"])
def test_not_ip(lib, bad):
    assert Compiled(lib, "%{IP:a}").match(bad) is None


def test_standard_names(lib):
    for name, text in [("SYSLOGTIMESTAMP", "Feb  5 14:34:10"), ("TIMESTAMP_ISO8601", "2024-08-26T01:33:38.572449+00:00"),
                       ("EMAILADDRESS", "a.b+c@mail.example.org"), ("QS", '"a \\" b"'), ("HOSTNAME", "mx1.example.org"),
                       ("LOGLEVEL", "WARNING"), ("UUID", "123e4567-e89b-12d3-a456-426614174000")]:
        assert Compiled(lib, f"%{{{name}:x}}").match(text) == {"x": text}, name


# The message names the file and line of the definition, then (native) the definition's
# name and the problem: `mine.grok:3: BAD: rule BAD: unknown pattern %{NOPE}`.
@pytest.mark.parametrize("text, name, error", [
    ("# comment\nGOOD %{WORD}\nBAD %{NOPE:x}\n", "BAD", r"unknown pattern %\{NOPE\}"),
    ("BROKEN foo(bar\n", "BROKEN", r"does not compile"),
    ("CLASH %{INT:a} %{INT:a.b}\n", "CLASH", r"field a\.b is both a value and an object"),
])
def test_pattern_errors_name_file_and_line(tmp_path, text, name, error):
    line = {"BAD": 3}.get(name, 1)
    msg = pattern_dir_error(tmp_path, {"mine.grok": text})
    assert msg.startswith(f"{tmp_path / 'mine.grok'}:{line}: "), msg
    assert name in msg and re.search(error, msg), msg


def test_bad_line_and_recursion(tmp_path, lib):
    f = tmp_path / "x.grok"
    f.write_text("lowercase-name! x\n")
    with pytest.raises(PatternError, match=r"x\.grok:1"):
        lib.load_file(f)
    (tmp_path / "x.grok").write_text("LOOP %{LOOP2}\nLOOP2 %{LOOP}\n")
    with pytest.raises(PatternError, match="recursive"):
        native_parser([tmp_path])
    lib.add("LOOP", "%{LOOP2}", "t:1")
    lib.add("LOOP2", "%{LOOP}", "t:2")
    with pytest.raises(ValueError, match="recursive"):
        grok(lib).expand("%{LOOP}")


def test_alternation_reports_which_branch(lib):
    alt = alternation(lib, [("first", "a %{INT:n:int}", "o"), ("second", "%{WORD:w} %{INT:n:int}", "o")])
    assert alt("a 5") == ("first", {"n": 5})
    assert alt("b 6") == ("second", {"w": "b", "n": 6})
    assert alt("zzz")[0] is None


def test_alternation_keeps_priority_order(lib):
    items = [("conn", "connect from %{WORD:h}", "o"), ("any", "%{WORD:w} from %{WORD:h}", "o"),
             ("disc", "disconnect from %{WORD:h}", "o"), ("fail", "Failed %{WORD:w}", "o")]
    alt = alternation(lib, items)
    full = alternation(lib, items[1:2])  # the wildcard alone
    for text, want in [("connect from a", "conn"), ("disconnect from b", "any"), ("Failed x", "fail"),
                       ("Failed", None), ("zzz from c", "any"), ("zz", None), ("", None)]:
        rule, doc = alt(text)
        assert rule == want, text
        if want == "any":
            assert doc == {"w": text.split()[0], "h": text.split()[-1]}
    assert full("connect from a")[0] == "any"


def test_alternation_without_wildcards_skips_other_openings(lib):
    alt = alternation(lib, [("f", "Failed %{WORD:w}", "o"), ("a", "Accepted %{WORD:w}", "o")])
    assert alt("Accepted k")[0] == "a"
    assert alt("Rejected k")[0] is None


def test_custom_pattern_dir_overrides(tmp_path):
    from streams.parse.dispatch import LineParser
    (tmp_path / "mine.grok").write_text("MYAPP_LINE user %{USERNAME:user.name} did %{WORD:event.action}\n")
    (tmp_path / "mine.yaml").write_text(
        "parsers:\n  - name: myapp\n    dataset: myapp.log\n    programs: [myapp]\n"
        "    rules:\n      - pattern: MYAPP_LINE\n        set: {event.kind: event}\n")
    p = LineParser([tmp_path], year=2024)
    doc = p.parse("Jan  2 03:04:05 h myapp[1]: user bob did login").to_doc()
    assert doc["user"]["name"] == "bob" and doc["event"]["action"] == "login"
    assert doc["event"]["dataset"] == "myapp.log" and doc["event"]["kind"] == "event"


def test_unreadable_pattern_file_names_it(tmp_path, lib):
    f = tmp_path / "latin1.grok"
    f.write_bytes(b"CAFE caf\xe9\n")  # not UTF-8: was a UnicodeDecodeError traceback
    with pytest.raises(PatternError, match=r"latin1\.grok: cannot read"):
        lib.load_file(f)


def test_missing_pattern_directory_is_an_error(tmp_path, lib):
    with pytest.raises(PatternError, match="nope: not a directory"):
        lib.load_dir(tmp_path / "nope")  # a mistyped --patterns-dir was silently ignored


@pytest.mark.parametrize("text,where", [
    ("parsers: 5\n", r"mine\.yaml: parsers must be a list"),
    ("- a\n", r"mine\.yaml: the file must be a mapping"),
    ("parsers: [5]\n", r"mine\.yaml: parsers\[0\]: a parser must be a mapping"),
    ("parsers:\n  - {name: a, dataset: b, rules: [NUM]}\n", r"mine\.yaml: parsers\[0\]\.rules\[0\]: a rule must be a mapping"),
    ("parsers:\n  - {name: a, dataset: b, programs: sshd, rules: []}\n", r"mine\.yaml: parsers\[0\]: programs must be a list"),
    ("parsers:\n  - {name: a, dataset: b, rules: [{pattern: NUM, set: [1]}]}\n", r"mine\.yaml: parsers\[0\]\.rules\[0\]: set must be a mapping"),
    # was `rule names unknown pattern`; the core says `a rule names a pattern`
    ("parsers:\n  - {name: a, dataset: b, rules: [{pattern: [NUM]}]}\n", r"mine\.yaml: parsers\[0\]\.rules\[0\]: .*names .*pattern"),
])
def test_rule_file_of_the_wrong_shape_names_where(tmp_path, text, where):
    (tmp_path / "mine.grok").write_text("NUM \\d+\n")
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(PatternError, match=where):
        native_parser([tmp_path])


def test_rule_set_clashing_with_a_capture_names_the_rule(tmp_path):
    # was: "pairs.grok:7: field x.y is both ..." — the grok file, where there is no x.y
    msg = pattern_dir_error(tmp_path, {
        "pairs.grok": "# pairs\n" * 6 + "PAIR %{NUM:x}\nNUM \\d+\n",
        "mine.yaml": "parsers:\n  - name: a\n    dataset: b\n    rules:\n      - {pattern: PAIR, set: {x.y: 1}}\n"})
    assert msg.startswith(f"{tmp_path / 'mine.yaml'}: parsers[0]"), msg
    assert "PAIR" in msg and "x.y" in msg
    assert "pairs.grok:7" in msg, msg  # the pattern's own origin


def test_an_old_built_in_hook_name_says_it_became_ops(tmp_path):
    from streams.parse.native import native_parser
    (tmp_path / "mine.yaml").write_text(
        "parsers:\n  - name: postfix-smtpd\n    dataset: postfix.log\n    programs: [postfix/smtpd]\n"
        "    hooks: [postfix]\n    rules: []\n")
    with pytest.raises(PatternError, match=r"mine\.yaml: parsers\[0\]: hook 'postfix': the built-in hooks are declarative"):
        native_parser([tmp_path])
