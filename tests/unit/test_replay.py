"""`streams replay` over the shipped samples: the whole pipeline, checked end to end."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from streams import SAMPLES_DIR
from streams.cli import main

LOGS = SAMPLES_DIR / "logs"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, city_db):
    out = tmp_path_factory.mktemp("replay")
    rc = main(["replay", "-q", "--no-progress", "--year", "2026", "--geoip-city", str(city_db),
               "--host", "mx1", "-o", str(out), str(LOGS)])
    assert rc == 0
    docs = []
    for f in sorted((out / "elasticsearch").glob("*.ndjson")):
        lines = f.read_bytes().splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            a = json.loads(action)["index"]
            assert a["_index"] == f.stem
            docs.append((a, json.loads(doc)))
    return out, docs


def sample_lines() -> list[str]:
    return [x for f in sorted(LOGS.iterdir()) if f.suffix in (".log", ".json")
            for x in f.read_text().splitlines() if x.strip()]


def test_every_line_is_one_document(replayed):
    out, docs = replayed
    originals = Counter(d["event"]["original"] for _, d in docs)
    assert originals == Counter(sample_lines())
    assert len({a["_id"] for a, _ in docs}) == len(docs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == len(docs)


def test_samples_parse_cleanly(replayed):
    _, docs = replayed
    failures = [d["event"]["original"] for _, d in docs if "_grokparsefailure" in d.get("tags", ())
                and d["event"].get("dataset") not in ("syslog",)]
    assert failures == []


def test_index_names_and_datasets(replayed):
    _, docs = replayed
    names = {a["_index"] for a, _ in docs}
    assert "streams-fail2ban.log-2026.11.24" in names and "wazuh-alerts-4.x-2026.11.25" in names
    datasets = Counter(d["event"]["dataset"] for _, d in docs)
    for ds in ("fail2ban.log", "sshd.log", "postfix.log", "dovecot.log", "wazuh.alerts"):
        assert datasets[ds] > 0, ds


def test_bans_carry_geo(replayed):
    _, docs = replayed
    bans = [d for _, d in docs if d["event"].get("action") == "ban"]
    assert bans
    london = [d for d in bans if d["source"]["ip"].startswith("81.2.69.")]
    assert london and all(d["source"]["geo"]["country_iso_code"] == "GB" for d in london)
    assert all(isinstance(d["source"]["geo"]["location"]["lat"], float) for d in london)


def test_graphite_counts_match_documents(replayed):
    out, docs = replayed
    points = Counter()
    for line in (out / "graphite.txt").read_text().splitlines():
        path, value, ts = line.split()
        assert int(ts) % 60 == 0
        points[path] += int(value)
    # fail2ban's own log names no host: its metrics go under the --host given
    bans = Counter(d["fail2ban"]["jail"] for _, d in docs if d["event"].get("action") == "ban")
    assert len(bans) >= 3
    for jail, n in bans.items():
        assert points[f"streams.mx1.fail2ban_log.jail.{jail}.ban"] == n
    gb = sum(1 for _, d in docs if d["event"].get("action") == "ban"
             and d.get("source", {}).get("geo", {}).get("country_iso_code") == "GB")
    assert gb and points["streams.mx1.fail2ban_log.country.GB.ban"] == gb
    assert not [p for p in points if p.startswith("streams.unknown.")]
    failures = sum(1 for _, d in docs if d["event"].get("outcome") == "failure" and d["event"]["dataset"] == "sshd.log")
    assert failures and points["streams.mx1.sshd_log.failures"] == failures
    assert sum(v for k, v in points.items() if k.endswith(".events")) == len(docs)


def test_every_document_has_a_host_name(replayed):
    _, docs = replayed
    assert all(d["host"]["name"] == "mx1" for _, d in docs)
    own = [d for _, d in docs if d["event"]["dataset"] == "fail2ban.log"]
    assert own and all("hostname" not in d["host"] for d in own)  # the line named none: none invented


def hosts_of(out: Path) -> set[tuple[str, str]]:
    """(Fail2ban's own log or a syslog file, the host object) of every document."""
    return {("fail2ban.log" if d["event"]["dataset"] == "fail2ban.log" else "syslog", json.dumps(d["host"]))
            for f in (out / "elasticsearch").glob("*.ndjson")
            for d in map(json.loads, f.read_bytes().splitlines()[1::2])}


def test_lines_without_a_host_get_this_machine_or_the_one_given(tmp_path):
    files = [str(LOGS / "fail2ban.log"), str(LOGS / "auth.log")]
    args = ["replay", "-q", "--no-progress", "--no-geoip", "--year", "2026"]
    assert main([*args, "-o", str(tmp_path / "a"), *files]) == 0
    here = json.dumps({"name": socket.gethostname()})  # as Logstash's and Vector's file inputs
    mx1 = json.dumps({"hostname": "mx1", "name": "mx1"})
    assert hosts_of(tmp_path / "a") == {("fail2ban.log", here), ("syslog", mx1)}
    assert main([*args, "--host", "f2b.example.org", "-o", str(tmp_path / "b"), *files]) == 0
    given = json.dumps({"name": "f2b.example.org"})
    assert hosts_of(tmp_path / "b") == {("fail2ban.log", given), ("syslog", mx1)}  # a line's own host wins
    cfg = tmp_path / "streams.toml"
    cfg.write_text('[replay]\nhost = "from-config"\n')
    assert main([*args, "--config", str(cfg), "-o", str(tmp_path / "c"), files[0]]) == 0
    assert hosts_of(tmp_path / "c") == {("fail2ban.log", json.dumps({"name": "from-config"}))}


def test_replay_is_deterministic(tmp_path, city_db, replayed):
    _, docs = replayed
    out2 = tmp_path / "again"
    assert main(["replay", "-q", "--no-progress", "--year", "2026", "--geoip-city", str(city_db),
                 "-o", str(out2), str(LOGS)]) == 0
    ids = sorted(json.loads(x)["index"]["_id"] for f in (out2 / "elasticsearch").glob("*.ndjson")
                 for x in f.read_bytes().splitlines()[::2])
    assert ids == sorted(a["_id"] for a, _ in docs)


def test_config_file(tmp_path):
    cfg = tmp_path / "streams.toml"
    cfg.write_text('[parse]\nyear = 2026\n[output]\nindex = "logs-{dataset}-{date}"\n[geoip]\nenabled = false\n')
    out = tmp_path / "o"
    assert main(["replay", "-q", "--config", str(cfg), "-o", str(out), str(LOGS / "auth.log")]) == 0
    assert any(p.name.startswith("logs-sshd.log-2026.11.24") for p in (out / "elasticsearch").iterdir())
    bad = tmp_path / "bad.toml"
    bad.write_text("[parse]\nyeer = 1\n")
    assert main(["replay", "-q", "--config", str(bad), "-o", str(out), str(LOGS / "auth.log")]) == 2


def test_unreadable_input_exit_code(tmp_path):
    assert main(["replay", "-q", "--no-geoip", "-o", str(tmp_path / "o"), str(Path(tmp_path) / "missing.log")]) == 1


def test_bulk_sink_bounds_open_files(tmp_path):
    from streams.sinks.bulk_files import BulkFileSink
    sink = BulkFileSink(tmp_path, max_open=3)
    days = [f"2026-01-{d:02d}T00:00:00.000Z" for d in range(1, 11)]
    for rnd in range(3):
        for i, ts in enumerate(days):
            sink.write({"@timestamp": ts, "event": {"dataset": "x"}, "n": rnd}, f"{rnd}-{i}")
            assert len(sink.files) <= 3
    sink.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) == 10
    for f in files:
        lines = f.read_bytes().splitlines()
        assert len(lines) == 6 and [json.loads(x)["n"] for x in lines[1::2]] == [0, 1, 2]


def test_example_config_loads():
    from streams import PROJECT_ROOT
    from streams.config import load_config
    cfg = load_config(PROJECT_ROOT / "deploy" / "streams.example.toml")
    assert cfg.parse.max_line == 65536 and cfg.geoip.enabled and cfg.output.index == "streams-{dataset}-{date}"


def test_a_truncated_archive_is_reported_and_the_next_file_still_replayed(tmp_path):
    import gzip
    line = b"Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 1 ssh2\n"
    whole = gzip.compress(line * 2000)
    (tmp_path / "a.log.gz").write_bytes(whole[:len(whole) // 2])  # cut short (a rotation on a full disk)
    (tmp_path / "b.log.gz").write_bytes(b"not gzip at all\n")      # named .gz, not compressed
    (tmp_path / "c.log").write_bytes(line.replace(b"root", b"c-log-user"))
    out = tmp_path / "o"
    rc = main(["replay", "-q", "--no-progress", "--no-geoip", "--year", "2026", "-o", str(out),
               str(tmp_path / "a.log.gz"), str(tmp_path / "b.log.gz"), str(tmp_path / "c.log")])
    assert rc == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unreadable_files"] == [str(tmp_path / "a.log.gz"), str(tmp_path / "b.log.gz")]
    written = b"".join(f.read_bytes() for f in (out / "elasticsearch").glob("*.ndjson"))
    assert b'"name":"c-log-user"' in written  # the file after the damaged ones was replayed


def test_a_fail2ban_continuation_does_not_cross_files(tmp_path):
    (tmp_path / "a-f2b.log").write_text(
        "2024-01-01 10:00:00,123 fail2ban.actions        [1]: NOTICE  [sshd] Ban 192.0.2.4\n")
    (tmp_path / "b-other.log").write_text("some unrelated line\n")
    out = tmp_path / "o"
    assert main(["replay", "-q", "--no-progress", "--no-geoip", "-o", str(out),
                 str(tmp_path / "a-f2b.log"), str(tmp_path / "b-other.log")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["datasets"].get("fail2ban.log") == 1   # not 2: the other file's line is not the ban's
    assert "multiline_continuation" not in summary["problems"]


class _Points:
    """A metrics writer that keeps what it is given (the replay's carbon side)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, int]] = []

    def write(self, points):
        self.points += points
        return len(points)

    def close(self) -> bool:
        return True


@pytest.mark.parametrize("days_later, retention_days, past", [(1, 7, False), (30, 7, True), (30, 0, False)])
def test_points_past_the_graphite_retention_are_counted_and_said(tmp_path, caplog, days_later, retention_days,
                                                                 past):
    """Carbon drops points older than its schema keeps, without a word: a replay of an old
    archive says how many of its points that will be."""
    from streams.clock import ManualClock
    from streams.event import parse_timestamp
    from streams.parse.dispatch import LineParser
    from streams.pipeline.replay import Replay

    log = LOGS / "fail2ban.log"
    last = parse_timestamp(log.read_text().splitlines()[-1][:19].replace(" ", "T") + "Z")
    sink = _Points()
    replay = Replay(LineParser(), tmp_path, sink=None, metrics_sink=sink, clock=ManualClock(last + days_later * 86400),
                    metrics_retention=retention_days * 86400)
    replay.process_file(str(log))
    with caplog.at_level("WARNING", logger="streams.replay"):
        out = replay.finish()
    assert sink.points and out["metric_points"] == len(sink.points)  # sent all the same
    if past:
        assert out["metric_points_past_retention"] == len(sink.points)
        assert "older than the graphite retention" in caplog.text
    else:
        assert out["metric_points_past_retention"] == 0
        assert "retention" not in caplog.text
