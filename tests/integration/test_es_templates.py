"""The templates of mappings/ on a real Elasticsearch (tests/integration/servers.py starts one):
install, install again (up to date), a newer version put by hand is kept, an unversioned one is
upgraded; then the sample logs, replayed with GeoIP, are bulk-indexed into streams-* and
wazuh-alerts-4.x-* indices whose mappings must show geo_point and ip, and a geo_bounding_box
query with a geotile_grid aggregation finds exactly the documents located in the box."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch, helpers

from streams import PROJECT_ROOT
from streams.enrich.geoip import default_city_database
from streams.event import Event
from streams.index.ttl import expired_event
from streams.parse.dispatch import LineParser
from streams.sinks import es_templates as et

from ..unit.test_mappings import wazuh_alert_lines
from . import servers

# The fixtures, until tests/conftest.py registers tests.integration.servers as a plugin.
es_server = servers.es_server
elasticsearch_url = servers.elasticsearch_url

RUN = uuid.uuid4().hex[:8]
EUROPE = {"top_left": {"lat": 72.0, "lon": -25.0}, "bottom_right": {"lat": 34.0, "lon": 45.0}}
EAST_ASIA = {"top_left": {"lat": 55.0, "lon": 100.0}, "bottom_right": {"lat": 20.0, "lon": 150.0}}


@pytest.fixture(scope="module")
def es(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(elasticsearch_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def ours() -> list[et.Template]:
    return et.load_templates()


def _delete_ours(es: Elasticsearch, templates: list[et.Template]) -> None:
    """Index templates first: a component in use cannot be deleted."""
    for t in sorted(templates, key=lambda t: t.kind != et.INDEX):
        if t.kind == et.INDEX:
            es.options(ignore_status=404).indices.delete_index_template(name=t.name)
        else:
            es.options(ignore_status=404).cluster.delete_component_template(name=t.name)


def _server_version(es: Elasticsearch, t: et.Template) -> int | None:
    if t.kind == et.INDEX:
        (item,) = es.indices.get_index_template(name=t.name)["index_templates"]
        return item["index_template"].get("version")
    (item,) = es.cluster.get_component_template(name=t.name)["component_templates"]
    return item["component_template"].get("version")


def test_install_upgrade_and_never_downgrade(es, ours, caplog):
    _delete_ours(es, ours)
    try:
        assert et.install_templates(es) == {t.name: et.INSTALLED for t in ours}
        for t in ours:
            assert _server_version(es, t) == t.version
        got = es.indices.get_index_template(name="streams")["index_templates"][0]["index_template"]
        assert got["_meta"]["project"] == "streams" and got["index_patterns"] == ["streams-*"]

        assert et.install_templates(es) == {t.name: et.UP_TO_DATE for t in ours}

        # A newer streams put a newer component there: kept, with a warning.
        settings = next(t for t in ours if t.name == "streams@settings")
        es.cluster.put_component_template(name=settings.name,
                                          body={**settings.body, "version": settings.version + 1})
        # Someone put the index template by hand, without a version: ours replaces it.
        es.indices.put_index_template(name="streams", index_patterns=["streams-*"], priority=200,
                                      composed_of=["streams@settings"])
        with caplog.at_level(logging.WARNING, logger=et.logger.name):
            done = et.install_templates(es)
        assert done.pop("streams@settings") == et.KEPT_NEWER
        assert done.pop("streams") == et.UPGRADED
        assert set(done.values()) == {et.UP_TO_DATE}
        assert _server_version(es, settings) == settings.version + 1
        assert _server_version(es, next(t for t in ours if t.name == "streams")) == 1
        assert any("newer than ours" in r.getMessage() for r in caplog.records)
    finally:   # leave ours installed, as a streams start would
        _delete_ours(es, ours)
        et.install_templates(es)


def _leaves(props: dict, prefix: str = "") -> dict[str, dict]:
    out = {}
    for k, v in props.items():
        if "properties" in v:
            out.update(_leaves(v["properties"], f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_the_server_composes_what_the_unit_tests_check(es, ours):
    """et.compose() (which the unit tests inspect) gives the same mappings as the server's own
    composition (`_simulate_index`), field by field, and the same dynamic rules."""
    et.install_templates(es)
    components = {t.name: t.body for t in ours if t.kind == et.COMPONENT}
    for t in ours:
        if t.kind != et.INDEX:
            continue
        index = t.body["index_patterns"][0].replace("*", f"t{RUN}-2026.01.01")
        server = es.indices.simulate_index_template(name=index)["template"]["mappings"]
        mine = et.compose(t.body, components)["mappings"]
        assert _leaves(server["properties"]) == _leaves(mine["properties"]), t.name
        assert server["dynamic_templates"] == mine["dynamic_templates"]
        assert server["date_detection"] is False


# -- documents -----------------------------------------------------------------------------------------

def _geoip_args() -> list[str]:
    """The GeoLite2 City database of PyPI maxminddb-geolite2 when installed; else MaxMind's test
    databases, which know the sample logs' addresses."""
    city = default_city_database()
    if city is not None:
        return ["--geoip-city", str(city)]
    geo = PROJECT_ROOT / "tests" / "data" / "geoip"
    return ["--geoip-city", str(geo / "GeoIP2-City-Test.mmdb"), "--geoip-asn", str(geo / "GeoLite2-ASN-Test.mmdb")]


def _test_index(name: str) -> str:
    """streams-postfix.log-2026.11.24 -> streams-t<run>-postfix.log, wazuh-alerts-4.x-2026.11.24 ->
    wazuh-alerts-4.x-t<run>: the same templates match, and one index per dataset rather than per
    day (creating an index is most of the time this module takes)."""
    for prefix in ("wazuh-alerts-4.x-", "streams-"):
        if name.startswith(prefix):
            rest = re.sub(r"-?\d{4}\.\d\d\.\d\d$", "", name[len(prefix):])
            return f"{prefix}t{RUN}" + (f"-{rest}" if rest else "")
    raise AssertionError(name)


def _in_box(doc: dict, field: str, box: dict) -> bool:
    node = doc
    for part in field.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return False
    tl, br = box["top_left"], box["bottom_right"]
    return br["lat"] <= node["lat"] <= tl["lat"] and tl["lon"] <= node["lon"] <= br["lon"]


@pytest.fixture(scope="module")
def indexed(es, ours, tmp_path_factory) -> Iterator[dict[str, list[dict]]]:
    """Templates installed, the sample logs replayed (with GeoIP) and bulk-indexed, plus real Wazuh
    alerts of other shapes (syscheck, forwarded over syslog), a Riemann event, an expired index
    entry and one document with an address that is no address.
    Yields {index name: [documents]}."""
    et.install_templates(es)
    out = tmp_path_factory.mktemp("replay")
    subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(PROJECT_ROOT / "samples" / "logs"),
                    "--output", str(out), "--no-progress", "-q", *_geoip_args()],
                   check=True, capture_output=True, timeout=300, cwd=PROJECT_ROOT)
    docs: dict[str, list[dict]] = {}
    actions = []
    for f in sorted((out / "elasticsearch").glob("*.ndjson")):
        lines = f.read_text(encoding="utf-8").splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            meta = json.loads(action)["index"]
            index, source = _test_index(meta["_index"]), json.loads(doc)
            docs.setdefault(index, []).append(source)
            actions.append({"_op_type": "create", "_index": index, "_id": meta["_id"], "_source": source})
    ev = Event(time=1795478702.5, host="mx1", service="cpu", state="ok", metric=3, ttl=60, description="load",
               attributes={"plugin": "cpu"})
    ev.fields = {"event": {"dataset": "riemann"}}
    gone = expired_event("mx1", "fail2ban sshd", 1795478703.25)
    gone.fields = {"event": {"dataset": "streams.index"}}
    odd = {"@timestamp": "2026-11-24T00:00:00.000Z", "event": {"dataset": "postfix.log"},
           "postfix": {"client_ip": "1.2"}, "message": "an address that is no address"}
    for i, (name, doc) in enumerate((("riemann", ev.to_doc()), ("streams.index", gone.to_doc()),
                                     ("malformed", odd))):
        index = _test_index(f"streams-{name}-2026.11.24")
        docs.setdefault(index, []).append(doc)
        actions.append({"_op_type": "create", "_index": index, "_id": f"extra-{i}", "_source": doc})
    parser = LineParser(year=2024)
    for i, line in enumerate(wazuh_alert_lines()):
        doc = parser.parse(line).to_doc()
        index = _test_index("wazuh-alerts-4.x-" + doc["@timestamp"][:10].replace("-", "."))
        docs.setdefault(index, []).append(doc)
        actions.append({"_op_type": "create", "_index": index, "_id": f"wazuh-{i}", "_source": doc})
    ok, errors = helpers.bulk(es, actions, raise_on_error=False, refresh=True, chunk_size=1000)
    assert errors == [] and ok == len(actions)
    yield docs
    es.options(ignore_status=404).indices.delete(index=f"streams-t{RUN}-*,wazuh-alerts-4.x-t{RUN}*")


def _types(es: Elasticsearch, index: str, *fields: str) -> dict[str, set[str]]:
    """{field: the types it has across the indices of `index`}."""
    got = es.indices.get_field_mapping(index=index, fields=",".join(fields))
    out: dict[str, set[str]] = {f: set() for f in fields}
    for m in got.values():
        for f, spec in m["mappings"].items():
            (leaf,) = spec["mapping"].values()
            out[f].add(leaf["type"])
    return out


def test_every_sample_document_is_indexed_and_nothing_is_ignored(es, indexed):
    expected = sum(len(v) for v in indexed.values())
    assert es.count(index=f"streams-t{RUN}-*,wazuh-alerts-4.x-t{RUN}*")["count"] == expected
    r = es.search(index=f"streams-t{RUN}-*,wazuh-alerts-4.x-t{RUN}*", size=0,
                  query={"exists": {"field": "_ignored"}}, aggs={"f": {"terms": {"field": "_ignored"}}})
    # Only our one malformed address: ignore_malformed keeps the event, lists the field in _ignored.
    assert r["hits"]["total"]["value"] == 1
    assert [b["key"] for b in r["aggregations"]["f"]["buckets"]] == ["postfix.client_ip"]


def test_streams_indices_map_geo_points_addresses_numbers_and_text(es, indexed):
    t = _types(es, f"streams-t{RUN}-*", "source.geo.location", "destination.ip", "source.ip", "postfix.client_ip",
               "postfix.size", "postfix.delay", "postfix.nrcpt", "process.pid", "source.port", "message",
               "event.original", "event.dataset", "postfix.queueid", "fail2ban.found_time", "@timestamp",
               "riemann.metric", "riemann.ttl", "riemann.attributes", "service.state", "host.name")
    assert t == {
        "source.geo.location": {"geo_point"}, "destination.ip": {"ip"}, "source.ip": {"ip"},
        "postfix.client_ip": {"ip"}, "postfix.size": {"long"}, "postfix.delay": {"float"},
        "postfix.nrcpt": {"long"}, "process.pid": {"long"}, "source.port": {"long"}, "message": {"text"},
        "event.original": {"text"}, "event.dataset": {"keyword"}, "postfix.queueid": {"keyword"},
        "fail2ban.found_time": {"date"}, "@timestamp": {"date"}, "riemann.metric": {"double"},
        "riemann.ttl": {"double"}, "riemann.attributes": {"flattened"}, "service.state": {"keyword"},
        "host.name": {"keyword"},
    }


def test_wazuh_indices_keep_wazuh_types_and_map_ecs(es, indexed):
    t = _types(es, f"wazuh-alerts-4.x-t{RUN}*", "GeoLocation.location", "source.geo.location", "source.ip",
               "data.srcip", "rule.level", "rule.firedtimes", "rule.mail", "timestamp", "full_log", "message",
               "event.original", "agent.id", "rule.groups", "host.hostname", "log.syslog.priority",
               "syscheck.size_after", "syscheck.path")
    assert t == {
        "GeoLocation.location": {"geo_point"}, "source.geo.location": {"geo_point"}, "source.ip": {"ip"},
        "data.srcip": {"keyword"}, "rule.level": {"long"}, "rule.firedtimes": {"long"}, "rule.mail": {"boolean"},
        "timestamp": {"date"}, "full_log": {"text"}, "message": {"text"}, "event.original": {"text"},
        "agent.id": {"keyword"}, "rule.groups": {"keyword"}, "host.hostname": {"keyword"},
        "log.syslog.priority": {"long"}, "syscheck.size_after": {"long"}, "syscheck.path": {"keyword"},
    }
    settings = es.indices.get_settings(index=f"wazuh-alerts-4.x-t{RUN}*", flat_settings=True)
    for s in settings.values():
        assert s["settings"]["index.mapping.total_fields.limit"] == "10000"
    assert es.cluster.health(index=f"streams-t{RUN}-*,wazuh-alerts-4.x-t{RUN}*")["status"] == "green"


@pytest.mark.parametrize(("pattern", "field", "box"), [
    ("streams-t{run}-*", "source.geo.location", EUROPE),
    ("wazuh-alerts-4.x-t{run}*", "source.geo.location", EAST_ASIA),
    ("wazuh-alerts-4.x-t{run}*", "GeoLocation.location", EAST_ASIA),
])
def test_geo_bounding_box_and_geotile_grid(es, indexed, pattern, field, box):
    pattern = pattern.format(run=RUN)
    prefix = pattern.rstrip("*")
    expected = sum(_in_box(d, field, box) for name, ds in indexed.items() if name.startswith(prefix) for d in ds)
    assert expected > 0, "no sample document located in the box: GeoIP did not run?"
    r = es.search(index=pattern, size=0, track_total_hits=True,
                  query={"geo_bounding_box": {field: box}},
                  aggs={"tiles": {"geotile_grid": {"field": field, "precision": 6}}})
    assert r["hits"]["total"]["value"] == expected
    buckets = r["aggregations"]["tiles"]["buckets"]
    assert buckets and sum(b["doc_count"] for b in buckets) == expected


def test_without_the_templates_geo_would_not_be_a_geo_point(es, indexed):
    """The Fail2ban+ELK recipe's mistake, for contrast: an index no template matches maps the
    location as two floats and the address as text; Kibana's map has nothing to show."""
    index = f"untemplated-t{RUN}"
    doc = next(d for ds in indexed.values() for d in ds if "geo" in (d.get("source") or {}))
    try:
        es.index(index=index, document=doc, refresh=True)
        t = _types(es, index, "source.geo.location.lat", "source.geo.location", "source.ip")
        assert t == {"source.geo.location.lat": {"float"}, "source.geo.location": set(), "source.ip": {"text"}}
    finally:
        es.options(ignore_status=404).indices.delete(index=index)


def test_the_mapping_excerpt(es, indexed, capsys):
    """Prints the geo and address fields of `GET <index>/_mapping` (for the record)."""
    excerpt = {}
    for prefix in (f"streams-t{RUN}-sshd", f"wazuh-alerts-4.x-t{RUN}"):
        idx = sorted(n for n in indexed if n.startswith(prefix))[0]
        props = es.indices.get_mapping(index=idx)[idx]["mappings"]["properties"]
        src = props["source"]["properties"]
        cut = {"source": {"properties": {"ip": src["ip"], "geo": {"properties": {
            "location": src["geo"]["properties"]["location"]}}}}}
        if "GeoLocation" in props:
            cut["GeoLocation"] = {"properties": {"location": props["GeoLocation"]["properties"]["location"]}}
        excerpt[idx] = {"mappings": {"properties": cut}}
    with capsys.disabled():
        print(f"\nGET <index>/_mapping, excerpt:\n{json.dumps(excerpt, indent=2)}")
    for m in excerpt.values():
        assert m["mappings"]["properties"]["source"]["properties"]["geo"]["properties"]["location"] == {
            "type": "geo_point"}
