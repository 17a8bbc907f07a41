"""The real servers of tests/integration/servers.py answer: one document into Elasticsearch and
back (plain urllib, no client library), one point into carbon over TCP and one over UDP, read back
from their whisper files."""

from __future__ import annotations

import json
import time
import urllib.request

from . import servers
from .servers import CarbonServer

# The fixtures, until tests/conftest.py registers tests.integration.servers as a plugin (one server
# per session either way: servers.py keeps them).
es_server = servers.es_server
elasticsearch_url = servers.elasticsearch_url
carbon = servers.carbon


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
