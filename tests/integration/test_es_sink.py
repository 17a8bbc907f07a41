"""The Elasticsearch sink against a real Elasticsearch (issue 5): the samples replayed with
`streams replay --to elasticsearch`, mapped by our templates (geo_point, geo queries and
aggregations, date histograms, the Wazuh index); a mapping conflict dead-lettered exactly;
Elasticsearch stopped in the middle of a replay and every event indexed exactly once; and
`streams run` delivering to it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from elasticsearch import ApiError, Elasticsearch

from streams.sinks.es_templates import status_of

from . import TIMEOUT, LiveServer, make_config, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "logs"
CITY = ROOT / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"


def replay(out: Path, url: str, *inputs: Path, wait: bool = True, extra: tuple[str, ...] = ()):
    cmd = [sys.executable, "-m", "streams.cli", "replay", "--no-progress", "-q", "--year", "2026",
           "--geoip-city", str(CITY), "--output", str(out), "--to", "elasticsearch", url, *extra,
           *map(str, inputs)]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def file_docs(tmp: Path) -> list[dict]:
    """The same samples replayed to files: what the index must hold."""
    out = tmp / "files"
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--no-progress", "-q", "--year", "2026",
                        "--geoip-city", str(CITY), "--output", str(out), str(SAMPLES)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    docs = []
    for f in (out / "elasticsearch").glob("*.ndjson"):
        docs += [json.loads(x) for x in f.read_text().splitlines()[1::2]]
    return docs


@pytest.fixture
def es(elasticsearch_url):
    client = Elasticsearch(elasticsearch_url, request_timeout=60)
    client.indices.delete(index="streams-*,wazuh-alerts-*", ignore_unavailable=True, allow_no_indices=True,
                          expand_wildcards="all")
    yield client
    client.close()


def count(es: Elasticsearch, index: str, query: dict | None = None) -> int:
    try:
        es.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
        return es.count(index=index, query=query or {"match_all": {}}, ignore_unavailable=True,
                        allow_no_indices=True)["count"]
    except ApiError as e:
        if status_of(e) == 503:   # an index just created, its shard not started yet: none searchable
            return 0
        raise


def test_samples_replayed_into_elasticsearch(tmp_path, es, elasticsearch_url):
    summary = replay(tmp_path / "out", elasticsearch_url, SAMPLES)
    expected = file_docs(tmp_path)
    assert summary["elasticsearch"]["sent"] == summary["events"] == len(expected) > 5000
    assert summary["elasticsearch"]["dead_lettered"] == 0
    assert count(es, "streams-*,wazuh-alerts-4.x-*") == len(expected)
    # every location field is a geo_point, every address an ip, in both layouts
    m = es.indices.get_mapping(index="streams-fail2ban.log-*")
    props = next(iter(m.body.values()))["mappings"]["properties"]
    assert props["source"]["properties"]["geo"]["properties"]["location"]["type"] == "geo_point"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["@timestamp"]["type"] == "date"
    wm = next(iter(es.indices.get_mapping(index="wazuh-alerts-4.x-*").body.values()))["mappings"]["properties"]
    assert wm["GeoLocation"]["properties"]["location"]["type"] == "geo_point"
    assert wm["source"]["properties"]["geo"]["properties"]["location"]["type"] == "geo_point"
    # the banned addresses on a map: a bounding box over the world and a geotile grid
    bans = [d for d in expected if d["event"].get("action") == "ban" and "geo" in d.get("source", {})]
    assert bans
    world = {"geo_bounding_box": {"source.geo.location": {"top_left": {"lat": 85, "lon": -180},
                                                           "bottom_right": {"lat": -85, "lon": 180}}}}
    q = {"bool": {"filter": [world, {"term": {"event.action": "ban"}}]}}
    assert count(es, "streams-fail2ban.log-*", q) == len(bans)
    grid = es.search(index="streams-fail2ban.log-*", size=0, query={"term": {"event.action": "ban"}},
                     aggs={"tiles": {"geotile_grid": {"field": "source.geo.location", "precision": 4}}})
    tiles = grid["aggregations"]["tiles"]["buckets"]
    assert sum(b["doc_count"] for b in tiles) == len(bans) and len(tiles) >= 2
    # a date histogram per hour matches what the files hold
    want = Counter(d["@timestamp"][:13] for d in expected if d["event"]["dataset"] == "sshd.log")
    h = es.search(index="streams-sshd.log-*", size=0,
                  aggs={"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}}})
    got = {b["key_as_string"][:13]: b["doc_count"] for b in h["aggregations"]["h"]["buckets"] if b["doc_count"]}
    assert got == dict(want)
    # the Wazuh index, by its own field layout
    alerts = [d for d in expected if d["event"]["dataset"] == "wazuh.alerts"]
    assert count(es, "wazuh-alerts-4.x-*") == len(alerts)
    lv = es.search(index="wazuh-alerts-4.x-*", size=0, aggs={"lv": {"terms": {"field": "rule.level", "size": 20}}})
    assert {b["key"]: b["doc_count"] for b in lv["aggregations"]["lv"]["buckets"]} == dict(
        Counter(d["rule"]["level"] for d in alerts))
    # a second replay of the same archive duplicates nothing
    again = replay(tmp_path / "out2", elasticsearch_url, SAMPLES)
    assert again["elasticsearch"]["duplicates"] == len(expected) and again["elasticsearch"]["sent"] == 0
    assert count(es, "streams-*,wazuh-alerts-4.x-*") == len(expected)


def test_mapping_conflict_dead_letters_exactly_the_conflicting_documents(tmp_path, es, elasticsearch_url):
    base = json.loads((SAMPLES / "alerts.json").read_text().splitlines()[0])
    lines = []
    for i in range(40):
        a = json.loads(json.dumps(base))
        a["id"] = f"conflict.{i}"
        # the first ones decide the mapping (an object); every 4th sends the field as a string
        a["data"]["extra"] = f"text {i}" if i % 4 == 3 else {"n": i}
        lines.append(json.dumps(a))
    src = tmp_path / "alerts.json"
    src.write_text("\n".join(lines) + "\n")
    summary = replay(tmp_path / "out", elasticsearch_url, src)
    dead = [json.loads(x) for x in (tmp_path / "out" / "elasticsearch-dead-letter.ndjson").read_text().splitlines()]
    assert summary["elasticsearch"]["dead_lettered"] == len(dead) == 10
    assert sorted(d["event"]["data"]["extra"] for d in dead) == sorted(f"text {i}" for i in range(3, 40, 4))
    assert all(d["status"] == 400 and d["index"].startswith("wazuh-alerts-4.x-") and d["error"]["reason"]
               for d in dead)
    assert count(es, "wazuh-alerts-4.x-*") == 30


def test_elasticsearch_stopped_mid_replay_every_event_indexed_once(tmp_path, es, es_server, elasticsearch_url):
    # a bigger archive: the samples four times with distinct hosts, so every line is its own document
    big = tmp_path / "big"
    big.mkdir()
    for k in range(4):
        for f in ("auth.log", "mail.log"):
            (big / f"{k}-{f}").write_text((SAMPLES / f).read_text().replace(" mx1 ", f" mx{k} "))
    p = replay(tmp_path / "out", elasticsearch_url, big, wait=False,
               extra=("--config", str(_small_batches(tmp_path))))
    try:
        wait_for(lambda: count(es, "streams-*") > 0, timeout=120, what="the first documents")
        assert p.poll() is None, "the replay ended before Elasticsearch could be stopped"
        es_server.stop()
        time.sleep(3)
        es_server.start()
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:   # a failure above must not leave it writing into the next test's indices
            p.kill()
            p.wait()
    assert p.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    logs = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert any("unreachable" in d.get("msg", "") for d in logs), "the replay never saw Elasticsearch down"
    assert any("reachable again" in d.get("msg", "") for d in logs)
    assert summary["elasticsearch"]["retried"] > 0
    assert summary["elasticsearch"]["dead_lettered"] == 0
    assert count(es, "streams-*") == summary["events"] == 4 * (1705 + 2163)


def test_an_overlong_line_is_indexed_cut_and_one_over_the_servers_limit_is_dead_lettered(tmp_path, es,
                                                                                        elasticsearch_url):
    # a 50 MB line kept 16 MiB in event.original: Elasticsearch refused its document (429, over its
    # indexing-pressure limit) and the replay retried it forever
    head = b"Nov 24 00:05:02 mx1 sshd[4007]: "
    src = tmp_path / "huge.log"
    src.write_bytes(head + b"A" * 50_000_000 + b"\n" + head + b"small\n")
    summary = replay(tmp_path / "out", elasticsearch_url, src)
    assert summary["elasticsearch"]["sent"] == summary["events"] == 2
    assert summary["problems"]["_line_truncated"] == 1
    es.indices.refresh(index="streams-sshd.log-*")
    hit = es.search(index="streams-sshd.log-*", query={"term": {"tags": "_line_truncated"}})["hits"]["hits"]
    assert len(hit) == 1 and len(hit[0]["_source"]["event"]["original"]) == 65536
    # with --max-line raised past what the server takes (it counts some 4 bytes per byte of a
    # document against 10 % of its heap): dead-lettered with the server's reason, the replay ends
    src.write_bytes(head + b"B" * 10_000_000 + b"\n" + head + b"small too\n")
    summary = replay(tmp_path / "out2", elasticsearch_url, src, extra=("--max-line", "20000000"))
    assert summary["elasticsearch"]["sent"] == 1 and summary["elasticsearch"]["dead_lettered"] == 1
    dead = json.loads((tmp_path / "out2" / "elasticsearch-dead-letter.ndjson").read_text())
    assert dead["status"] == 429 and "max_" in str(dead["error"])


def test_what_a_replay_gave_up_on_is_delivered_by_the_next_one(tmp_path, es, elasticsearch_url):
    # exit 3 says the documents stay in DIR/spool/elasticsearch for the next replay or run
    out = tmp_path / "out"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--no-progress", "-q", "--year", "2026",
                        "--no-geoip", "--output", str(out), "--stall-timeout", "1", "--to", "elasticsearch",
                        f"127.0.0.1:{closed}", str(SAMPLES / "auth.log")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    summary = replay(out, elasticsearch_url, empty)
    assert summary["events"] == 0 and summary["elasticsearch"]["sent"] == 1705
    assert count(es, "streams-*") == 1705


def _small_batches(tmp: Path) -> Path:
    cfg = tmp / "es.toml"
    # small requests: the replay is still delivering when Elasticsearch goes away
    cfg.write_text("[output.elasticsearch]\nbatch_size = 50\nflush_seconds = 0.2\nbackoff_max = 2.0\n")
    return cfg


def test_run_delivers_to_elasticsearch(tmp_path, es, elasticsearch_url):
    cfg = make_config(tmp_path / "out", CITY)
    cfg.output.elasticsearch.url = elasticsearch_url
    cfg.output.elasticsearch.flush_seconds = 0.2
    lines = [f"<38>Nov 24 10:00:{i:02d} web3 sshd[99]: Failed password for root from 81.2.69.160 port {4000 + i} ssh2"
             for i in range(20)]
    with LiveServer(cfg) as server:
        with socket.create_connection(("127.0.0.1", server.port("syslog_tcp")), timeout=TIMEOUT) as s:
            s.sendall("".join(x + "\n" for x in lines).encode())
        wait_for(lambda: count(es, "streams-sshd.log-*") == 20, timeout=30, what="20 documents in Elasticsearch")
        assert server.metrics()["sinks"]["elasticsearch"]["sent"] == 20
    hit = es.search(index="streams-sshd.log-*", query={"term": {"source.port": 4007}})["hits"]["hits"][0]["_source"]
    assert hit["source"]["geo"]["city_name"] == "London" and hit["event"]["outcome"] == "failure"



def test_setup_installs_the_templates(es, elasticsearch_url):
    es.options(ignore_status=404).indices.delete_index_template(name="streams")
    r = subprocess.run([sys.executable, "-m", "streams.cli", "setup", "elasticsearch", "--url", elasticsearch_url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    actions = dict(line.split()[::-1] for line in r.stdout.splitlines())
    assert actions["streams"] in ("installed", "upgraded") and set(actions.values()) <= {
        "installed", "upgraded", "up-to-date"}
    assert es.indices.exists_index_template(name="streams")
    again = subprocess.run([sys.executable, "-m", "streams.cli", "setup", "elasticsearch", "--url", elasticsearch_url],
                           capture_output=True, text=True, timeout=120)
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"up-to-date"}
    down = subprocess.run([sys.executable, "-m", "streams.cli", "setup", "elasticsearch", "--url",
                           "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert down.returncode == 1 and "not reachable" in down.stderr
