"""GeoIP enrichment: source addresses -> `source.geo.*` (City) and `source.as.*` (ASN).

MaxMind databases through `maxminddb` (its C extension when installed), an LRU cache in
front (attack traffic repeats addresses, so most lookups are hits), never a DNS lookup.
Private, loopback, link-local and reserved addresses are skipped quietly; a public
address the database does not know is tagged `_geoip_lookup_failure`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb

log = logging.getLogger("streams.geoip")

FAILURE_TAG = "_geoip_lookup_failure"
_SKIP = ()  # cached marker: not a public address, nothing to do


def default_city_database() -> Path | None:
    """The GeoLite2 City database of PyPI `maxminddb-geolite2`, when installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database
    except ImportError:
        return None
    p = Path(geolite2_database())
    return p if p.exists() else None


def _city_fields(rec: dict[str, Any]) -> dict[str, Any]:
    geo: dict[str, Any] = {}
    loc = rec.get("location") or {}
    if "latitude" in loc and "longitude" in loc:
        geo["location"] = {"lat": loc["latitude"], "lon": loc["longitude"]}
    if "time_zone" in loc:
        geo["timezone"] = loc["time_zone"]
    country = rec.get("country") or {}
    if "iso_code" in country:
        geo["country_iso_code"] = country["iso_code"]
    if (name := (country.get("names") or {}).get("en")) is not None:
        geo["country_name"] = name
    if (city := ((rec.get("city") or {}).get("names") or {}).get("en")) is not None:
        geo["city_name"] = city
    subs = rec.get("subdivisions") or []
    if subs:
        sub = subs[0]
        if (name := (sub.get("names") or {}).get("en")) is not None:
            geo["region_name"] = name
        if "iso_code" in sub and "iso_code" in country:
            geo["region_iso_code"] = f"{country['iso_code']}-{sub['iso_code']}"
    if (cont := (rec.get("continent") or {}).get("code")) is not None:
        geo["continent_code"] = cont
    if (postal := (rec.get("postal") or {}).get("code")) is not None:
        geo["postal_code"] = postal
    return geo


def _asn_fields(rec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "autonomous_system_number" in rec:
        out["number"] = rec["autonomous_system_number"]
    if "autonomous_system_organization" in rec:
        out["organization"] = {"name": rec["autonomous_system_organization"]}
    return out


@dataclass
class GeoIPConfig:
    city: Path | None = None
    asn: Path | None = None
    # (address field, target prefix): source.ip -> source.geo.*, source.as.*
    fields: list[tuple[str, str]] = field(default_factory=lambda: [
        ("source.ip", "source"), ("client.ip", "client"), ("data.srcip", "source")])
    cache_size: int = 65536


class GeoIP:
    def __init__(self, config: GeoIPConfig) -> None:
        self.config = config
        self.city = maxminddb.open_database(str(config.city)) if config.city else None
        self.asn = maxminddb.open_database(str(config.asn)) if config.asn else None
        self.paths = [(tuple(f.split(".")), target) for f, target in config.fields]
        self.lookup = lru_cache(maxsize=config.cache_size)(self._lookup)
        self.failures = 0
        self.enriched = 0

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, db in (("city", self.city), ("asn", self.asn)):
            if db is not None:
                md = db.metadata()
                out[name] = {"type": md.database_type, "build_epoch": md.build_epoch}
        return out

    def _lookup(self, ip: str) -> tuple[dict | None, dict | None] | tuple[()]:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return _SKIP
        if getattr(addr, "ipv4_mapped", None):
            addr = addr.ipv4_mapped
        if not addr.is_global:
            return _SKIP
        geo = asn = None
        if self.city is not None:
            rec = self.city.get(addr)
            geo = _city_fields(rec) if rec else None
        if self.asn is not None:
            rec = self.asn.get(addr)
            asn = _asn_fields(rec) if rec else None
        return geo or None, asn or None

    def enrich(self, fields: dict, tags: list[str]) -> None:
        for path, target in self.paths:
            cur: Any = fields
            for part in path:
                if not isinstance(cur, dict):
                    cur = None
                    break
                cur = cur.get(part)
                if cur is None:
                    break
            if not isinstance(cur, str):
                continue
            res = self.lookup(cur)
            if res is _SKIP:
                continue
            geo, asn = res
            if geo is None and asn is None:
                self.failures += 1
                if FAILURE_TAG not in tags:
                    tags.append(FAILURE_TAG)
                continue
            dest = fields.setdefault(target, {})
            if not isinstance(dest, dict):
                continue
            if geo is not None and "geo" not in dest:
                dest["geo"] = dict(geo)
            if asn is not None and "as" not in dest:
                dest["as"] = dict(asn)
            self.enriched += 1

    def cache_stats(self) -> dict[str, float]:
        info = self.lookup.cache_info()
        total = info.hits + info.misses
        return {"hits": info.hits, "misses": info.misses, "size": info.currsize,
                "hit_rate": info.hits / total if total else 0.0}

    def close(self) -> None:
        for db in (self.city, self.asn):
            if db is not None:
                db.close()


def build_geoip(city: Path | None, asn: Path | None, fields: Iterable[tuple[str, str]] | None = None,
                cache_size: int = 65536) -> GeoIP | None:
    if city is None and asn is None:
        return None
    cfg = GeoIPConfig(city=city, asn=asn, cache_size=cache_size)
    if fields is not None:
        cfg.fields = list(fields)
    return GeoIP(cfg)
