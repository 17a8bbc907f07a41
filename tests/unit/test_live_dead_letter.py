"""The live pipeline keeps a message it cannot write in the dead-letter file and acks it,
so a RELP sender does not resend it forever; only when that fails too is it nak'ed."""

from __future__ import annotations

import json

from streams.parse.dispatch import LineParser
from streams.pipeline.live import LivePipeline, Received
from streams.telemetry import Telemetry

GOOD = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 44633 ssh2"
# another day, so another index: its documents are written (and fail) apart from GOOD's
BAD = "Nov 25 00:05:03 mx1 sshd[4008]: Failed password for root from 81.2.69.143 port 44634 ssh2"


def pipeline(tmp_path):
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry())
    write = p.sink.write_chunk

    def failing_write(index, data, n):
        if BAD.encode() in data:
            raise OSError("disk says no")
        write(index, data, n)
    p.sink.write_chunk = failing_write
    return p


def run(p, lines):
    acks = []
    p.process([Received("relp", 1764000000.0, text=t, ack=lambda ok, t=t: acks.append((t, ok))) for t in lines])
    return acks


def test_unwritable_event_goes_to_dead_letter_and_is_acked(tmp_path):
    p = pipeline(tmp_path)
    assert run(p, [GOOD, BAD, GOOD]) == [(GOOD, True), (BAD, True), (GOOD, True)]
    p.close()
    dead = [json.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_text().splitlines()]
    assert [d["original"] for d in dead] == [BAD]
    assert dead[0]["listener"] == "relp" and "disk says no" in dead[0]["error"]
    es = p.telemetry.snapshot()["sink.elasticsearch_files"]
    assert es["sent"] == 2 and es["dead_lettered"] == 1 and es["failed"] == 0


def test_nak_when_the_dead_letter_file_fails_too(tmp_path):
    p = pipeline(tmp_path)
    (tmp_path / "dead-letter.ndjson").mkdir()  # cannot be opened as a file
    assert run(p, [BAD]) == [(BAD, False)]
    assert p.telemetry.snapshot()["sink.elasticsearch_files"]["failed"] == 1


def test_a_structured_event_without_a_document_is_dead_lettered_alone(tmp_path):
    """A Riemann event whose document cannot be made (here its fields are not an object)
    goes to the dead-letter file with that reason; the lines of its batch are written."""
    from streams.event import Event
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry())
    acks = []
    broken = Event(service="s", fields=["not", "an", "object"])
    p.process([Received("relp", 1764000000.0, text=GOOD, ack=lambda ok: acks.append(("good", ok))),
               Received("riemann", 1764000000.0, event=broken, ack=lambda ok: acks.append(("broken", ok)))])
    p.close()
    dead = [json.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["listener"] == "riemann" and "AttributeError" in dead[0]["error"]
    assert acks == [("good", True), ("broken", True)]
    es = p.telemetry.snapshot()["sink.elasticsearch_files"]
    assert es["sent"] == 1 and es["dead_lettered"] == 1


def test_acks_are_settled_in_the_core_and_one_failing_callback_stops_no_other(caplog):
    from streams.pipeline.live import _settle
    got = []

    def ack(name):
        def f(ok):
            if name == "boom":
                raise RuntimeError("ack bug")
            got.append((name, ok))
        return f
    _settle([(0, ack("a")), (1, ack("boom")), (2, ack("refused")), (5, ack("b"))], {2}, False)
    assert got == [("a", True), ("refused", False), ("b", True)]
    assert "ack callback failed: ack bug" in caplog.text
    got.clear()
    _settle([(0, ack("a")), (3, ack("b"))], set(), True)   # the batch could not be flushed
    assert got == [("a", False), ("b", False)]
