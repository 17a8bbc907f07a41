"""GeoIP enrichment: source addresses -> geo and AS fields, in one or more layouts.

MaxMind databases through `maxminddb` (its C extension when installed), an LRU cache in
front (attack traffic repeats addresses, so most lookups are hits), never a DNS lookup.

Layouts (`layouts`, any of them together):
- `ecs` (default): `<target>.geo.*` (City) and `<target>.as.*` (ASN), where the target
  comes from the address field (`source.ip` -> `source`, `client.ip` -> `client`).
- `logstash`: the legacy (non-ECS) layout of logstash-filter-geoip, `geoip.*`. Like that
  filter, `country_code3` holds the ISO alpha-2 code: MaxMind has no alpha-3 codes.
- `wazuh`: `GeoLocation.{city_name, country_name, region_name, location}`, the properties
  of Wazuh's own Filebeat ingest pipeline, which its index template and app read.
`logstash` and `wazuh` are one per document: the first address of `fields` that resolves
fills them. A Wazuh alert (`event.dataset: wazuh.alerts`) gets `GeoLocation` even without
the `wazuh` layout (`wazuh_alerts`, on by default), so Wazuh's app works. A field already
in the document is never overwritten (Wazuh's own `GeoLocation` stays).

Private, loopback, link-local, CGNAT, documentation, multicast and reserved addresses are
skipped quietly, as are values that are not addresses (a hostname is never resolved);
both are counted. A public address neither database knows is tagged
`_geoip_lookup_failure`.

Hot reload: `maybe_reload(now)` is called by the owner of the GeoIP object (the live
pipeline, from a periodic task on the event loop), never from `enrich()`: the hot path
stays flat, and a replay uses one database from start to end, so its output does not
depend on when an update landed. At most every `reload_check_seconds` it stats the files;
a changed one (new inode, mtime or size: geoipupdate writes a temporary file and renames
it) is opened, validated and swapped in, and the cache cleared. A file that cannot be used
keeps the loaded database, is logged and counted, and is retried only once it changes
again. Files are memory-mapped: replace them by rename, never by writing in place.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, NamedTuple

import maxminddb

from ..clock import Clock, SystemClock

log = logging.getLogger("streams.geoip")

FAILURE_TAG = "_geoip_lookup_failure"
LAYOUTS = ("ecs", "logstash", "wazuh")
DEFAULT_FIELDS = (("source.ip", "source"), ("client.ip", "client"), ("data.srcip", "source"))
WAZUH_DATASET = "wazuh.alerts"
_DAY = 86400.0
# Probe lookups of a new database: MaxMind test networks and well-known public resolvers.
_PROBES = ("81.2.69.142", "1.0.0.1", "8.8.8.8", "89.160.20.115", "216.160.83.56")
_PROBES6 = ("2001:218::1", "2001:4860:4860::8888")
# database_type words accepted per slot: a City/Country file in the ASN slot (or the
# reverse) would make every public address a lookup failure.
_KINDS = {"city": ("City", "Country"), "asn": ("ASN", "ISP")}


class GeoIPError(ValueError):
    """A GeoIP setting or database cannot be used; the message names the path and why."""


class _Skip:
    """A cached lookup result that is not a record (the name is what stats() counts)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_PRIVATE = _Skip("skipped_private")  # not a public address
_INVALID = _Skip("skipped_invalid")  # not an address at all (a hostname, garbage)
_NOT_FOUND = _Skip("failures")       # public, but in no database
_EMPTY: dict = {}


class _Found(NamedTuple):
    """Per-layout fragments of one address, built once per cache miss (None: absent)."""

    geo: dict | None
    asn: dict | None
    logstash: dict | None
    wazuh: dict | None


def default_city_database() -> Path | None:
    """The GeoLite2 City database of PyPI `maxminddb-geolite2`, when installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database
    except ImportError:
        return None
    p = Path(geolite2_database())
    return p if p.exists() else None


def _en(rec: dict | None) -> str | None:
    return ((rec or {}).get("names") or {}).get("en")


def _city_fields(rec: dict[str, Any]) -> dict[str, Any]:
    geo: dict[str, Any] = {}
    loc = rec.get("location") or {}
    if "latitude" in loc and "longitude" in loc:
        geo["location"] = {"lat": loc["latitude"], "lon": loc["longitude"]}
    if "time_zone" in loc:
        geo["timezone"] = loc["time_zone"]
    country = rec.get("country") or {}  # not registered_country: where the address is
    if "iso_code" in country:
        geo["country_iso_code"] = country["iso_code"]
    if (name := _en(country)) is not None:
        geo["country_name"] = name
    if (city := _en(rec.get("city"))) is not None:
        geo["city_name"] = city
    subs = rec.get("subdivisions") or []
    if subs:
        sub = subs[0]
        if (name := _en(sub)) is not None:
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


def _logstash_fields(ip: str, city: dict | None, asn: dict | None) -> dict[str, Any]:
    """logstash-filter-geoip's legacy `geoip.*` (its default City and ASN field sets)."""
    out: dict[str, Any] = {"ip": ip}
    if city:
        loc = city.get("location") or {}
        country = city.get("country") or {}
        if (v := _en(city.get("city"))) is not None:
            out["city_name"] = v
        if (v := _en(country)) is not None:
            out["country_name"] = v
        if "iso_code" in country:
            out["country_code2"] = out["country_code3"] = country["iso_code"]
        if (v := (city.get("continent") or {}).get("code")) is not None:
            out["continent_code"] = v
        subs = city.get("subdivisions") or []
        if subs:
            if (v := _en(subs[0])) is not None:
                out["region_name"] = v
            if "iso_code" in subs[0]:
                out["region_code"] = subs[0]["iso_code"]
        if (v := (city.get("postal") or {}).get("code")) is not None:
            out["postal_code"] = v
        if "metro_code" in loc:
            out["dma_code"] = loc["metro_code"]
        if "time_zone" in loc:
            out["timezone"] = loc["time_zone"]
        if "latitude" in loc and "longitude" in loc:
            out["latitude"], out["longitude"] = loc["latitude"], loc["longitude"]
            out["location"] = {"lat": loc["latitude"], "lon": loc["longitude"]}
    if asn:
        if "autonomous_system_number" in asn:
            out["asn"] = asn["autonomous_system_number"]
        if "autonomous_system_organization" in asn:
            out["as_org"] = asn["autonomous_system_organization"]
    return out


_WAZUH_KEYS = ("city_name", "country_name", "region_name", "location")  # what Wazuh's ingest pipeline asks for


def _clone(d: dict, nested: str) -> dict:
    """A copy per event (documents must not share dicts), its one nested object included."""
    c = d.copy()
    v = d.get(nested)
    if v is not None:
        c[nested] = v.copy()
    return c


# Not looked up: IPv4 ranges of the IANA special-purpose registry that are not globally
# reachable (this network, private, CGNAT, loopback, link-local, IETF protocol, documentation,
# benchmarking) and 224/3 (multicast, reserved, broadcast); IPv6 outside global unicast
# 2000::/3 (loopback, ULA, link- and site-local, multicast, NAT64...) and, inside it, the
# IETF protocol and documentation ranges. A table rather than ipaddress.is_global: several
# times faster per miss, the same on every Python (3.11.10 and 3.12.4 changed is_global),
# and is_global calls multicast global.
_NOT_PUBLIC = {
    4: ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/3"),
    6: ("::/3", "2001::/23", "2001:db8::/32", "4000::/2", "8000::/1"),
}


def _ranges(nets: Iterable[str]) -> tuple[list[int], list[int]]:
    pairs = sorted((int(n.network_address), int(n.broadcast_address)) for n in map(ipaddress.ip_network, nets))
    return [a for a, _ in pairs], [b for _, b in pairs]


_SKIP_RANGES = {v: _ranges(nets) for v, nets in _NOT_PUBLIC.items()}  # disjoint, sorted: bisect


def _is_public(version: int, n: int) -> bool:
    starts, ends = _SKIP_RANGES[version]
    i = bisect_right(starts, n) - 1
    return i < 0 or n > ends[i]


def _address(ip: str) -> tuple[int, int, str] | None:
    """(version, integer, canonical text) of an address literal; None for anything else.
    inet_pton is strict and never resolves a name; ipaddress takes what it refuses (a
    scope id: fe80::1%eth0). An IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        return 4, int.from_bytes(inet_pton(AF_INET, ip), "big"), ip  # strict dotted quad: canonical
    except (OSError, ValueError):
        pass
    try:
        n = int.from_bytes(inet_pton(AF_INET6, ip), "big")
    except (OSError, ValueError):
        try:
            n = int(ipaddress.IPv6Address(ip))
        except ValueError:
            return None
    if n >> 32 == 0xFFFF:
        n &= 0xFFFFFFFF
        return 4, n, inet_ntop(AF_INET, n.to_bytes(4, "big"))
    return 6, n, inet_ntop(AF_INET6, n.to_bytes(16, "big"))


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _Changing(GeoIPError):
    """The file was replaced while being opened: look again at the next check."""


def _get(reader: Any, addr: str) -> Any:
    try:
        return reader.get(addr)
    except ValueError:  # maxminddb: an IPv6 address asked of an IPv4-only database: not in it
        return None


class _Database:
    """One open .mmdb file, the identity of the file it was opened from, its metadata."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        try:
            self.signature = _signature(os.stat(path))
        except OSError as e:
            raise GeoIPError(f"{kind} database {path}: {e.strerror or e}") from None
        try:
            reader = maxminddb.open_database(str(path))
        except Exception as e:  # a damaged file makes the reader raise RuntimeError, ValueError, OSError...
            raise GeoIPError(f"{kind} database {path}: not a readable MaxMind DB ({e})") from None
        try:
            md = self._validate(reader)
            try:
                same = _signature(os.stat(path)) == self.signature
            except OSError:
                same = False
            if not same:
                raise _Changing(f"{kind} database {path}: changed while being opened")
        except BaseException:
            reader.close()
            raise
        self.reader = reader
        self.type: str = md.database_type
        self.build_epoch: int = md.build_epoch
        self.warned_old = False  # the age warning is given once per loaded database

    def _validate(self, reader: Any) -> Any:
        where = f"{self.kind} database {self.path}"
        try:
            md = reader.metadata()
            ok = isinstance(md.database_type, str) and isinstance(md.build_epoch, int) and md.node_count > 0
        except Exception as e:
            raise GeoIPError(f"{where}: metadata unreadable ({e})") from None
        if not ok:
            raise GeoIPError(f"{where}: metadata unreadable")
        if not any(w in md.database_type for w in _KINDS[self.kind]):
            raise GeoIPError(f"{where}: is a {md.database_type} database, expected {' or '.join(_KINDS[self.kind])}")
        for ip in _PROBES + (_PROBES6 if md.ip_version == 6 else ()):
            try:
                reader.get(ip)  # walks the tree and decodes a record: raises on a damaged file
            except Exception as e:
                raise GeoIPError(f"{where}: damaged, probe lookup of {ip} failed ({e})") from None
        return md

    def age_days(self, now: float) -> float:
        return (now - self.build_epoch) / _DAY

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "type": self.type, "build_epoch": self.build_epoch}


@dataclass
class GeoIPConfig:
    city: Path | None = None
    asn: Path | None = None
    # (address field, ECS target): source.ip -> source.geo.*, source.as.*
    fields: list[tuple[str, str]] = field(default_factory=lambda: list(DEFAULT_FIELDS))
    layouts: tuple[str, ...] = ("ecs",)
    wazuh_alerts: bool = True         # GeoLocation on Wazuh alerts even without the wazuh layout
    cache_size: int = 65536           # addresses; 0 turns the cache off
    reload_check_seconds: float = 60.0
    max_age_days: float = 30.0        # warn when a loaded database is older; 0: never

    def check(self) -> None:
        bad = [x for x in self.layouts if x not in LAYOUTS]
        if bad or not self.layouts:
            raise GeoIPError(f"layouts: {bad or 'empty'}; known: {', '.join(LAYOUTS)}")
        for f, target in self.fields:
            if not f or not target or any(not p for p in f.split(".")):
                raise GeoIPError(f"fields: bad entry {f!r} -> {target!r}")
        if self.cache_size < 0 or self.reload_check_seconds < 0 or self.max_age_days < 0:
            raise GeoIPError("cache_size, reload_check_seconds and max_age_days must be >= 0")


class GeoIP:
    def __init__(self, config: GeoIPConfig, clock: Clock | None = None) -> None:
        config.check()
        self.config = config
        self.clock = clock or SystemClock()
        self.databases: dict[str, _Database] = {}
        try:
            for kind, path in (("city", config.city), ("asn", config.asn)):
                if path is not None:
                    self.databases[kind] = _Database(kind, Path(path))
        except GeoIPError:
            self.close()
            raise
        # (first key, the rest, ECS target): most events lack most fields, so the first get decides
        self.paths = [(f.split(".")[0], tuple(f.split(".")[1:]), target) for f, target in config.fields]
        self._ecs = "ecs" in config.layouts
        self._logstash = "logstash" in config.layouts
        self._wazuh = "wazuh" in config.layouts
        self._wazuh_alerts = config.wazuh_alerts and not self._wazuh
        self.lookup = lru_cache(maxsize=config.cache_size)(self._lookup)
        self.enriched = 0  # the hot counter, an attribute; the rare ones in a dict
        self.counts = {"failures": 0, "skipped_private": 0, "skipped_invalid": 0, "reloads": 0, "reload_failures": 0}
        self._past_hits = self._past_misses = 0  # cache counts from before a cache_clear()
        self._next_check = float("-inf")
        self._failed: dict[str, tuple] = {}  # kind -> signature of a file that failed to load
        now = self.clock.now()
        for db in self.databases.values():
            log.info("GeoIP %s database loaded", db.kind, extra={**db.describe(), "built": _iso(db.build_epoch)})
            self._warn_if_old(db, now)

    @property
    def city(self) -> Any:
        db = self.databases.get("city")
        return db.reader if db else None

    @property
    def asn(self) -> Any:
        db = self.databases.get("asn")
        return db.reader if db else None

    def describe(self) -> dict[str, Any]:
        return {kind: db.describe() for kind, db in self.databases.items()}

    # -- lookups ---------------------------------------------------------------------------

    def _lookup(self, ip: str) -> _Found | _Skip:
        parsed = _address(ip)
        if parsed is None:
            return _INVALID
        version, n, addr = parsed
        if not _is_public(version, n):
            return _PRIVATE
        city = _get(self.city, addr) if "city" in self.databases else None
        asn = _get(self.asn, addr) if "asn" in self.databases else None
        if not city and not asn:
            return _NOT_FOUND
        want_wazuh = city and (self._wazuh or self._wazuh_alerts)
        geo = _city_fields(city) if city and (self._ecs or want_wazuh) else None
        wazuh = {k: geo[k] for k in _WAZUH_KEYS if k in geo} if want_wazuh else None
        as_ = _asn_fields(asn) if asn and self._ecs else None
        legacy = _logstash_fields(addr, city, asn) if self._logstash else None
        return _Found((geo or None) if self._ecs else None, as_ or None, legacy, wazuh or None)

    def enrich(self, fields: dict, tags: list[str]) -> None:
        once = True  # the per-document layouts (logstash, wazuh) take the first address found
        prev = prev_target = None  # a Wazuh alert has its data.srcip in source.ip too: look it up once
        for first, rest, target in self.paths:
            cur: Any = fields.get(first)
            if cur is None:
                continue
            for part in rest:
                if cur.__class__ is not dict:
                    cur = None
                    break
                cur = cur.get(part)
            if cur.__class__ is not str or (cur == prev and target == prev_target):
                continue
            prev, prev_target = cur, target
            res = self.lookup(cur)
            if res.__class__ is _Skip:
                self.counts[res.name] += 1
                if res is _NOT_FOUND and FAILURE_TAG not in tags:
                    tags.append(FAILURE_TAG)
                continue
            self.enriched += 1
            geo, asn, legacy, wazuh = res
            if geo is not None or asn is not None:  # only built with the ecs layout
                dest = fields.get(target)
                if dest is None:
                    dest = fields[target] = {}
                if dest.__class__ is dict:
                    if geo is not None and "geo" not in dest:
                        dest["geo"] = _clone(geo, "location")
                    if asn is not None and "as" not in dest:
                        dest["as"] = _clone(asn, "organization")
            if once:
                once = False
                if legacy is not None and "geoip" not in fields:
                    fields["geoip"] = _clone(legacy, "location")
                if wazuh is not None and "GeoLocation" not in fields and (
                        self._wazuh or (fields.get("event") or _EMPTY).get("dataset") == WAZUH_DATASET):
                    fields["GeoLocation"] = _clone(wazuh, "location")

    # -- hot reload ------------------------------------------------------------------------

    def maybe_reload(self, now: float | None = None) -> bool:
        """Swap in databases whose file changed; True when one was. Cheap: at most one
        os.stat per database every `reload_check_seconds` of `now` (the injected clock's
        time when not given). Call it from the thread that calls `enrich()`. It also gives
        the age warning (once per loaded database) when one grows past `max_age_days`."""
        if now is None:
            now = self.clock.now()
        if now < self._next_check:
            return False
        self._next_check = now + self.config.reload_check_seconds
        swapped = False
        for kind, db in list(self.databases.items()):
            new = self._changed(db)
            if new is None:
                if not db.warned_old:  # fresh when loaded, old now: a long run without updates
                    self._warn_if_old(db, now)
                continue
            old, self.databases[kind] = db, new
            old.reader.close()
            self.counts["reloads"] += 1
            swapped = True
            log.info("GeoIP %s database reloaded", kind, extra={**new.describe(), "built": _iso(new.build_epoch),
                                                                  "previous_build_epoch": old.build_epoch})
            self._warn_if_old(new, now)
        if swapped:
            self.clear_cache()
        return swapped

    def _changed(self, db: _Database) -> _Database | None:
        """The database opened from a changed, valid file; None when there is nothing new."""
        try:
            sig: tuple = _signature(os.stat(db.path))
        except OSError as e:
            sig, reason = ("missing", e.errno), f"{db.kind} database {db.path}: {e.strerror or e}"
        else:
            if sig == db.signature or sig == self._failed.get(db.kind):
                return None
            try:
                new = _Database(db.kind, db.path)
            except _Changing:
                return None
            except GeoIPError as e:
                reason = str(e)
            else:
                self._failed.pop(db.kind, None)
                return new
        if sig == self._failed.get(db.kind):
            return None
        self._failed[db.kind] = sig
        self.counts["reload_failures"] += 1
        log.error("GeoIP %s; cannot reload it, keeping the loaded one (built %s) until the file changes again",
                  reason, _iso(db.build_epoch), extra={"path": str(db.path), "reason": reason})
        return None

    def _warn_if_old(self, db: _Database, now: float) -> None:
        age = db.age_days(now)
        if self.config.max_age_days and age > self.config.max_age_days:
            db.warned_old = True
            log.warning("GeoIP %s database %s is %.0f days old (built %s); MaxMind asks for updates within "
                        "30 days: run geoipupdate", db.kind, db.path, age, _iso(db.build_epoch),
                        extra={"path": str(db.path), "age_days": round(age, 1), "max_age_days": self.config.max_age_days})

    # -- telemetry -------------------------------------------------------------------------

    def clear_cache(self) -> None:
        info = self.lookup.cache_info()
        self._past_hits += info.hits
        self._past_misses += info.misses
        self.lookup.cache_clear()

    def stats(self, now: float | None = None) -> dict[str, float]:
        """Flat numbers for telemetry: lookups, hits, misses, hit_rate, cache_entries,
        enriched, failures, skipped_private, skipped_invalid, reloads, reload_failures, and
        per database <kind>_build_epoch, <kind>_age_days (kind: city, asn)."""
        if now is None:
            now = self.clock.now()
        info = self.lookup.cache_info()
        hits, misses = self._past_hits + info.hits, self._past_misses + info.misses
        lookups = hits + misses
        out: dict[str, float] = {"lookups": lookups, "hits": hits, "misses": misses,
                                 "hit_rate": hits / lookups if lookups else 0.0, "cache_entries": info.currsize,
                                 "enriched": self.enriched, **self.counts}
        for kind, db in self.databases.items():
            out[f"{kind}_build_epoch"] = db.build_epoch
            out[f"{kind}_age_days"] = round(db.age_days(now), 2)
        return out

    def cache_stats(self) -> dict[str, float]:
        """hits, misses, size, hit_rate (the replay summary's `geoip_cache`)."""
        s = self.stats()
        return {"hits": s["hits"], "misses": s["misses"], "size": s["cache_entries"], "hit_rate": s["hit_rate"]}

    def close(self) -> None:
        for db in self.databases.values():
            db.reader.close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def build_geoip(city: Path | None, asn: Path | None,
                fields: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                cache_size: int = 65536, *, layouts: Iterable[str] = ("ecs",), wazuh_alerts: bool = True,
                reload_check_seconds: float = 60.0, max_age_days: float = 30.0,
                clock: Clock | None = None) -> GeoIP | None:
    """The enricher, or None when no database is configured. Raises GeoIPError (a
    ValueError) naming the path and the reason when a database or a setting is unusable."""
    if city is None and asn is None:
        return None
    if isinstance(layouts, str):
        raise GeoIPError(f"layouts must be a list, e.g. [{layouts!r}]")
    cfg = GeoIPConfig(city=city, asn=asn, layouts=tuple(layouts), wazuh_alerts=wazuh_alerts,
                      cache_size=cache_size, reload_check_seconds=reload_check_seconds, max_age_days=max_age_days)
    if fields is not None:
        pairs = list(fields.items() if isinstance(fields, Mapping) else fields)
        if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs):
            raise GeoIPError("fields must map address fields to targets, e.g. {\"source.ip\" = \"source\"}")
        cfg.fields = pairs
    return GeoIP(cfg, clock)
