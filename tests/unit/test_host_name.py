"""One host field: every document carries ECS `host.name`; a line that names no host gets
the host it came from (in `run` the sender's address), a Riemann event keeps its own."""

from __future__ import annotations

import json

from streams.enrich.metrics import DerivedMetrics
from streams.event import Event
from streams.parse.dispatch import LineParser
from streams.pipeline.live import LivePipeline, Received
from streams.telemetry import Telemetry

F2B_OWN = "2026-11-24 00:10:00,100 fail2ban.actions        [812]: NOTICE  [sshd] Ban 81.2.69.160"
SYSLOG = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 44633 ssh2"


def test_the_default_host_fills_only_a_missing_name(tmp_path):
    """(The batch pipeline's `default_host`; its other cases in its Rust tests.) A line
    without a host gets the one given, a line's own name wins; no host given: none made."""
    from streams.sinks.bulk_files import BulkFileSink
    p = LineParser(year=2026)
    pipe = p.batch_pipeline(BulkFileSink(tmp_path), 60)
    lines = [F2B_OWN, SYSLOG]
    b = pipe.replay(("\n".join(lines) + "\n").encode(), source="a", first_line=1, now=1.7e9, host="mx9")
    hosts = [json.loads(x).get("host") for _, data, _, _ in b["chunks"] for x in data.splitlines()[1::2]]
    assert sorted(map(json.dumps, hosts)) == sorted(map(json.dumps, [{"name": "mx9"}, {"hostname": "mx1", "name": "mx1"}]))
    b = pipe.replay((F2B_OWN + "\n").encode(), source="a", first_line=1, now=1.7e9)
    assert [json.loads(x).get("host") for _, data, _, _ in b["chunks"] for x in data.splitlines()[1::2]] == [None]


def test_run_gives_a_hostless_line_its_sender(tmp_path):
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), metrics=DerivedMetrics(10))
    peer = ("192.0.2.7", 40123)
    p.process([Received("syslog_tcp", 1795478400.0, text=F2B_OWN, peer=peer),
               Received("syslog_tcp", 1795478400.0, text=SYSLOG, peer=peer),
               Received("riemann_tcp", 1795478400.0, event=Event(service="cpu", metric=0.5), peer=peer)])
    p.close()
    docs = {}
    for f in (tmp_path / "elasticsearch").glob("*.ndjson"):
        for line in f.read_text().splitlines()[1::2]:
            d = json.loads(line)
            docs[d["event"]["dataset"]] = d
    assert docs["fail2ban.log"]["host"] == {"name": "192.0.2.7"}  # rsyslog's fromhost-ip; no hostname invented
    assert docs["sshd.log"]["host"] == {"hostname": "mx1", "name": "mx1"}
    assert "host" not in docs["riemann"]  # nil is a Riemann host: the index and queries see it so
    paths = {line.split()[0] for line in (tmp_path / "graphite.txt").read_text().splitlines()}
    assert "streams.192_0_2_7.fail2ban_log.jail.sshd.ban" in paths
    assert not any(path.startswith("streams.unknown.fail2ban_log.") for path in paths)
