"""The native parse core's batch API (`LineParser.parse_batch`, what `streams parse`
writes) against its per-line face and Python's line reader (`streams.inputs.iter_lines`):
the whole visible corpus, then generated hostile input (random bytes, invalid UTF-8, NUL,
CR, cut characters, over-long lines, a 16 MiB line, mutated corpus lines). Every non-blank
line gives one document, the same either way, and nothing is lost.

(Until the port was complete, the Python parser was the oracle here: 11,699 corpus lines
and the hostile batches gave identical documents, field for field, before it was deleted.)"""

from __future__ import annotations

import io
import random
from pathlib import Path

import orjson
import pytest
import yaml

from streams import SAMPLES_DIR
from streams.clock import ManualClock
from streams.inputs import decode_line, iter_blocks, iter_lines
from streams.parse.dispatch import LineParser

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = 1_795_000_000.0  # 2026-11-18


def corpus_lines() -> list[str]:
    lines = [yaml.safe_load(p.read_text(encoding="utf-8"))["line"]
             for p in sorted((SAMPLES_DIR / "cases").rglob("*.yaml"))]
    files = sorted((SAMPLES_DIR / "logs").iterdir()) + sorted(p for p in DATA.rglob("*") if p.is_file())
    for path in files:
        if path.suffix in (".mmdb", ".md", ".gz") or path.name.startswith(("LICENSE", "COPYING")):
            continue
        lines += [decode_line(raw)[0] for raw in path.read_bytes().split(b"\n")]
    return [x for x in lines if x and not x.isspace()]


def per_line(data: bytes) -> list[dict]:
    """The documents of `data` line by line: Python's reader, the per-line face."""
    parser = LineParser(clock=ManualClock(NOW))
    out = []
    for text, problems in iter_lines(io.BytesIO(data), max_line=parser.max_line):
        if not text or text.isspace():
            continue
        ev = parser.parse(text)
        ev.tags.extend(problems)
        out.append(orjson.loads(orjson.dumps(ev.to_doc())))
    return out


def batched(data: bytes) -> list[dict]:
    parser = LineParser(clock=ManualClock(NOW))
    out = b"".join(parser.parse_batch(b) for b in iter_blocks(io.BytesIO(data), max_line=parser.max_line))
    return [orjson.loads(x) for x in out.splitlines()]


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)  # a document per non-blank line: nothing lost, nothing added
    key = orjson.OPT_SORT_KEYS
    wrong = [(x, y) for x, y in zip(a, b, strict=True) if orjson.dumps(x, option=key) != orjson.dumps(y, option=key)]
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[0]}"


def test_corpus_in_batches_is_the_per_line_parse():
    lines = corpus_lines()
    assert len(lines) > 10_000
    data = "\n".join(lines).encode() + b"\n"
    got = batched(data)
    _same(per_line(data), got)
    assert all(d["event"]["original"] == line for d, line in zip(got, lines, strict=True))


def _hostile(seed: int) -> bytes:
    rnd = random.Random(seed)
    base = corpus_lines()
    out = []
    for _ in range(3000):
        line = rnd.choice(base).encode("utf-8", "surrogateescape")
        k = rnd.random()
        if k < 0.2:  # bytes flipped: invalid UTF-8, NUL, CR, quotes, backslashes inside
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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_bytes_in_batches_are_the_per_line_parse(seed):
    data = _hostile(seed)
    got = batched(data)
    _same(per_line(data), got)
    assert sum("_invalid_utf8" in d.get("tags", ()) for d in got) > 0


def test_a_16_mib_line_is_cut_and_the_next_line_kept():
    data = b"Nov 24 10:00:00 mx1 sshd[1]: " + "é".encode() * (8 << 20) + b"\nNov 24 10:00:01 mx1 sshd[2]: Connection closed by 192.0.2.1 port 22 [preauth]\n"
    got = batched(data)
    _same(per_line(data), got)
    assert len(got) == 2 and "_line_truncated" in got[0]["tags"]
    assert got[1]["source"]["ip"] == "192.0.2.1"


def test_batch_and_dict_faces_agree():
    data = _hostile(4)
    a = LineParser(clock=ManualClock(NOW)).parse_batch(data)
    b = LineParser(clock=ManualClock(NOW)).native.parse_docs(data)
    assert [orjson.loads(x) for x in a.splitlines()] == b


@pytest.mark.parametrize("line", [
    # a multi-byte character across an address's 7th byte (reverse DNS names, log content)
    "Mar  1 10:00:00 h sshd[10]: pam_unix(sshd:auth): authentication failure; logname= uid=0 "
    "euid=0 tty=ssh ruser= rhost=abcdefé.org  user=root",
    '{"rule":{"level":5},"data":{"srcip":"abcdefé"}}',
    "2024-03-01 10:00:00,000 fail2ban.filter  [812]: INFO    [sshd] Found abcdefé.org - 2024-03-01 10:00:00",
])
def test_odd_addresses_are_no_bug_and_leave_the_correlation_intact(line):
    p = LineParser(clock=ManualClock(NOW))
    p.parse("Mar  1 09:59:00 h sshd[11]: Connection from 192.0.2.9 port 5 on 192.0.2.2 port 22")
    doc = p.parse(line).to_doc()
    assert "_parser_error" not in doc.get("tags", ()) and "ip" not in doc.get("source", {})
    # was: a panic, then every later correlated line `_parser_error` (the tables lost)
    later = p.parse("Mar  1 10:00:01 h sshd[11]: Connection closed by 192.0.2.9 port 5 [preauth]").to_doc()
    assert later["event"]["outcome"] == "failure" and p.stats["parser_error"] == 0
    assert "sshd" in p.native.table_sizes()  # the tables are still there
