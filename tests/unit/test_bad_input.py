"""Bad input: every non-empty line still becomes exactly one event; problems are tagged."""

import json
import os

import pytest

from streams.cli import main

BAD_LINES = [
    b"Jan  1 00:00:00 h sshd[1]: caf\xe9 invalid utf-8 \xff\xfe",
    b"Jan  1 00:00:01 h kernel: NUL\x00in the middle",
    b"Jan  1 00:00:02 h app: " + b"A" * (1024 * 1024),
    b"",
    b"   ",
    bytes(range(1, 10)) + bytes(range(11, 256)),  # binary garbage without LF
    b'{"timestamp":"2022-05-11T12:29:19.905+0000","rule":{"level":10,"id":"57',  # truncated alert
    b"{not json at all",
    b"\r",
    b"trailing line without LF",
]


def write(tmp_path, lines):
    p = tmp_path / "bad.log"
    p.write_bytes(b"\n".join(lines))
    return p


def test_parse_accounts_for_every_line(tmp_path, capsysbinary):
    p = write(tmp_path, BAD_LINES)
    assert main(["parse", "--year", "2024", "--max-line", "4096", str(p)]) == 0
    out, err = capsysbinary.readouterr()
    docs = [json.loads(x) for x in out.splitlines()]
    nonempty = [x for x in BAD_LINES if x.strip()]
    assert len(docs) == len(nonempty)
    tags = [set(d.get("tags", [])) for d in docs]
    assert "_invalid_utf8" in tags[0] and "\\xe9" in docs[0]["event"]["original"]
    assert "_nul_bytes" in tags[1] and "\x00" in docs[1]["event"]["original"]
    assert "_line_truncated" in tags[2] and len(docs[2]["message"]) < 4096
    assert "_jsonparsefailure" in tags[4] and docs[4]["event"]["dataset"] == "wazuh.alerts"
    assert "_jsonparsefailure" in tags[5]
    assert docs[-1]["message"] == "trailing line without LF"
    assert b"truncated=1" in err and b"invalid_utf8=2" in err  # the garbage line too


def test_replay_counts_problems(tmp_path):
    p = write(tmp_path, BAD_LINES)
    out = tmp_path / "out"
    assert main(["replay", "--no-geoip", "--year", "2024", "--max-line", "4096", "-q", "-o", str(out), str(p)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == len([x for x in BAD_LINES if x.strip()])
    assert summary["problems"]["_invalid_utf8"] == 2 and summary["problems"]["_line_truncated"] == 1
    written = sum(1 for f in (out / "elasticsearch").iterdir() for _ in f.open("rb")) // 2
    assert written == summary["events"]


def test_json_nested_past_what_outputs_write_is_kept_as_text(tmp_path):
    # was: `streams replay` died with a traceback (orjson writes 254 levels, reads 1,024)
    deep = ['{"x":' + "[" * 300 + "]" * 300 + "}", '{"a":' * 300 + "1" + "}" * 300,
            '{"rule":' * 250 + '{"level": 3}' + "}" * 250]
    ok = '{"rule": {"level": 3, "id": "5710"}, "agent": {"name": "web1"}, "full_log": "x"}'
    p = tmp_path / "deep.log"
    p.write_text("\n".join([*deep, ok]) + "\n")
    out = tmp_path / "out"
    assert main(["replay", "--no-geoip", "-q", "-o", str(out), str(p)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == 4 and summary["problems"]["_json_too_deep"] == 3
    docs = [json.loads(x) for f in sorted((out / "elasticsearch").iterdir())
            for x in f.read_bytes().splitlines()[1::2]]
    deep_docs = [d for d in docs if "_json_too_deep" in d.get("tags", ())]
    assert sorted(d["message"] for d in deep_docs) == sorted(deep)
    assert all("_jsonparsefailure" in d["tags"] and "json" not in d for d in deep_docs)
    assert [d["rule"]["id"] for d in docs if "rule" in d] == ["5710"]


def test_missing_file_exit_code(tmp_path, capsysbinary):
    good = write(tmp_path, [b"Jan  1 00:00:00 h p: x"])
    assert main(["parse", str(tmp_path / "nope.log"), str(good)]) == 1
    out, _ = capsysbinary.readouterr()
    assert len(out.splitlines()) == 1


def test_bad_custom_pattern_is_a_config_error(tmp_path, capsysbinary):
    (tmp_path / "x.grok").write_text("X %{NOPE}\n")
    assert main(["parse", "--patterns-dir", str(tmp_path), os.devnull]) == 2
    _, err = capsysbinary.readouterr()
    assert b"x.grok:1" in err and b"NOPE" in err


def test_unknown_timezone_is_a_config_error(capsysbinary):
    assert main(["parse", "--timezone", "Nope/Zone", os.devnull]) == 2
    _, err = capsysbinary.readouterr()
    assert b"unknown time zone" in err


def test_damaged_gz_is_unreadable_and_the_next_file_is_parsed(tmp_path, capsysbinary):
    import gzip
    good = write(tmp_path, [b"Jan  1 00:00:00 h p: x", b"Jan  1 00:00:01 h p: y"])
    whole = gzip.compress(b"Jan  1 00:00:00 h p: z\n" * 2000)
    (tmp_path / "cut.log.gz").write_bytes(whole[: len(whole) // 2])  # truncated archive
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all\n")
    rc = main(["parse", str(tmp_path / "cut.log.gz"), str(tmp_path / "plain.gz"), str(good)])
    out, err = capsysbinary.readouterr()
    assert rc == 1
    assert b"Traceback" not in err and b"cut.log.gz" in err and b"plain.gz" in err
    assert [json.loads(x)["message"] for x in out.splitlines()[-2:]] == ["x", "y"]


@pytest.mark.parametrize("option", [["--max-line", "0"], ["--max-line", "-5"], ["--year", "0"], ["--year", "12345"]])
def test_out_of_range_options_are_usage_errors(option, capsys):
    # `--max-line -5` used to cut every line 5 characters short of its end (and 0 emptied
    # them), `--year 0` left every year-less line without its syslog header, all with exit 0
    with pytest.raises(SystemExit) as e:
        main(["parse", *option, os.devnull])
    assert e.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_utf8_byte_order_mark_does_not_hide_the_first_header(tmp_path, capsysbinary):
    p = tmp_path / "bom.log"
    p.write_bytes(b"\xef\xbb\xbfFeb  5 10:00:00 host sshd[1]: hi\nFeb  5 10:00:01 host sshd[1]: hi\n")
    assert main(["parse", "--year", "2024", str(p)]) == 0
    docs = [json.loads(x) for x in capsysbinary.readouterr()[0].splitlines()]
    assert len(docs) == 2
    # was: the first line unrecognised (_grokparsefailure, no host, no time)
    assert docs[0]["@timestamp"] == "2024-02-05T10:00:00.000Z" and docs[0]["host"]["hostname"] == "host"


def test_a_file_without_line_ends_is_read_in_bounded_memory(monkeypatch):
    import io

    from streams import inputs
    monkeypatch.setattr(inputs, "CHUNK", 1000)
    data = b"first\n" + b"\x00" * 10_000 + b"tail of it\nlast\n"
    got = list(inputs.iter_lines(io.BytesIO(data), max_line=700))
    assert [t[:5] for t, _ in got] == ["first", "\x00" * 5, "last"]
    assert len(got[1][0]) == 700 and inputs.LINE_TRUNCATED in got[1][1]
    # and without a final line end
    got = list(inputs.iter_lines(io.BytesIO(b"x" * 10_000), max_line=700))
    assert len(got) == 1 and got[0] == ("x" * 700, (inputs.LINE_TRUNCATED,))


def test_binary_files_in_a_folder_are_left_out_and_listed(tmp_path):
    from streams.logfiles import expand_paths
    (tmp_path / "auth.log").write_text("Nov 24 00:05:02 mx1 sshd[4007]: hello\n")
    (tmp_path / "wtmp").write_bytes(b"\x07\x00\x00\x00" * 100)
    (tmp_path / "messages").write_bytes(b"binary\x00junk")
    (tmp_path / "syslog").write_text("Nov 24 00:05:02 mx1 cron[1]: hi\n")
    skipped: list = []
    assert expand_paths([str(tmp_path)], skipped) == [str(tmp_path / "auth.log"), str(tmp_path / "syslog")]
    assert sorted(s.path for s in skipped) == [str(tmp_path / "messages"), str(tmp_path / "wtmp")]
    assert expand_paths([str(tmp_path / "wtmp")]) == [str(tmp_path / "wtmp")]   # named on its own: read


def test_max_line_bounds_what_a_line_becomes_original_included(tmp_path, capsysbinary):
    # a 3 MB line came out with its 3 MB in event.original (and 16 MiB of a 50 MB one, whatever
    # --max-line said): the Elasticsearch record of such a line went over what the server takes
    huge = b"Nov 24 00:05:02 mx1 sshd[4007]: " + "é".encode() * 1_500_000
    p = tmp_path / "huge.log"
    p.write_bytes(huge + b"\n" + b"Nov 24 00:05:03 mx1 sshd[4007]: small\n" + huge)   # the last one without LF
    out = tmp_path / "out"
    assert main(["replay", "--no-geoip", "--year", "2026", "--max-line", "1000", "-q", "-o", str(out), str(p)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == 3 and summary["problems"]["_line_truncated"] == 2
    assert "_invalid_utf8" not in summary["problems"]   # not cut inside a character
    docs = [json.loads(x) for f in (out / "elasticsearch").iterdir() for x in f.read_bytes().splitlines()[1::2]]
    for d in docs:
        assert len(d["event"]["original"]) <= 1000 and len(d.get("message", "")) <= 1000
    assert sorted(d.get("tags", []).count("_line_truncated") for d in docs) == [0, 1, 1]
    assert main(["parse", "--year", "2026", "--max-line", "1000", str(p)]) == 0
    docs = [json.loads(x) for x in capsysbinary.readouterr().out.splitlines()]
    assert [len(d["event"]["original"]) for d in docs] == [1000, len("Nov 24 00:05:03 mx1 sshd[4007]: small"), 1000]


def test_the_parser_bounds_a_line_from_elsewhere_too():
    from streams.parse.dispatch import LineParser
    ev = LineParser(year=2026, max_line=100).parse("Nov 24 00:05:02 mx1 sshd[4007]: " + "x" * 5000)
    doc = ev.to_doc()
    assert len(doc["event"]["original"]) == 100 and doc["tags"].count("_line_truncated") == 1


def test_a_cut_through_a_character_is_not_invalid_utf8():
    """An overlong line cut at the read limit inside a multi-byte character is still valid
    text, only shorter."""
    import io

    from streams.inputs import iter_lines
    line = ("a" + "€" * 1_000_000).encode()   # 3 MB: no line end within one read
    for max_line in (5, 6, 7):
        [(text, problems)] = list(iter_lines(io.BytesIO(line + b"\n"), max_line=max_line))
        assert problems == ("_line_truncated",) and text == ("a" + "€" * 10)[:max_line]
