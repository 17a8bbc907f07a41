import pytest

from streams.parse.grok import GrokLibrary, KeyedAlternation, PatternError, field_path, openings


@pytest.fixture
def lib(tmp_path):
    from streams import PATTERNS_DIR
    lib = GrokLibrary()
    lib.load_file(PATTERNS_DIR / "base.grok")
    return lib


def test_field_paths():
    assert field_path("source.ip") == ("source", "ip")
    assert field_path("[source][ip]") == ("source", "ip")
    assert field_path("@timestamp") == ("@timestamp",)
    with pytest.raises(PatternError):
        field_path("a..b")


def test_captures_types_and_nesting(lib):
    g = lib.compile(r"%{IP:[source][ip]} port %{POSINT:source.port:int} took %{NUMBER:t:float}s %{WORD}")
    assert g.match("192.0.2.1 port 22 took 0.5s ok") == {"source": {"ip": "192.0.2.1", "port": 22}, "t": 0.5}


def test_anchored(lib):
    g = lib.compile(r"%{WORD:w}")
    assert g.match("hello") == {"w": "hello"}
    assert g.match("hello world") is None  # no partial match: patterns are anchored


def test_oniguruma_named_group(lib):
    g = lib.compile(r"(?<user.name>[a-z]+)@%{HOSTNAME:domain}")
    assert g.match("bob@example.org") == {"user": {"name": "bob"}, "domain": "example.org"}


@pytest.mark.parametrize("addr", ["1.2.3.4", "255.255.255.255", "::1", "2001:db8::8:800:200c:417a",
                                  "fe80::1%eth0", "::ffff:192.0.2.1", "aaaa:bbbb:cccc:1234::1:1"])
def test_ip(lib, addr):
    assert lib.compile("%{IP:a}").match(addr) == {"a": addr}


@pytest.mark.parametrize("bad", ["256.1.1.1", "1.2.3", "12:34:56", "host"])
def test_not_ip(lib, bad):
    assert lib.compile("%{IP:a}").match(bad) is None


def test_standard_names(lib):
    for name, text in [("SYSLOGTIMESTAMP", "Feb  5 14:34:10"), ("TIMESTAMP_ISO8601", "2024-08-26T01:33:38.572449+00:00"),
                       ("EMAILADDRESS", "a.b+c@mail.example.org"), ("QS", '"a \\" b"'), ("HOSTNAME", "mx1.example.org"),
                       ("LOGLEVEL", "WARNING"), ("UUID", "123e4567-e89b-12d3-a456-426614174000")]:
        assert lib.compile(f"%{{{name}:x}}").match(text) == {"x": text}, name


@pytest.mark.parametrize("text, name, error", [
    ("# comment\nGOOD %{WORD}\nBAD %{NOPE:x}\n", "BAD", r"mine\.grok:3: unknown pattern %\{NOPE\}"),
    ("BROKEN foo(bar\n", "BROKEN", r"mine\.grok:1: does not compile"),
    ("CLASH %{INT:a} %{INT:a.b}\n", "CLASH", r"mine\.grok:1: field a\.b is both a value and an object"),
])
def test_pattern_errors_name_file_and_line(tmp_path, lib, text, name, error):
    f = tmp_path / "mine.grok"
    f.write_text(text)
    lib.load_file(f)
    with pytest.raises(PatternError, match=error):
        lib.validate([name])


def test_bad_line_and_recursion(tmp_path, lib):
    f = tmp_path / "x.grok"
    f.write_text("lowercase-name! x\n")
    with pytest.raises(PatternError, match=r"x\.grok:1"):
        lib.load_file(f)
    lib.add("LOOP", "%{LOOP2}", "t:1")
    lib.add("LOOP2", "%{LOOP}", "t:2")
    with pytest.raises(PatternError, match="recursive"):
        lib.compile("%{LOOP}")


def test_alternation_reports_which_branch(lib):
    alt = lib.compile_alternation([("first", "a %{INT:n:int}", "o"), ("second", "%{WORD:w} %{INT:n:int}", "o")])
    doc = {}
    assert alt.match("a 5", doc) == "first" and doc == {"n": 5}
    doc = {}
    assert alt.match("b 6", doc) == "second" and doc == {"w": "b", "n": 6}
    assert alt.match("zzz", {}) is None


@pytest.mark.parametrize("regex,expected", [
    ("Failed (?P<m>\\w+)", {"Fail"}),
    ("(?:error: )?Accepted x", {"erro", "Acce"}),
    ("[Ii]nvalid user", {"Inva", "inva"}),
    ("(?:conn|Disc)ect", {"conn", "Disc"}),
    ("(?!x)(?P<a>ROOT) LOGIN", {"ROOT"}),
    ("\\w+ from", None),          # a class: any opening
    ("ab", None),                  # a match can be shorter than the key
    ("(?i:fail)ed", None),         # case-insensitive
    ("(?:ab)*cdef", None),         # a repeat
])
def test_openings(regex, expected):
    assert openings(regex) == (frozenset(expected) if expected is not None else None)


def test_keyed_alternation_keeps_priority_order(lib):
    items = [("conn", "connect from %{WORD:h}", "o"), ("any", "%{WORD:w} from %{WORD:h}", "o"),
             ("disc", "disconnect from %{WORD:h}", "o"), ("fail", "Failed %{WORD:w}", "o")]
    alt = lib.compile_alternation(items)
    assert isinstance(alt, KeyedAlternation)
    full = lib.compile_alternation(items[1:2])  # the wildcard alone
    for text, want in [("connect from a", "conn"), ("disconnect from b", "any"), ("Failed x", "fail"),
                       ("Failed", None), ("zzz from c", "any"), ("zz", None), ("", None)]:
        doc = {}
        assert alt.match(text, doc) == want, text
        if want == "any":
            assert doc == {"w": text.split()[0], "h": text.split()[-1]}
    assert full.match("connect from a", {}) == "any"


def test_keyed_alternation_without_wildcards_skips_other_openings(lib):
    alt = lib.compile_alternation([("f", "Failed %{WORD:w}", "o"), ("a", "Accepted %{WORD:w}", "o")])
    assert alt.match("Accepted k", {}) == "a"
    assert alt.match("Rejected k", {}) is None


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


def _rule_file(tmp_path, text):
    from streams.parse.rules import load_rule_file
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    lib = GrokLibrary()
    lib.add("NUM", r"\d+", "t:1")
    return lambda: load_rule_file(f, lib)


@pytest.mark.parametrize("text,where", [
    ("parsers: 5\n", r"mine\.yaml: parsers must be a list"),
    ("- a\n", r"mine\.yaml: the file must be a mapping"),
    ("parsers: [5]\n", r"mine\.yaml: parsers\[0\]: a parser must be a mapping"),
    ("parsers:\n  - {name: a, dataset: b, rules: [NUM]}\n", r"parsers\[0\]\.rules\[0\]: a rule must be a mapping"),
    ("parsers:\n  - {name: a, dataset: b, programs: sshd, rules: []}\n", r"parsers\[0\]: programs must be a list"),
    ("parsers:\n  - {name: a, dataset: b, rules: [{pattern: NUM, set: [1]}]}\n", r"rules\[0\]: set must be a mapping"),
    ("parsers:\n  - {name: a, dataset: b, rules: [{pattern: [NUM]}]}\n", r"rules\[0\]: rule names unknown pattern"),
])
def test_rule_file_of_the_wrong_shape_names_where(tmp_path, text, where):
    load = _rule_file(tmp_path, text)
    with pytest.raises(PatternError, match=where):
        load()


def test_rule_set_clashing_with_a_capture_names_the_rule(tmp_path):
    (tmp_path / "mine.yaml").write_text("parsers:\n  - name: a\n    dataset: b\n    rules:\n"
                                        "      - {pattern: PAIR, set: {x.y: 1}}\n")
    from streams.parse.rules import load_rule_file
    lib = GrokLibrary()
    lib.add("PAIR", r"%{NUM:x}", "pairs.grok:7")
    lib.add("NUM", r"\d+", "t:1")
    # was: "pairs.grok:7: field x.y is both ..." — the grok file, where there is no x.y
    with pytest.raises(PatternError, match=r"mine\.yaml: parsers\[0\]\.rules\[0\] \(pattern PAIR at pairs\.grok:7\)"):
        load_rule_file(tmp_path / "mine.yaml", lib)
