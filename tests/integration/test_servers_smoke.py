"""The real servers of tests/integration/servers.py answer: one document into Elasticsearch and
back (plain urllib, no client library), one point into carbon over TCP and one over UDP, read back
from their whisper files, and keyed records through a Kafka topic (kafka-topics creates it, kcat
produces and consumes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

from . import servers
from .servers import CarbonServer, KafkaServer

# The fixtures, until tests/conftest.py registers tests.integration.servers as a plugin (one server
# per session either way: servers.py keeps them).
es_server = servers.es_server
elasticsearch_url = servers.elasticsearch_url
carbon = servers.carbon
kafka = servers.kafka


def es(url: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{url}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["X-elastic-product"] == "Elasticsearch"
        return json.loads(r.read())


def test_elasticsearch_indexes_and_finds_a_document(elasticsearch_url: str) -> None:
    doc = {"@timestamp": "2026-11-26T08:00:00Z", "message": "smoke", "source": {"ip": "81.2.69.160"}}
    put = es(elasticsearch_url, "PUT", "/streams-smoke/_doc/1?refresh=true", doc)
    assert put["result"] in ("created", "updated")
    assert es(elasticsearch_url, "GET", "/streams-smoke/_doc/1")["_source"] == doc
    hits = es(elasticsearch_url, "POST", "/streams-smoke/_search", {"query": {"match": {"message": "smoke"}}})
    assert hits["hits"]["total"]["value"] == 1
    es(elasticsearch_url, "DELETE", "/streams-smoke")


def test_carbon_stores_points_sent_over_tcp_and_udp(carbon: CarbonServer) -> None:
    now = int(time.time())
    carbon.send(f"streams.test.x 42 {now}")
    carbon.send(("streams.test.udp", 7.5, now), udp=True)
    assert carbon.wait_points("streams.test.x", now - 5, now + 5) == [(now, 42.0)]
    assert carbon.wait_points("streams.test.udp", now - 5, now + 5) == [(now, 7.5)]
    assert carbon.whisper_file("streams.test.x").is_relative_to(carbon.data_dir)


def kcat(*args: str, input: str | None = None, timeout: float = 60.0) -> str:
    exe = shutil.which("kcat")
    if exe is None:
        msg = "kcat not installed (deploy/dev/install-debian-packages installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI is set, so a missing real client is a failure", pytrace=False)
        pytest.skip(msg)
    p = subprocess.run([exe, *args], input=input, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"kcat {' '.join(args)} failed (exit {p.returncode}): {p.stderr}"
    return p.stdout


def test_kafka_round_trips_keyed_records(kafka: KafkaServer) -> None:
    topic = f"streams-smoke-{uuid.uuid4().hex[:8]}"
    kafka.topics("--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1")
    assert "PartitionCount: 2" in kafka.topics("--describe", "--topic", topic)
    sent = [(f"host{i % 3}", f"line {i} <13>smoke") for i in range(20)]
    kcat("-P", "-b", kafka.bootstrap, "-t", topic, "-K", "\t", "-X", "acks=all", "-X", "message.timeout.ms=30000",
         input="".join(f"{k}\t{v}\n" for k, v in sent))
    # -e: exit at the end of every partition; -o beginning: all of them.
    out = kcat("-C", "-b", kafka.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p\t%k\t%s\n", "-X", "session.timeout.ms=10000")
    got = [tuple(line.split("\t")) for line in out.splitlines()]
    assert sorted((k, v) for _p, k, v in got) == sorted(sent)
    # one key, one partition, in the order sent
    for key in {k for k, _ in sent}:
        assert len({p for p, k, _v in got if k == key}) == 1
        assert [v for _p, k, v in got if k == key] == [v for k, v in sent if k == key]
    kafka.topics("--delete", "--topic", topic)
