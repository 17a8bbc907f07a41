"""The native parse core against its oracle, the Python parser (tests/unit/native_oracle.py):
the whole visible corpus, then generated hostile input through the batch API (random
bytes, invalid UTF-8, NUL, CR, over-long lines, mutated corpus lines)."""

from __future__ import annotations

import io
import random

import orjson
import pytest

from streams.clock import ManualClock
from streams.inputs import iter_lines
from streams.parse.dispatch import LineParser
from streams.parse.native import native_parser

from .native_oracle import NOW, _delta, compare, corpus


def _report(diffs) -> str:
    lines = []
    for name, line, want, got, rule in diffs[:5]:
        lines.append(f"{name} (rule {rule}): {line[:200]!r}")
        lines += [f"    {d}" for d in _delta(want, got)[:8]]
    return "\n".join(lines)


def test_corpus_documents_are_the_python_parsers():
    diffs, n = compare(corpus())
    assert n > 10_000
    assert not diffs, f"{len(diffs)} of {n} lines differ:\n{_report(diffs)}"


def _python_parse(data: bytes) -> list[dict]:
    """What `streams parse` writes today for these bytes (commands/parse.py's loop)."""
    parser = LineParser(clock=ManualClock(NOW))
    out = []
    for text, problems in iter_lines(io.BytesIO(data), max_line=parser.max_line):
        if not text or text.isspace():
            continue
        ev = parser.parse(text)
        ev.tags.extend(problems)
        out.append(orjson.loads(orjson.dumps(ev.to_doc())))
    return out


def _hostile(seed: int) -> bytes:
    rnd = random.Random(seed)
    base = [line for _, lines in corpus() for line in lines]
    out = []
    for _ in range(3000):
        line = rnd.choice(base).encode("utf-8", "surrogateescape")
        k = rnd.random()
        if k < 0.2:  # bytes flipped: invalid UTF-8, NUL, CR inside
            b = bytearray(line)
            for _ in range(rnd.randint(1, 4)):
                if b:
                    b[rnd.randrange(len(b))] = rnd.choice([0, 0x0D, 0xFF, 0xC3, 0x80, 0x09, 0x22, 0x5C])
            line = bytes(b)
        elif k < 0.3:  # cut anywhere (a UTF-8 character in two)
            line = line[: rnd.randrange(len(line) + 1)]
        elif k < 0.35:
            line = bytes(rnd.randrange(256) for _ in range(rnd.randrange(200))).replace(b"\n", b" ")
        elif k < 0.37:
            line = line + b"\r"
        out.append(line)
    out.insert(rnd.randrange(len(out)), b"x" * (70 * 1024) + "é".encode() * 10)  # past max_line
    return b"\n".join(out) + b"\n"


@pytest.mark.parametrize("seed", [1, 2])
def test_batch_api_on_hostile_bytes_matches_python(seed):
    data = _hostile(seed)
    want = _python_parse(data)
    nat = native_parser(clock=ManualClock(NOW))
    got = [orjson.loads(x) for x in nat.parse_batch(data).splitlines()]
    assert len(got) == len(want)  # a document per non-blank line: nothing lost
    wrong = [(w, g) for w, g in zip(want, got, strict=True)
             if orjson.dumps(w, option=orjson.OPT_SORT_KEYS) != orjson.dumps(g, option=orjson.OPT_SORT_KEYS)]
    assert not wrong, "\n".join(str(_delta(w, g)[:6]) for w, g in wrong[:5])


def test_batch_and_dict_faces_agree():
    data = _hostile(3)
    a = native_parser(clock=ManualClock(NOW)).parse_batch(data)
    b = native_parser(clock=ManualClock(NOW)).parse_docs(data)
    assert [orjson.loads(x) for x in a.splitlines()] == b
