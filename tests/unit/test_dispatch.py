"""Line shapes the dispatcher recognises before any product rule runs."""

from streams.parse.dispatch import LineParser

from ..corpus import get


def test_relayed_syslog_line_is_unwrapped():
    # rsyslog imfile reading mail.log, forwarded with its default template: a header around a line
    line = ("<133>2026-11-26T08:20:35.059207+00:00 vm maillog: 2026-11-24T00:45:07.790894+00:00 mx1 "
            "postfix/smtpd[4369]: connect from unknown[67.43.156.7]")
    ev = LineParser().parse(line)
    doc = ev.to_doc()
    assert get(doc, "event.dataset") == "postfix.log" and "tags" not in doc
    assert get(doc, "host.hostname") == "mx1" and get(doc, "process.pid") == 4369
    assert get(doc, "host.name") == "mx1"  # the line's host, not the relay's
    assert get(doc, "@timestamp") == "2026-11-24T00:45:07.790Z"
    assert get(doc, "log.syslog.hostname") == "vm" and get(doc, "log.syslog.appname") == "maillog"
    assert get(doc, "log.syslog.facility.name") == "local0"
    assert get(doc, "source.ip") == "67.43.156.7"
    assert doc["message"] == "connect from unknown[67.43.156.7]"
    assert doc["event"]["original"] == line


def test_unowned_program_with_plain_message_stays_as_it_was():
    doc = LineParser(year=2026).parse("Nov 24 00:18:25 mx1 systemd-logind[512]: New session 3 of user bob.").to_doc()
    assert get(doc, "event.dataset") == "syslog" and doc["tags"] == ["_grokparsefailure"]
    assert get(doc, "process.name") == "systemd-logind"


def test_a_failing_hook_keeps_the_line_tagged(tmp_path):
    (tmp_path / "boom.grok").write_text("BOOM_LINE boom %{GREEDYDATA:x}\n")
    (tmp_path / "boom.yaml").write_text(
        "parsers:\n  - name: boom\n    dataset: boom.log\n    programs: [boom]\n"
        "    rules:\n      - pattern: BOOM_LINE\n        hooks: ['tests.unit.test_dispatch:_explode']\n")
    p = LineParser([tmp_path], year=2026)
    line = "Nov 24 00:00:00 h boom[1]: boom now"
    doc = p.parse(line).to_doc()
    assert doc["tags"] == ["_parser_error"] and doc["event"]["original"] == line
    assert p.stats["parser_error"] == 1
    ok = p.parse("Nov 24 00:00:01 h sshd[2]: Accepted publickey for bob from 192.0.2.1 port 2 ssh2").to_doc()
    assert ok["event"]["dataset"] == "sshd.log"  # the parser goes on


def _explode(fields, ev, parser):
    raise RuntimeError("a bug in a hook")


def test_fail2ban_continuation_does_not_cross_files(tmp_path, capsysbinary):
    import json

    from streams.cli import main
    (tmp_path / "f2b.log").write_text(
        "2024-01-01 10:00:00,123 fail2ban.actions        [1]: NOTICE  [sshd] Ban 192.0.2.4\n")
    (tmp_path / "other.log").write_text("some unrelated line\n")
    assert main(["parse", str(tmp_path / "f2b.log"), str(tmp_path / "other.log")]) == 0
    last = json.loads(capsysbinary.readouterr()[0].splitlines()[-1])
    # was: dataset fail2ban.log, the ban's time and pid, tagged multiline_continuation
    assert "multiline_continuation" not in last["tags"] and "@timestamp" not in last
    assert last["tags"] == ["_grokparsefailure"]


def test_a_python_hook_is_the_escape_hatch(tmp_path, capsysbinary):
    """A rule may name a Python hook (`module:function`) for what ops cannot say: it runs
    on the matched line's document, counted as the slow path, in `streams parse` too."""
    import json

    from streams.cli import main
    (tmp_path / "tag.grok").write_text("TAG_LINE tag %{GREEDYDATA:tag.text}\n")
    (tmp_path / "tag.yaml").write_text(
        "parsers:\n  - name: tag\n    dataset: tag.log\n    programs: [tag]\n"
        "    rules:\n      - pattern: TAG_LINE\n        hooks: ['tests.unit.test_dispatch:_upper']\n")
    p = LineParser([tmp_path], year=2026)
    doc = p.parse("Nov 24 00:00:00 h tag[1]: tag hello").to_doc()
    assert doc["tag"] == {"text": "hello", "upper": "HELLO"} and "tags" not in doc
    assert p.stats["python_hook"] == 1
    ok = p.parse("Nov 24 00:00:01 h sshd[2]: Accepted publickey for bob from 192.0.2.1 port 2 ssh2").to_doc()
    assert ok["event"]["dataset"] == "sshd.log" and p.stats["python_hook"] == 1  # other rules: no hook
    log = tmp_path / "a.log"
    log.write_text("Nov 24 00:00:00 h tag[1]: tag hi\n\nNov 24 00:00:01 h other[2]: x\n")
    assert main(["parse", "--patterns-dir", str(tmp_path), str(log)]) == 0
    out = [json.loads(x) for x in capsysbinary.readouterr()[0].splitlines()]
    assert [d.get("tag") for d in out] == [{"text": "hi", "upper": "HI"}, None]


def test_a_hook_that_cannot_be_loaded_fails_at_start(tmp_path):
    import pytest

    from streams.parse.grok import PatternError
    (tmp_path / "tag.grok").write_text("TAG_LINE tag %{GREEDYDATA:tag.text}\n")
    (tmp_path / "tag.yaml").write_text(
        "parsers:\n  - name: tag\n    dataset: tag.log\n    programs: [tag]\n"
        "    rules:\n      - pattern: TAG_LINE\n        hooks: ['tests.unit.test_dispatch:_nope']\n")
    with pytest.raises(PatternError, match="_nope"):
        LineParser([tmp_path], year=2026)


def _upper(fields, ev, parser):
    fields["tag"]["upper"] = fields["tag"]["text"].upper()


def test_replay_and_run_batches_run_the_python_hooks(tmp_path):
    """The native batch pipeline calls a rule's Python hooks for its lines (taking the GIL
    back for them), a failing one keeping the line as `_parser_error`, as the per-line face does."""
    import json

    from streams.cli import main
    from streams.pipeline.live import LivePipeline, Received
    from streams.telemetry import Telemetry
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "tag.grok").write_text("TAG_LINE tag %{GREEDYDATA:tag.text}\nBOOM_LINE boom %{GREEDYDATA:x}\n")
    (tmp_path / "p" / "tag.yaml").write_text(
        "parsers:\n  - name: tag\n    dataset: tag.log\n    programs: [tag, boom]\n    rules:\n"
        "      - pattern: TAG_LINE\n        hooks: ['tests.unit.test_dispatch:_upper']\n"
        "      - pattern: BOOM_LINE\n        hooks: ['tests.unit.test_dispatch:_explode']\n")
    lines = ["Nov 24 00:00:00 h tag[1]: tag hi", "Nov 24 00:00:01 h boom[1]: boom now",
             "Nov 24 00:00:02 h sshd[2]: Accepted publickey for bob from 192.0.2.1 port 2 ssh2"]
    (tmp_path / "a.log").write_text("\n".join(lines) + "\n")
    assert main(["replay", "-q", "--no-progress", "--no-geoip", "--year", "2026", "--patterns-dir",
                 str(tmp_path / "p"), "-o", str(tmp_path / "out"), str(tmp_path / "a.log")]) == 0
    docs = [json.loads(x) for f in sorted((tmp_path / "out" / "elasticsearch").glob("*.ndjson"))
            for x in f.read_text().splitlines()[1::2]]
    by = {d["event"]["original"]: d for d in docs}
    assert by[lines[0]]["tag"] == {"text": "hi", "upper": "HI"}
    assert "_parser_error" in by[lines[1]]["tags"]
    assert by[lines[2]]["event"]["dataset"] == "sshd.log"
    p = LivePipeline(LineParser([tmp_path / "p"], year=2026), tmp_path / "live", Telemetry())
    p.process([Received("tcp", 1764000000.0, text=t) for t in lines])
    p.close()
    live = [json.loads(x) for f in (tmp_path / "live" / "elasticsearch").glob("*.ndjson")
            for x in f.read_text().splitlines()[1::2]]
    assert [d.get("tag") for d in live if d["event"]["original"] == lines[0]] == [{"text": "hi", "upper": "HI"}]
