"""GeoIP enrichment against MaxMind's test databases (tests/data/geoip, no network):
layouts, ASN fields, skipped ranges, the failure tag, the cache, hot reload by atomic
rename (and refusing damaged files), the age warning, and clear errors at startup."""

from __future__ import annotations

import logging
import os
import shutil
import socket

import pytest

from streams.clock import ManualClock
from streams.enrich.geoip import FAILURE_TAG, GeoIPError, build_geoip

DAY = 86400


@pytest.fixture(scope="session")
def geo_dir(data_dir):
    return data_dir / "geoip"


@pytest.fixture(scope="session")
def asn_db(geo_dir):
    return geo_dir / "GeoLite2-ASN-Test.mmdb"


@pytest.fixture(scope="session")
def built(city_db):
    import maxminddb
    with maxminddb.open_database(str(city_db)) as r:
        return r.metadata().build_epoch


@pytest.fixture
def clock(built):
    return ManualClock(built + DAY)  # a fresh database: no age warning unless a test wants one


@pytest.fixture
def make(clock):
    made = []

    def make(city=None, asn=None, **kw):
        kw.setdefault("clock", clock)
        g = build_geoip(city, asn, **kw)
        made.append(g)
        return g
    yield make
    for g in made:
        g.close()


@pytest.fixture
def geoip(make, city_db):
    return make(city_db)


@pytest.fixture
def logs(caplog, monkeypatch):
    # the CLI's setup_logging() stops propagation at `streams`: let caplog see our records
    monkeypatch.setattr(logging.getLogger("streams"), "propagate", True)
    caplog.set_level(logging.INFO, logger="streams.geoip")
    return caplog


def enrich(g, fields):
    tags = []
    g.enrich(fields, tags)
    return fields, tags


# -- ECS layout -------------------------------------------------------------------------------

def test_city_fields(geoip):
    fields, tags = enrich(geoip, {"source": {"ip": "81.2.69.142"}})
    geo = fields["source"]["geo"]
    assert geo["location"] == {"lat": 51.5142, "lon": -0.0931}
    assert geo["country_iso_code"] == "GB" and geo["city_name"] == "London"
    assert geo["country_name"] == "United Kingdom" and geo["timezone"] == "Europe/London"
    assert geo["continent_code"] == "EU" and geo["region_iso_code"] == "GB-ENG" and geo["region_name"] == "England"
    assert tags == [] and "as" not in fields["source"] and "geoip" not in fields and "GeoLocation" not in fields


def test_country_not_registered_country(geoip):
    fields, _ = enrich(geoip, {"source": {"ip": "216.160.83.56"}})
    assert fields["source"]["geo"]["country_iso_code"] == "US"  # registered_country is GB


def test_ipv6_and_ipv4_mapped(geoip):
    fields, _ = enrich(geoip, {"data": {"srcip": "2001:218::1"}})
    assert fields["source"]["geo"]["country_iso_code"] == "JP"
    fields, _ = enrich(geoip, {"source": {"ip": "::ffff:81.2.69.142"}})
    assert fields["source"]["geo"]["city_name"] == "London"


def test_client_ip_goes_to_client(geoip):
    fields, _ = enrich(geoip, {"client": {"ip": "89.160.20.115"}})
    assert fields["client"]["geo"]["city_name"] == "Linköping" and "source" not in fields


def test_asn_fields(make, city_db, asn_db):
    g = make(city_db, asn_db)
    fields, tags = enrich(g, {"source": {"ip": "89.160.20.115"}})
    assert fields["source"]["as"] == {"number": 29518, "organization": {"name": "Bredband2 AB"}}
    assert fields["source"]["geo"]["country_iso_code"] == "SE" and tags == []
    # in the ASN database only: AS fields, no geo, and not a failure
    fields, tags = enrich(g, {"source": {"ip": "1.0.0.1"}})
    assert fields["source"] == {"ip": "1.0.0.1", "as": {"number": 15169, "organization": {"name": "Google Inc."}}}
    assert tags == []
    fields, _ = enrich(g, {"source": {"ip": "216.160.83.56"}})
    assert fields["source"]["as"] == {"number": 209}  # no organization in that record
    fields, _ = enrich(g, {"source": {"ip": "2600:7000::1"}})
    assert fields["source"]["as"]["number"] == 6939


def test_asn_only(make, asn_db):
    g = make(None, asn_db)
    fields, tags = enrich(g, {"source": {"ip": "1.128.0.1"}})
    assert fields["source"]["as"]["organization"]["name"] == "Telstra Pty Ltd" and tags == []
    fields, tags = enrich(g, {"source": {"ip": "81.2.69.142"}})  # not in the ASN test database
    assert tags == [FAILURE_TAG]


def test_existing_fields_are_not_overwritten(geoip):
    fields, _ = enrich(geoip, {"source": {"ip": "81.2.69.142", "geo": {"city_name": "mine"}}})
    assert fields["source"]["geo"] == {"city_name": "mine"}


def test_enriched_geo_is_not_shared_between_events(make, city_db, asn_db):
    g = make(city_db, asn_db, layouts=["ecs", "logstash", "wazuh"])
    a, _ = enrich(g, {"source": {"ip": "89.160.20.115"}})
    b, _ = enrich(g, {"source": {"ip": "89.160.20.115"}})
    a["source"]["geo"]["city_name"] = "changed"
    a["source"]["geo"]["location"]["lat"] = 0.0
    a["source"]["as"]["organization"]["name"] = "changed"
    a["geoip"]["location"]["lat"] = 0.0
    a["GeoLocation"]["location"]["lat"] = 0.0
    assert b["source"]["geo"]["city_name"] == "Linköping" and b["source"]["geo"]["location"]["lat"] == 58.4167
    assert b["source"]["as"]["organization"]["name"] == "Bredband2 AB"
    assert b["geoip"]["location"]["lat"] == 58.4167 and b["GeoLocation"]["location"]["lat"] == 58.4167


# -- Logstash-legacy and Wazuh layouts --------------------------------------------------------

def test_logstash_layout(make, city_db, asn_db):
    g = make(city_db, asn_db, layouts=["logstash"])
    fields, _ = enrich(g, {"source": {"ip": "216.160.83.56"}})
    assert fields["geoip"] == {
        "ip": "216.160.83.56", "city_name": "Milton", "country_name": "United States",
        "country_code2": "US", "country_code3": "US",  # as logstash-filter-geoip: MaxMind has no alpha-3
        "continent_code": "NA", "region_name": "Washington", "region_code": "WA", "postal_code": "98354",
        "dma_code": 819, "timezone": "America/Los_Angeles", "latitude": 47.2513, "longitude": -122.3149,
        "location": {"lat": 47.2513, "lon": -122.3149}, "asn": 209}
    assert fields["source"] == {"ip": "216.160.83.56"}  # no ECS fields without the ecs layout
    fields, _ = enrich(g, {"source": {"ip": "89.160.20.115"}})
    assert fields["geoip"]["asn"] == 29518 and fields["geoip"]["as_org"] == "Bredband2 AB"
    fields, _ = enrich(g, {"source": {"ip": "1.0.0.1"}})  # ASN only
    assert fields["geoip"] == {"ip": "1.0.0.1", "asn": 15169, "as_org": "Google Inc."}


def test_wazuh_layout_with_ecs(make, city_db):
    g = make(city_db, layouts=["ecs", "wazuh"])
    fields, _ = enrich(g, {"source": {"ip": "81.2.69.142"}})
    assert fields["GeoLocation"] == {"city_name": "London", "country_name": "United Kingdom",
                                     "region_name": "England", "location": {"lat": 51.5142, "lon": -0.0931}}
    assert fields["source"]["geo"]["city_name"] == "London"


def test_per_document_layouts_take_the_first_address(make, city_db):
    g = make(city_db, layouts=["ecs", "logstash", "wazuh"])
    fields, _ = enrich(g, {"source": {"ip": "10.0.0.1"}, "client": {"ip": "89.160.20.115"},
                           "data": {"srcip": "81.2.69.142"}})
    assert fields["geoip"]["ip"] == "89.160.20.115" and fields["GeoLocation"]["city_name"] == "Linköping"
    assert fields["client"]["geo"]["city_name"] == "Linköping" and fields["source"]["geo"]["city_name"] == "London"


def test_wazuh_alert_gets_geolocation_by_default(make, city_db):
    g = make(city_db)  # layouts = ["ecs"]
    alert = {"event": {"dataset": "wazuh.alerts"}, "data": {"srcip": "175.16.199.1"}}
    fields, _ = enrich(g, alert)
    assert fields["GeoLocation"]["city_name"] == "Changchun" and fields["source"]["geo"]["country_iso_code"] == "CN"
    other, _ = enrich(g, {"event": {"dataset": "sshd.log"}, "source": {"ip": "175.16.199.1"}})
    assert "GeoLocation" not in other
    off = make(city_db, wazuh_alerts=False)
    fields, _ = enrich(off, {"event": {"dataset": "wazuh.alerts"}, "data": {"srcip": "175.16.199.1"}})
    assert "GeoLocation" not in fields


def test_wazuh_alert_through_the_parser(make, city_db):
    from streams.parse.dispatch import LineParser
    line = ('{"timestamp":"2026-01-01T00:00:00.000+0000","rule":{"level":5,"id":"5710"},'
            '"agent":{"id":"000","name":"m"},"manager":{"name":"m"},"id":"1.1","location":"journald",'
            '"data":{"srcip":"81.2.69.142","srcuser":"root"}}')
    ev = LineParser(year=2026).parse(line)
    make(city_db).enrich(ev.fields, ev.tags)
    doc = ev.to_doc()
    assert doc["GeoLocation"]["city_name"] == "London" and doc["source"]["geo"]["city_name"] == "London"


def test_wazuh_own_geolocation_is_kept(make, city_db):
    mine = {"city_name": "Berlin", "location": {"lat": 52.5, "lon": 13.4}}
    fields, _ = enrich(make(city_db, layouts=["wazuh"]), {"event": {"dataset": "wazuh.alerts"},
                                                          "data": {"srcip": "81.2.69.142"}, "GeoLocation": mine})
    assert fields["GeoLocation"] is mine


def test_configured_fields(make, city_db):
    g = make(city_db, fields={"postfix.client_ip": "source", "destination.ip": "destination"})
    fields, _ = enrich(g, {"postfix": {"client_ip": "81.2.69.142"}, "destination": {"ip": "89.160.20.115"},
                           "client": {"ip": "175.16.199.1"}})
    assert fields["source"]["geo"]["city_name"] == "London"
    assert fields["destination"]["geo"]["city_name"] == "Linköping"
    assert "geo" not in fields["client"]  # the default list was replaced


# -- skipped and failed addresses -------------------------------------------------------------

@pytest.mark.parametrize("ip", [
    "10.1.2.3", "172.16.0.1", "192.168.0.1", "127.0.0.1", "0.0.0.0", "169.254.1.1",  # private, loopback, link-local
    "100.64.0.1", "100.127.255.254",                                                 # CGNAT
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1",                       # documentation
    "198.18.0.1", "192.0.0.1", "240.0.0.1", "255.255.255.255",                       # benchmarking, IETF, reserved
    "224.0.0.1", "239.1.2.3", "ff02::1",                                             # multicast
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "::ffff:10.0.0.1",
])
def test_non_public_addresses_are_skipped_quietly(geoip, ip):
    fields, tags = enrich(geoip, {"source": {"ip": ip}})
    assert fields == {"source": {"ip": ip}} and tags == []
    s = geoip.stats()
    assert s["skipped_private"] == 1 and s["failures"] == 0 and s["enriched"] == 0


def test_hostnames_are_never_resolved(geoip, monkeypatch):
    def no_dns(*a, **kw):
        raise AssertionError("DNS lookup")
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        monkeypatch.setattr(socket, name, no_dns)
    for value in ("mail.example.com", "localhost", "not-an-ip", "", "81.2.69.142:22", "unknown"):
        fields, tags = enrich(geoip, {"source": {"ip": value}})
        assert "geo" not in fields["source"] and tags == [], value
    assert geoip.stats()["skipped_invalid"] == 6
    fields, tags = enrich(geoip, {"source": {"ip": 1234}})  # not a string: not ours to look at
    assert tags == [] and geoip.stats()["skipped_invalid"] == 6


def test_public_address_not_in_database_is_tagged(geoip):
    fields, tags = enrich(geoip, {"source": {"ip": "8.8.8.8"}, "client": {"ip": "1.1.1.1"}})
    assert tags == [FAILURE_TAG] and "geo" not in fields["source"]
    tags = ["already", FAILURE_TAG]
    geoip.enrich({"source": {"ip": "8.8.4.4"}}, tags)
    assert tags == ["already", FAILURE_TAG]
    assert geoip.stats()["failures"] == 3


# -- cache and stats --------------------------------------------------------------------------

def test_cache_hit_rate(geoip):
    for _ in range(5):
        geoip.enrich({"source": {"ip": "89.160.20.115"}}, [])
    s = geoip.stats()
    assert (s["lookups"], s["misses"], s["hits"], s["hit_rate"], s["enriched"]) == (5, 1, 4, 0.8, 5)
    c = geoip.cache_stats()  # the replay summary's view
    assert c == {"hits": 4, "misses": 1, "size": 1, "hit_rate": 0.8}


def test_cache_is_bounded(make, city_db):
    g = make(city_db, cache_size=2)
    for ip in ("81.2.69.142", "81.2.69.143", "89.160.20.115", "89.160.20.116", "81.2.69.142"):
        g.enrich({"source": {"ip": ip}}, [])
    s = g.stats()
    assert s["cache_entries"] == 2 and s["misses"] == 5 and s["hits"] == 0
    off = make(city_db, cache_size=0)
    for _ in range(3):
        fields, _ = enrich(off, {"source": {"ip": "81.2.69.142"}})
    assert fields["source"]["geo"]["city_name"] == "London" and off.stats()["hits"] == 0


def test_stats_database_age(make, city_db, asn_db, clock, built):
    g = make(city_db, asn_db)
    s = g.stats()
    assert s["city_build_epoch"] == built and s["city_age_days"] == 1.0 and "asn_age_days" in s
    assert g.stats(now=built + 10 * DAY)["city_age_days"] == 10.0
    assert s["reloads"] == 0 and s["reload_failures"] == 0
    assert all(isinstance(v, int | float) for v in s.values())  # flat numbers, for telemetry
    assert g.describe()["city"]["type"] == "GeoIP2-City"


# -- hot reload -------------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path, geo_dir, make, clock):
    """A GeoLite2 City test database at a path of our own, as geoipupdate maintains it."""
    path = tmp_path / "GeoLite2-City.mmdb"
    shutil.copyfile(geo_dir / "GeoLite2-City-Test.mmdb", path)
    return path, make(path, reload_check_seconds=60)


def replace(path, source=None, data=None):
    """geoipupdate's way: write a temporary file, rename it over the old one."""
    tmp = path.with_suffix(".tmp")
    if source is not None:
        shutil.copyfile(source, tmp)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def test_hot_reload_by_atomic_rename(live, geo_dir, clock, logs):
    path, g = live
    assert g.maybe_reload(clock.now()) is False  # nothing changed
    fields, tags = enrich(g, {"source": {"ip": "214.0.0.1"}})  # not in GeoLite2-City-Test
    assert tags == [FAILURE_TAG]
    assert enrich(g, {"source": {"ip": "214.78.0.1"}})[0]["source"]["geo"]["city_name"] == "San Diego"
    replace(path, geo_dir / "GeoIP2-City-Test.mmdb")
    clock.advance(30)
    assert g.maybe_reload(clock.now()) is False  # not yet time to look
    assert enrich(g, {"source": {"ip": "214.0.0.1"}})[1] == [FAILURE_TAG]
    clock.advance(31)
    assert g.maybe_reload(clock.now()) is True
    fields, tags = enrich(g, {"source": {"ip": "214.0.0.1"}})  # the cached failure was cleared
    assert fields["source"]["geo"]["city_name"] == "Singapore" and tags == []
    assert "geo" not in enrich(g, {"source": {"ip": "214.78.0.1"}})[0]["source"]  # not in GeoIP2-City-Test
    s = g.stats()
    assert s["reloads"] == 1 and s["reload_failures"] == 0 and g.describe()["city"]["type"] == "GeoIP2-City"
    assert s["lookups"] == 5 and s["misses"] == 4  # counts survive the cache being cleared
    assert any("reloaded" in r.getMessage() for r in logs.records)
    clock.advance(61)
    assert g.maybe_reload(clock.now()) is False  # the new file is the loaded one


def test_reload_uses_the_injected_clock(live, geo_dir, clock):
    path, g = live
    replace(path, geo_dir / "GeoIP2-City-Test.mmdb")
    assert g.maybe_reload() is True  # no time given: the clock's, first check is immediate
    replace(path, geo_dir / "GeoLite2-City-Test.mmdb")
    assert g.maybe_reload() is False
    clock.advance(60)
    assert g.maybe_reload() is True and g.describe()["city"]["type"] == "GeoLite2-City"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "asn_in_city_slot"])
def test_damaged_replacement_keeps_the_old_database(live, geo_dir, asn_db, clock, logs, damage):
    path, g = live
    good = (geo_dir / "GeoIP2-City-Test.mmdb").read_bytes()
    g.maybe_reload(clock.now())
    if damage == "asn_in_city_slot":
        replace(path, asn_db)
    else:
        replace(path, data={"truncated": good[: len(good) // 2], "garbage": os.urandom(20000), "empty": b""}[damage])
    clock.advance(60)
    assert g.maybe_reload(clock.now()) is False
    fields, _ = enrich(g, {"source": {"ip": "214.78.0.1"}})
    assert fields["source"]["geo"]["city_name"] == "San Diego"  # still the GeoLite2 data
    assert g.stats()["reload_failures"] == 1 and g.stats()["reloads"] == 0
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage() and errors[0].reason
    # the same broken file is not retried (nor logged, nor counted) at every check
    for _ in range(3):
        clock.advance(60)
        assert g.maybe_reload(clock.now()) is False
    assert g.stats()["reload_failures"] == 1 and len([r for r in logs.records if r.levelno == logging.ERROR]) == 1
    # a good file after it is picked up
    replace(path, data=good)
    clock.advance(60)
    assert g.maybe_reload(clock.now()) is True
    assert enrich(g, {"source": {"ip": "214.0.0.1"}})[0]["source"]["geo"]["city_name"] == "Singapore"


def test_missing_file_during_reload_keeps_the_old_database(live, geo_dir, clock, logs):
    path, g = live
    path.unlink()
    clock.advance(60)
    assert g.maybe_reload(clock.now()) is False
    clock.advance(60)
    assert g.maybe_reload(clock.now()) is False
    assert g.stats()["reload_failures"] == 1
    assert enrich(g, {"source": {"ip": "81.2.69.142"}})[0]["source"]["geo"]["city_name"] == "London"
    shutil.copyfile(geo_dir / "GeoIP2-City-Test.mmdb", path)
    clock.advance(60)
    assert g.maybe_reload(clock.now()) is True


def test_reload_checks_are_throttled(live, clock, monkeypatch):
    path, g = live
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **kw: calls.append(p) or real_stat(p, *a, **kw))
    for _ in range(100):
        g.maybe_reload(clock.now())
        clock.advance(1)
    assert len(calls) == 2  # at t=0 and t=60


# -- database age -----------------------------------------------------------------------------

def test_age_warning_once_per_load(tmp_path, geo_dir, make, built, logs):
    clock = ManualClock(built + 45 * DAY)
    path = tmp_path / "city.mmdb"
    shutil.copyfile(geo_dir / "GeoLite2-City-Test.mmdb", path)
    g = make(path, clock=clock)
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "45 days old" in warnings[0].getMessage() and str(path) in warnings[0].getMessage()
    for _ in range(100):
        g.enrich({"source": {"ip": "81.2.69.142"}}, [])
    g.maybe_reload(clock.now())
    assert len([r for r in logs.records if r.levelno == logging.WARNING]) == 1
    replace(path, geo_dir / "GeoIP2-City-Test.mmdb")  # as old: a new load warns again
    clock.advance(60)
    assert g.maybe_reload(clock.now())
    assert len([r for r in logs.records if r.levelno == logging.WARNING]) == 2
    assert g.stats()["city_age_days"] == 45.0


def test_age_warning_threshold(make, city_db, built, logs):
    make(city_db, clock=ManualClock(built + 29 * DAY))
    make(city_db, clock=ManualClock(built + 400 * DAY), max_age_days=0)  # 0: never
    assert not [r for r in logs.records if r.levelno >= logging.WARNING]
    make(city_db, clock=ManualClock(built + 8 * DAY), max_age_days=7)
    assert len([r for r in logs.records if r.levelno == logging.WARNING]) == 1


# -- errors at startup ------------------------------------------------------------------------

def test_missing_database_is_a_clear_error(tmp_path, make):
    with pytest.raises(GeoIPError, match=r"city database .*nope\.mmdb: No such file"):
        make(tmp_path / "nope.mmdb")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, "truncated"])
def test_garbage_database_is_a_clear_error(tmp_path, make, city_db, asn_db, content):
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(city_db.read_bytes()[:5000] if content == "truncated" else content)
    with pytest.raises(GeoIPError, match=r"asn database .*bad\.mmdb: not a readable MaxMind DB"):
        make(None, bad)
    with pytest.raises(GeoIPError, match=r"city database .*bad\.mmdb"):
        make(bad, asn_db)  # and the ASN database opened first is closed again


def test_wrong_kind_of_database_is_a_clear_error(make, city_db, asn_db):
    with pytest.raises(GeoIPError, match="is a GeoIP2-City database, expected ASN or ISP"):
        make(None, city_db)
    with pytest.raises(GeoIPError, match="is a GeoLite2-ASN database, expected City or Country"):
        make(asn_db)


def test_bad_settings_are_clear_errors(make, city_db):
    with pytest.raises(GeoIPError, match="layouts"):
        make(city_db, layouts=["ecs", "kibana"])
    with pytest.raises(GeoIPError, match="layouts must be a list"):
        make(city_db, layouts="ecs")
    with pytest.raises(GeoIPError, match="fields"):
        make(city_db, fields={"source.ip": 3})
    with pytest.raises(GeoIPError, match="fields"):
        make(city_db, fields={"source..ip": "source"})


def test_settings_from_the_config_file(tmp_path, city_db, asn_db):
    from streams.commands.replay import build_stages
    from streams.config import ConfigError, load_config
    conf = tmp_path / "streams.toml"
    conf.write_text(f'[geoip]\ncity = "{city_db}"\nasn = "{asn_db}"\nlayouts = ["ecs", "logstash"]\n'
                    'max_age_days = 0\nreload_check_seconds = 5\n[geoip.fields]\n"postfix.client_ip" = "source"\n')
    cfg = load_config(conf)
    _, g = build_stages(cfg)
    try:
        assert g.config.layouts == ("ecs", "logstash") and g.config.reload_check_seconds == 5
        fields, _ = enrich(g, {"postfix": {"client_ip": "89.160.20.115"}})
        assert fields["source"]["as"]["number"] == 29518 and fields["geoip"]["city_name"] == "Linköping"
    finally:
        g.close()
    cfg.geoip.city = tmp_path / "missing.mmdb"
    with pytest.raises(ConfigError, match=r"\[geoip\] city database .*missing\.mmdb: No such file"):
        build_stages(cfg)


def test_same_address_in_two_fields_is_looked_up_once(geoip):
    fields, _ = enrich(geoip, {"event": {"dataset": "wazuh.alerts"}, "source": {"ip": "81.2.69.142"},
                               "data": {"srcip": "81.2.69.142"}})
    assert fields["source"]["geo"]["city_name"] == "London" and fields["GeoLocation"]["city_name"] == "London"
    s = geoip.stats()
    assert s["lookups"] == 1 and s["enriched"] == 1
    fields, _ = enrich(geoip, {"source": {"ip": "89.160.20.115"}, "client": {"ip": "89.160.20.115"}})
    assert fields["client"]["geo"] == fields["source"]["geo"]  # another target: filled too


def test_public_table_agrees_with_ipaddress():
    """Our table against the standard library (is_global, minus multicast and reserved),
    over random addresses; they differ only inside 192.0.0.0/24, which we skip whole."""
    import ipaddress
    import random

    from streams.enrich.geoip import _NOT_PUBLIC, _address, _is_public

    def stdlib(a):
        return a.is_global and not a.is_multicast and not a.is_reserved and not (a.version == 6 and a.is_site_local)
    rng = random.Random(5)
    samples = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(5000)]
    samples += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(2000)]
    samples += [ipaddress.IPv6Address(0x2 << 124 | rng.getrandbits(124)) for _ in range(5000)]  # 2000::/4
    for net in map(ipaddress.ip_network, (x for nets in _NOT_PUBLIC.values() for x in nets)):  # the edges
        first, last = int(net.network_address), int(net.broadcast_address)
        samples += [ipaddress.ip_address(x) if net.version == 4 else ipaddress.IPv6Address(x)
                    for x in (first - 1, first, last, last + 1) if 0 <= x < 2 ** net.max_prefixlen]
    for a in samples:
        version, n, text = _address(str(a))
        if a.version == 6 and a.ipv4_mapped:
            a = a.ipv4_mapped
        assert (version, n, text) == (a.version, int(a), str(a))
        if a not in ipaddress.ip_network("192.0.0.0/24"):
            assert _is_public(version, n) == stdlib(a), a


def test_addresses_are_canonical(make, city_db):
    g = make(city_db, layouts=["logstash"])
    fields, _ = enrich(g, {"source": {"ip": "2001:0218:0000:0000::0001"}})
    assert fields["geoip"]["ip"] == "2001:218::1" and fields["geoip"]["country_code2"] == "JP"
    fields, _ = enrich(g, {"source": {"ip": "::FFFF:81.2.69.142"}})
    assert fields["geoip"]["ip"] == "81.2.69.142"
    fields, tags = enrich(g, {"source": {"ip": "081.2.69.142"}})  # leading zeros: ambiguous (octal?), not an address
    assert "geoip" not in fields and tags == [] and g.stats()["skipped_invalid"] == 1


def test_age_warning_when_a_loaded_database_grows_old(tmp_path, geo_dir, make, built, logs):
    """A database fresh at start that is never updated (geoipupdate broken) must be warned
    about once it passes the age, not only if the process happens to be restarted."""
    clock = ManualClock(built + 20 * DAY)
    path = tmp_path / "city.mmdb"
    shutil.copyfile(geo_dir / "GeoLite2-City-Test.mmdb", path)
    g = make(path, clock=clock)
    g.maybe_reload(clock.now())
    assert not [r for r in logs.records if r.levelno == logging.WARNING]
    clock.advance(11 * DAY)
    g.maybe_reload(clock.now())
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "31 days old" in warnings[0].getMessage()
    clock.advance(DAY)
    g.maybe_reload(clock.now())  # once per loaded database, not at every check
    assert len([r for r in logs.records if r.levelno == logging.WARNING]) == 1


def _mmdb(value) -> bytes:
    """One value in the MaxMind DB format (the few types a tiny database needs)."""
    def head(kind: int, size: int) -> bytes:
        assert size < 29
        return bytes([kind << 5 | size]) if kind <= 7 else bytes([size, kind - 7])
    if isinstance(value, str):
        data = value.encode()
        return head(2, len(data)) + data
    if isinstance(value, tuple):  # (type, n): uint16 (5), uint32 (6), uint64 (9)
        kind, n = value
        data = n.to_bytes(8, "big").lstrip(b"\0")
        return head(kind, len(data)) + data
    if isinstance(value, list):
        return head(11, len(value)) + b"".join(map(_mmdb, value))
    return head(7, len(value)) + b"".join(_mmdb(k) + _mmdb(v) for k, v in value.items())


def ipv4_only_city_db(path, record: dict) -> None:
    """An IPv4-only City database (as DB-IP's and IP2Location's lite ones are) that knows
    `record` for every address: one tree node, both halves pointing at the record."""
    node_count = 1
    pointer = (node_count + 16).to_bytes(3, "big")  # 24-bit records: data offset 0
    meta = {"node_count": (6, node_count), "record_size": (5, 24), "ip_version": (5, 4),
            "database_type": "GeoIP2-City", "languages": ["en"], "binary_format_major_version": (5, 2),
            "binary_format_minor_version": (5, 0), "build_epoch": (9, 1_700_000_000),
            "description": {"en": "IPv4 only"}}
    path.write_bytes(pointer * 2 + bytes(16) + _mmdb(record) + b"\xab\xcd\xefMaxMind.com" + _mmdb(meta))


def test_an_ipv6_address_and_an_ipv4_only_database_is_a_lookup_failure_not_a_crash(make, tmp_path):
    # the native reader raises for an IPv6 address in an IPv4-only database; GeoIP must
    # take it as "not found" (a real file now: the reader is no Python object to wrap)
    path = tmp_path / "ipv4-only.mmdb"
    ipv4_only_city_db(path, {"city": {"names": {"en": "London"}}, "country": {"iso_code": "GB"}})
    import maxminddb  # the reference reader agrees it is a valid IPv4-only database
    with maxminddb.open_database(str(path)) as r:
        assert r.metadata().ip_version == 4 and r.get("81.2.69.142")["city"]["names"]["en"] == "London"
    geoip = make(path, max_age_days=0)
    fields, tags = enrich(geoip, {"source": {"ip": "2001:218::1"}})
    assert tags == [FAILURE_TAG] and "geo" not in fields["source"]
    fields, tags = enrich(geoip, {"source": {"ip": "81.2.69.142"}})
    assert fields["source"]["geo"]["city_name"] == "London" and tags == []
