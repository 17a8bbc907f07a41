import pytest

from streams.enrich.geoip import FAILURE_TAG, build_geoip


@pytest.fixture
def geoip(city_db):
    g = build_geoip(city_db, None)
    yield g
    g.close()


def test_city_fields(geoip):
    fields, tags = {"source": {"ip": "81.2.69.142"}}, []
    geoip.enrich(fields, tags)
    geo = fields["source"]["geo"]
    assert geo["location"] == {"lat": 51.5142, "lon": -0.0931}
    assert geo["country_iso_code"] == "GB" and geo["city_name"] == "London"
    assert geo["country_name"] == "United Kingdom" and geo["timezone"] == "Europe/London"
    assert geo["continent_code"] == "EU" and geo["region_iso_code"] == "GB-ENG" and geo["region_name"] == "England"
    assert tags == []


def test_country_not_registered_country(geoip):
    fields = {"source": {"ip": "216.160.83.56"}}
    geoip.enrich(fields, [])
    assert fields["source"]["geo"]["country_iso_code"] == "US"  # registered_country is GB


def test_private_skipped_quietly_public_unknown_tagged(geoip):
    for ip in ("10.1.2.3", "127.0.0.1", "192.168.0.1", "fe80::1", "::1", "not-an-ip"):
        fields, tags = {"source": {"ip": ip}}, []
        geoip.enrich(fields, tags)
        assert "geo" not in fields["source"] and tags == [], ip
    fields, tags = {"source": {"ip": "8.8.8.8"}}, []
    geoip.enrich(fields, tags)
    assert tags == [FAILURE_TAG] and "geo" not in fields["source"]


def test_ipv6_and_wazuh_field(geoip):
    fields = {"data": {"srcip": "2001:218::1"}}
    geoip.enrich(fields, [])
    assert fields["source"]["geo"]["country_iso_code"] == "JP"


def test_cache_counts_hits(geoip):
    for _ in range(5):
        geoip.enrich({"source": {"ip": "89.160.20.115"}}, [])
    s = geoip.cache_stats()
    assert s["misses"] == 1 and s["hits"] == 4 and s["hit_rate"] == 0.8


def test_enriched_geo_is_not_shared_between_events(geoip):
    a, b = {"source": {"ip": "81.2.69.142"}}, {"source": {"ip": "81.2.69.142"}}
    geoip.enrich(a, [])
    geoip.enrich(b, [])
    a["source"]["geo"]["city_name"] = "changed"
    assert b["source"]["geo"]["city_name"] == "London"
