"""The Elasticsearch templates of mappings/ without a server: every file loads and is valid,
the composed result of each index template maps geo fields as geo_point, addresses as ip,
counts as numbers, message/event.original as text; the Wazuh one keeps Wazuh's types; the
documents our replay writes fit the explicit mappings; versions are raised with changes;
and the install decision and its I/O loop (against an in-memory client)."""

from __future__ import annotations

import datetime
import fnmatch
import ipaddress
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams import PROJECT_ROOT, __version__
from streams.event import Event
from streams.index.ttl import expired_event
from streams.sinks import es_templates as et

MAPPINGS = PROJECT_ROOT / "streams" / "mappings"
STREAMS_INDEX = "streams-postfix.log-2026.11.24"
WAZUH_INDEX = "wazuh-alerts-4.x-2026.11.24"


@pytest.fixture(scope="module")
def templates() -> list[et.Template]:
    return et.load_templates(MAPPINGS)


@pytest.fixture(scope="module")
def composed(templates) -> dict[str, dict]:
    """{"streams": ..., "wazuh": ...}: what an index of each pattern gets."""
    components = {t.name: t.body for t in templates if t.kind == et.COMPONENT}
    out = {}
    for key, index in (("streams", STREAMS_INDEX), ("wazuh", WAZUH_INDEX)):
        (tpl,) = [t for t in templates if t.kind == et.INDEX
                  and any(fnmatch.fnmatchcase(index, p) for p in t.body["index_patterns"])]
        out[key] = et.compose(tpl.body, components)
    return out


def ftype(composed_one: dict, path: str) -> str | None:
    m = et.field_mapping(composed_one["mappings"], path)
    return None if m is None else m.get("type", "object")


# -- the files ---------------------------------------------------------------------------------------

def test_the_folder_is_found_and_every_json_file_loads(templates):
    assert et.default_directory() == MAPPINGS
    files = sorted(MAPPINGS.glob("*_templates/*.json"))
    assert len(files) == len(templates) >= 2
    for f in files:
        assert isinstance(json.loads(f.read_text(encoding="utf-8")), dict), f
    kinds = {t.kind for t in templates}
    assert kinds == {et.COMPONENT, et.INDEX}
    order = [t.kind for t in templates]
    assert order == sorted(order, key=[et.COMPONENT, et.INDEX].index), "components are installed first"


def test_every_template_has_a_version_and_our_meta(templates):
    for t in templates:
        assert type(t.version) is int and t.version >= 1, t.path
        meta = t.body["_meta"]
        assert meta["project"] == "streams", t.path
        assert meta["project_version"] == __version__, t.path
        assert meta.get("description"), f"{t.path}: say what it is for in _meta.description"


def test_index_patterns_cover_our_index_names(templates):
    index = {t.name: t.body for t in templates if t.kind == et.INDEX}

    def matching(name):
        return sorted(n for n, b in index.items() if any(fnmatch.fnmatchcase(name, p) for p in b["index_patterns"]))

    assert matching(STREAMS_INDEX) == ["streams"]
    assert matching("streams-streams.index-2026.11.24") == ["streams"]   # the TTL index's expired events
    assert matching("streams-riemann-2026.11.24") == ["streams"]
    assert matching(WAZUH_INDEX) == ["streams-wazuh-alerts"]
    for b in index.values():
        assert b["priority"] > 0, "above templates created without a priority"
        custom = [c for c in b["composed_of"] if c.endswith("@custom")]
        assert custom == [b["composed_of"][-1]], "the operator's @custom component comes last"
        assert b["ignore_missing_component_templates"] == custom


def test_versions_are_raised_with_every_change(templates):
    """versions.lock.json records each template's version and content hash: a file changed
    without a higher version would never reach a server that has the old one."""
    lock = json.loads((MAPPINGS / et.LOCK_FILE).read_text())
    now = et.lock_entries(templates)
    problems = []
    for key, entry in now.items():
        old = lock.get(key)
        if old is None:
            problems.append(f"{key}: new, not in the lock")
        elif entry["version"] < old["version"]:
            problems.append(f"{key}: version went down ({old['version']} -> {entry['version']})")
        elif entry["version"] == old["version"] and entry["sha256"] != old["sha256"]:
            problems.append(f"{key}: changed but still version {entry['version']}: raise its version")
        elif entry != old:
            problems.append(f"{key}: version raised to {entry['version']}, lock not updated")
    problems += [f"{key}: in the lock, but no such file" for key in lock.keys() - now.keys()]
    assert not problems, "\n".join(problems) + "\nthen run: python -m streams.sinks.es_templates lock"


# -- what an index gets ------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["streams", "wazuh"])
@pytest.mark.parametrize("field", ["source.geo.location", "destination.geo.location", "client.geo.location",
                                   "server.geo.location", "geoip.location"])
def test_geo_fields_are_geo_points(composed, which, field):
    assert ftype(composed[which], field) == "geo_point"


def test_wazuh_geolocation_and_host_geo(composed):
    assert ftype(composed["wazuh"], "GeoLocation.location") == "geo_point"
    assert ftype(composed["streams"], "host.geo.location") == "geo_point"
    assert ftype(composed["wazuh"], "data.aws.service.action.networkConnectionAction.remoteIpDetails.geoLocation") \
        == "geo_point"


@pytest.mark.parametrize("which", ["streams", "wazuh"])
def test_any_other_geo_location_and_ip_are_typed_by_dynamic_rules(composed, which):
    rules = [next(iter(r.items())) for r in composed[which]["mappings"]["dynamic_templates"]]
    names = [n for n, _ in rules]
    assert names[-1] == "strings_as_keyword", "the catch-all string rule must come last"
    by = dict(rules)
    assert by["geo_location"] == {"path_match": "*.geo.location", "mapping": {"type": "geo_point"}}
    assert by["ip_addresses"]["path_match"] == "*.ip" and by["ip_addresses"]["mapping"] == {"type": "ip"}
    assert by["strings_as_keyword"] == {"match_mapping_type": "string",
                                        "mapping": {"type": "keyword", "ignore_above": 1024}}
    assert composed[which]["mappings"]["date_detection"] is False


@pytest.mark.parametrize("which", ["streams", "wazuh"])
@pytest.mark.parametrize("field", ["source.ip", "destination.ip", "client.ip", "server.ip", "related.ip",
                                   "source.nat.ip", "geoip.ip", "host.ip", "observer.ip"])
def test_addresses_are_ip(composed, which, field):
    assert ftype(composed[which], field) == "ip"


@pytest.mark.parametrize("field", ["postfix.client_ip", "postfix.relay_ip", "spamassassin.raddr"])
def test_streams_addresses_are_ip(composed, field):
    assert ftype(composed["streams"], field) == "ip"


@pytest.mark.parametrize("which", ["streams", "wazuh"])
def test_text_timestamp_and_ecs_core(composed, which):
    c = composed[which]
    assert ftype(c, "message") == "text"
    assert ftype(c, "event.original") == "text"
    assert et.field_mapping(c["mappings"], "@timestamp") == {"type": "date", "ignore_malformed": False}
    for f in ("event.dataset", "event.action", "event.outcome", "event.category", "tags", "user.name",
              "source.geo.country_iso_code", "source.geo.city_name", "source.as.organization.name",
              "source.address", "email.from.address"):
        assert ftype(c, f) == "keyword", f
    for f in ("event.severity", "source.port", "source.as.number", "destination.port"):
        assert ftype(c, f) == "long", f


@pytest.mark.parametrize(("field", "typ"), [
    ("process.pid", "long"), ("postfix.size", "long"), ("postfix.nrcpt", "long"), ("postfix.client_port", "long"),
    ("postfix.relay_port", "long"), ("postfix.status_code", "long"), ("postfix.cmd_ehlo", "long"),
    ("postfix.cmd_count_accepted", "long"), ("postfix.delay", "float"), ("postfix.delay_before_qmgr", "float"),
    ("postfix.delay_in_qmgr", "float"), ("postfix.delay_conn_setup", "float"),
    ("postfix.delay_transmission", "float"), ("fail2ban.ban_count", "long"), ("fail2ban.bantime", "double"),
    ("fail2ban.found_time", "date"), ("sshd.disconnect.code", "long"), ("spamassassin.score", "float"),
    ("spamassassin.size", "long"), ("riemann.metric", "double"), ("riemann.ttl", "double"),
    ("riemann.description", "keyword"), ("riemann.attributes", "flattened"), ("service.name", "keyword"),
    ("service.state", "keyword"), ("host.name", "keyword"), ("host.hostname", "keyword"),
    ("log.syslog.priority", "long"), ("log.syslog.facility.code", "long"), ("log.syslog.severity.name", "keyword"),
    ("log.syslog.structured_data", "flattened"), ("geoip.asn", "long"), ("geoip.latitude", "float"),
])
def test_streams_field_types(composed, field, typ):
    assert ftype(composed["streams"], field) == typ


# Learned from Wazuh's own template (wazuh/wazuh extensions/elasticsearch/7.x/wazuh-template.json):
# the types its Kibana app expects.
WAZUH_TYPES = [
    ("timestamp", "date"), ("@timestamp", "date"), ("location", "keyword"), ("id", "keyword"),
    ("full_log", "text"), ("previous_log", "text"), ("message", "text"), ("type", "text"), ("title", "keyword"),
    ("agent.id", "keyword"), ("agent.name", "keyword"), ("agent.ip", "keyword"), ("manager.name", "keyword"),
    ("cluster.node", "keyword"), ("rule.level", "long"), ("rule.firedtimes", "long"), ("rule.frequency", "long"),
    ("rule.mail", "boolean"), ("rule.id", "keyword"), ("rule.groups", "keyword"), ("rule.description", "keyword"),
    ("rule.mitre.technique", "keyword"), ("rule.pci_dss", "keyword"), ("decoder.name", "keyword"),
    ("decoder.fts", "long"), ("predecoder.timestamp", "keyword"), ("data.srcip", "keyword"),
    ("data.dstip", "keyword"), ("data.srcport", "keyword"), ("data.dstport", "keyword"), ("data.srcuser", "keyword"),
    ("data.dstuser", "keyword"), ("data.timestamp", "date"), ("data.port.local_ip", "ip"),
    ("data.port.remote_port", "long"), ("data.process.pid", "long"), ("data.hardware.cpu_mhz", "double"),
    ("data.sca.passed", "integer"), ("data.sca.total_checks", "keyword"), ("data.vulnerability.published", "date"),
    ("data.vulnerability.cvss.cvss3.base_score", "keyword"), ("data.aws.srcaddr", "ip"), ("data.aws.bytes", "long"),
    ("data.oscap.scan.score", "double"), ("data.cis.pass", "long"), ("data.audit.pid", "keyword"),
    ("syscheck.size_after", "long"), ("syscheck.mtime_after", "date"), ("syscheck.uid_after", "keyword"),
    ("GeoLocation.location", "geo_point"), ("GeoLocation.city_name", "keyword"),
    ("GeoLocation.country_name", "keyword"), ("GeoLocation.region_name", "keyword"),
    ("GeoLocation.latitude", "double"), ("GeoLocation.timezone", "text"), ("GeoLocation.area_code", "long"),
]


@pytest.mark.parametrize(("field", "typ"), WAZUH_TYPES)
def test_wazuh_layout_keeps_wazuh_types(composed, field, typ):
    assert ftype(composed["wazuh"], field) == typ


def test_wazuh_timestamp_format_reads_wazuh_offsets(composed):
    # Wazuh writes `2026-11-24T00:05:02.563+0000`; its template reads it with this format.
    assert et.field_mapping(composed["wazuh"]["mappings"], "timestamp")["format"] == "date_optional_time||epoch_millis"


def test_wazuh_host_is_the_ecs_object_not_wazuhs_keyword(composed):
    """The one deviation from Wazuh's types: its template maps a top-level `host` keyword (which
    alerts.json never has); alerts forwarded over syslog carry ECS host.hostname, which a
    keyword would reject, the whole alert with it."""
    assert ftype(composed["wazuh"], "host") == "object"
    assert ftype(composed["wazuh"], "host.hostname") == "keyword"
    assert ftype(composed["wazuh"], "log.syslog.priority") == "long"
    assert et.field_mapping(composed["streams"]["mappings"], "GeoLocation") is None


def test_settings(composed):
    s, w = composed["streams"]["settings"], composed["wazuh"]["settings"]
    for settings in (s, w):
        assert settings["index.number_of_shards"] == 1
        assert "index.number_of_replicas" not in settings, "replicas: auto-expanded, or the operator's @custom"
        assert settings["index.auto_expand_replicas"] == "0-1"
        assert settings["index.mapping.ignore_malformed"] is True
    assert w["index.mapping.total_fields.limit"] == 10000
    assert s["index.mapping.total_fields.limit"] >= 1000
    assert "message" in w["index.query.default_field"]


def test_explicit_fields_stay_well_under_the_field_limits(composed):
    def count(props):
        return sum(1 + count(v.get("properties", {})) for v in props.values())

    for which in ("streams", "wazuh"):
        n = count(composed[which]["mappings"]["properties"])
        assert n < composed[which]["settings"]["index.mapping.total_fields.limit"] // 2, (which, n)


# -- our documents fit the mappings --------------------------------------------------------------------

def _fits(typ: str, value, coerce: bool = False) -> bool:
    """Does a JSON value fit a field type? `coerce`: numbers in strings too, as Elasticsearch
    accepts them (Wazuh's JSON has `"size_after": "24"`); our own parsers write real numbers."""
    if typ in ("keyword", "text"):
        return isinstance(value, (str, int, float, bool))
    if coerce and isinstance(value, str) and typ in ("long", "integer", "float", "double"):
        try:
            value = float(value) if typ in ("float", "double") else int(value)
        except ValueError:
            return False
    if typ in ("long", "integer"):
        return isinstance(value, int) and not isinstance(value, bool)
    if typ in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if typ == "date":
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            return False
        return True
    if typ == "geo_point":
        return isinstance(value, dict) and set(value) == {"lat", "lon"}
    if typ == "flattened":
        return isinstance(value, dict)
    raise AssertionError(f"no check for {typ}")


def _misfits(doc: dict, mappings: dict, prefix: str = "", coerce: bool = False) -> list[str]:
    out = []
    props = mappings.get("properties", {})
    for key, value in doc.items():
        spec = props.get(key)
        path = prefix + key
        if spec is None:
            continue   # dynamic: strings become keywords
        typ = spec.get("type", "object")
        for v in value if isinstance(value, list) else [value]:
            if typ == "object":
                if not isinstance(v, dict):
                    out.append(f"{path}: {v!r} where an object is mapped")
                else:
                    out += _misfits(v, spec, path + ".", coerce)
            elif not _fits(typ, v, coerce):
                out.append(f"{path}: {v!r} does not fit {typ}")
    return out


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> dict[str, list[dict]]:
    """The sample logs through `streams replay` with the MaxMind test databases (they know the
    samples' addresses): {"streams": docs, "wazuh": docs}."""
    out = tmp_path_factory.mktemp("replay")
    geo = PROJECT_ROOT / "tests" / "data" / "geoip"
    subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(PROJECT_ROOT / "samples" / "logs"),
                    "--output", str(out), "--no-progress", "-q",
                    "--geoip-city", str(geo / "GeoIP2-City-Test.mmdb"),
                    "--geoip-asn", str(geo / "GeoLite2-ASN-Test.mmdb")],
                   check=True, capture_output=True, timeout=300, cwd=PROJECT_ROOT)
    docs: dict[str, list[dict]] = {"streams": [], "wazuh": []}
    for f in sorted((out / "elasticsearch").glob("*.ndjson")):
        lines = f.read_text(encoding="utf-8").splitlines()
        which = "wazuh" if f.name.startswith("wazuh-alerts-4.x-") else "streams"
        docs[which] += [json.loads(d) for d in lines[1::2]]
    return docs


def test_replayed_documents_fit_the_explicit_mappings(replayed, composed):
    assert len(replayed["streams"]) > 1000 and len(replayed["wazuh"]) > 100
    assert any("geo" in (d.get("source") or {}) for d in replayed["streams"]), "GeoIP gave no locations"
    assert any("GeoLocation" in d for d in replayed["wazuh"])
    for which, docs in replayed.items():
        problems = [p for d in docs for p in _misfits(d, composed[which]["mappings"], coerce=which == "wazuh")]
        assert not problems, problems[:20]


WAZUH_CORPUS = PROJECT_ROOT / "tests" / "data" / "wazuh" / "alerts" / "alerts.jsonl"
FORWARDED = [   # wazuh-csyslogd's default and old JSON formats: ECS host.*, process.*, log.syslog.* too
    "<132>Sep 18 16:05:21 wazuh-mgr ossec: Alert Level: 10; Rule: 5712 - sshd: brute force; Location: (web01) "
    "10.0.0.5->/var/log/secure; srcip: 81.2.69.142; user: root; Sep 18 16:05:20 web01 sshd[1]: Failed password",
    '<132>Sep 18 16:05:21 mgr ossec: {"crit":5,"id":5503,"component":"(web01) any->/var/log/secure",'
    '"classification":"pam,syslog,","description":"PAM: User login failed.","src_ip":"175.16.199.3"}',
]


def wazuh_alert_lines() -> list[str]:
    """Real Wazuh alerts (tests/data/wazuh: syslog-wrapped JSON, syscheck, MITRE, ...) and
    csyslogd-forwarded ones."""
    rows = [json.loads(line) for line in WAZUH_CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["raw"].replace("\n", "\\n") for r in rows] + FORWARDED


def test_wazuh_alerts_of_every_shape_fit(composed):
    from streams.parse.dispatch import LineParser

    parser = LineParser(year=2024)
    docs = [parser.parse(line).to_doc() for line in wazuh_alert_lines()]
    assert all((d.get("event") or {}).get("dataset") == "wazuh.alerts" for d in docs)
    assert any("host" in d for d in docs) and any("syscheck" in d for d in docs)
    problems = [p for d in docs for p in _misfits(d, composed["wazuh"]["mappings"], coerce=True)]
    assert not problems, problems


def test_riemann_and_expired_index_documents_fit(composed):
    ev = Event(time=1795478702.5, host="mx1", service="cpu", state="ok", metric=3, ttl=60,
               description="load", tags=["collectd"], attributes={"plugin": "cpu", "type_instance": "user"})
    ev.fields = {"event": {"dataset": "riemann"}}
    expired = expired_event("mx1", "fail2ban sshd", 1795478702.5)
    expired.fields = {"event": {"dataset": "streams.index"}}
    for doc in (ev.to_doc(), expired.to_doc()):
        assert not _misfits(doc, composed["streams"]["mappings"]), doc


# -- the decision -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ours", "theirs", "action"), [
    (3, None, et.INSTALLED),
    (3, {"version": 2}, et.UPGRADED),
    (3, {}, et.UPGRADED),                      # a template without a version (put by hand)
    (3, {"version": None}, et.UPGRADED),
    (3, {"version": 3}, et.UP_TO_DATE),
    (3, {"version": 4}, et.KEPT_NEWER),        # a newer streams put it there: never downgrade
    (1, {"version": 100}, et.KEPT_NEWER),
])
def test_decide(ours, theirs, action):
    assert et.decide(ours, theirs) == action


# -- the install loop, against an in-memory client ---------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ApiError({status}, {message!r})")
        self.status_code = status


class _Store:
    def __init__(self, kind: str, calls: list) -> None:
        self.kind, self.calls, self.data = kind, calls, {}
        self.race: dict | None = None  # a template another instance puts just before our create

    def get(self, name: str):
        self.calls.append(("get", self.kind, name))
        if name not in self.data:
            raise ApiError(404, f"{self.kind} template matching [{name}] not found")
        key = "component_templates" if self.kind == "component" else "index_templates"
        return {key: [{"name": name, f"{self.kind}_template": self.data[name]}]}

    def put(self, name: str, body: dict, create: bool = False):
        self.calls.append(("put", self.kind, name, create))
        if self.race is not None:
            self.data[name], self.race = self.race, None
        if create and name in self.data:
            raise ApiError(400, f"{self.kind} template [{name}] already exists")
        self.data[name] = body
        return {"acknowledged": True}


class FakeClient:
    def __init__(self) -> None:
        self.calls: list = []
        comp, idx = _Store("component", self.calls), _Store("index", self.calls)
        self.components, self.index = comp, idx
        self.cluster = type("C", (), {"get_component_template": lambda _, name: comp.get(name),
                                      "put_component_template": lambda _, name, body, create=False:
                                      comp.put(name, body, create)})()
        self.indices = type("I", (), {"get_index_template": lambda _, name: idx.get(name),
                                      "put_index_template": lambda _, name, body, create=False:
                                      idx.put(name, body, create)})()


def test_install_puts_components_before_index_templates_then_is_up_to_date(templates):
    client = FakeClient()
    done = et.install_templates(client, MAPPINGS)
    assert done == {t.name: et.INSTALLED for t in templates}
    puts = [c for c in client.calls if c[0] == "put"]
    assert [c[1] for c in puts] == ["component"] * sum(t.kind == et.COMPONENT for t in templates) \
        + ["index"] * sum(t.kind == et.INDEX for t in templates)
    assert all(c[3] is True for c in puts), "an absent template is created with create=true"
    body = client.index.data["streams"]
    assert body["version"] == 1 and body["_meta"]["project_version"] == __version__
    client.calls.clear()
    assert et.install_templates(client, MAPPINGS) == {t.name: et.UP_TO_DATE for t in templates}
    assert not [c for c in client.calls if c[0] == "put"]


def test_install_keeps_a_newer_one_and_upgrades_an_older_one(templates, caplog):
    client = FakeClient()
    et.install_templates(client, MAPPINGS)
    newer = {**client.components.data["streams@settings"], "version": 99}
    client.components.data["streams@settings"] = newer
    client.index.data["streams"] = {"index_patterns": ["streams-*"], "version": 0}
    del client.components.data["streams@wazuh"]
    client.calls.clear()
    with caplog.at_level(logging.INFO, logger=et.logger.name):
        done = et.install_templates(client, MAPPINGS)
    assert done["streams@settings"] == et.KEPT_NEWER
    assert client.components.data["streams@settings"] is newer
    assert done["streams"] == et.UPGRADED
    assert ("put", "index", "streams", False) in client.calls
    assert client.index.data["streams"]["version"] == 1
    assert done["streams@wazuh"] == et.INSTALLED
    others = {n: a for n, a in done.items() if n not in ("streams@settings", "streams", "streams@wazuh")}
    assert set(others.values()) == {et.UP_TO_DATE}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "99" in warned[0].getMessage() and warned[0].template == "streams@settings"


def test_install_race_another_instance_creates_it_first():
    client = FakeClient()
    client.components.race = {"version": 7}   # a newer streams created it between our get and put
    done = et.install_templates(client, MAPPINGS)
    assert done["streams@base"] == et.KEPT_NEWER
    assert client.components.data["streams@base"] == {"version": 7}


def test_install_raises_server_errors_other_than_not_found():
    client = FakeClient()

    def broken(name):
        raise ApiError(500, "boom")

    client.cluster.get_component_template = broken
    with pytest.raises(ApiError):
        et.install_templates(client, MAPPINGS)


def test_not_found_is_also_read_from_the_clients_meta():
    class Meta:
        status = 404

    class NotFound(Exception):
        meta = Meta()

    assert et.status_of(NotFound()) == 404
    assert et.status_of(ApiError(400, "x")) == 400
    assert et.status_of(ValueError()) is None


# -- validation and composition ---------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path) -> Path:
    shutil.copytree(MAPPINGS, tmp_path / "m")
    return tmp_path / "m"


def _edit(path: Path, change) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


@pytest.mark.parametrize(("file", "change", "message"), [
    ("component_templates/streams@base.json", lambda b: b.pop("version"), "version"),
    ("component_templates/streams@base.json", lambda b: b.update(version="2"), "version"),
    ("component_templates/streams@base.json", lambda b: b.update(version=0), "version"),
    ("component_templates/streams@base.json", lambda b: b.pop("_meta"), "_meta"),
    ("component_templates/streams@base.json", lambda b: b["_meta"].update(project="x"), "_meta"),
    ("component_templates/streams@base.json", lambda b: b.update(index_patterns=["x"]), "unknown keys"),
    ("component_templates/streams@base.json", lambda b: b["template"].update(mapping={}), "template"),
    ("index_templates/streams.json", lambda b: b["composed_of"].insert(0, "streams@nothing"), "streams@nothing"),
    ("index_templates/streams.json", lambda b: b.update(index_patterns=[]), "index_patterns"),
    ("index_templates/streams.json", lambda b: b.update(index_patterns=["wazuh-alerts-4.x-*"]), "priority"),
])
def test_invalid_files_are_refused_with_the_reason(folder, file, change, message):
    _edit(folder / file, change)
    with pytest.raises(et.TemplateError, match=message):
        et.load_templates(folder)


def test_broken_json_and_missing_folders(folder, tmp_path):
    (folder / "component_templates" / "streams@base.json").write_text("{ not json")
    with pytest.raises(et.TemplateError, match="streams@base.json"):
        et.load_templates(folder)
    with pytest.raises(et.TemplateError, match="missing folder"):
        et.load_templates(tmp_path / "nothing")


def test_compose_order_and_ignored_missing_components():
    comps = {
        "a": {"template": {"settings": {"index": {"number_of_shards": 1, "refresh_interval": "1s"}},
                           "mappings": {"dynamic_templates": [{"x": {"match": "a"}}, {"y": {"match": "a"}}],
                                        "properties": {"o": {"properties": {"f": {"type": "keyword"}}},
                                                       "g": {"type": "keyword"}}}}},
        "b": {"template": {"settings": {"index.number_of_shards": 2},
                           "mappings": {"dynamic_templates": [{"x": {"match": "b"}}],
                                        "properties": {"o": {"properties": {"h": {"type": "long"}}},
                                                       "g": {"type": "ip"}}}}},
    }
    tpl = {"composed_of": ["a", "b", "custom"], "ignore_missing_component_templates": ["custom"],
           "template": {"settings": {"refresh_interval": "5s"}}}
    c = et.compose(tpl, comps)
    assert c["settings"] == {"index.number_of_shards": 2, "index.refresh_interval": "5s"}
    assert c["mappings"]["dynamic_templates"] == [{"x": {"match": "b"}}, {"y": {"match": "a"}}]
    assert ftype(c, "o.f") == "keyword" and ftype(c, "o.h") == "long" and ftype(c, "g") == "ip"
    with pytest.raises(et.TemplateError, match="custom"):
        et.compose({"composed_of": ["a", "custom"]}, comps)
