"""GeoIP enrichment: source addresses -> geo and AS fields, in one or more layouts.

The lookups, the LRU cache in front of them (attack traffic repeats addresses, so most
lookups are hits), the skipped ranges, the layouts and the counters are native
(`native/src/geoip.rs`, `streams._native.GeoIP`, which the batch pipeline calls directly);
this module keeps the configuration, the files' identity and hot reload, the age warnings,
logging and telemetry. Never a DNS lookup.

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

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import _native
from ..clock import Clock, SystemClock

log = logging.getLogger("streams.geoip")

FAILURE_TAG = "_geoip_lookup_failure"
DEFAULT_FIELDS = (("source.ip", "source"), ("client.ip", "client"), ("data.srcip", "source"))
_DAY = 86400.0
# Probe lookups of a new database: MaxMind test networks and well-known public resolvers.
_PROBES = ("81.2.69.142", "1.0.0.1", "8.8.8.8", "89.160.20.115", "216.160.83.56")
_PROBES6 = ("2001:218::1", "2001:4860:4860::8888")
# database_type words accepted per slot: a City/Country file in the ASN slot (or the
# reverse) would make every public address a lookup failure.
_KINDS = {"city": ("City", "Country"), "asn": ("ASN", "ISP")}


class GeoIPError(ValueError):
    """A GeoIP setting or database cannot be used; the message names the path and why."""


def default_city_database() -> Path | None:
    """The GeoLite2 City database of PyPI `maxminddb-geolite2`, when installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database
    except ImportError:
        return None
    p = Path(geolite2_database())
    return p if p.exists() else None


# the native side's address parse and skipped ranges (tests and benchmarks ask them)
_address = _native.GeoIP.address
_is_public = _native.GeoIP.is_public
_NOT_PUBLIC = _native.GeoIP.NOT_PUBLIC


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _Changing(GeoIPError):
    """The file was replaced while being opened: look again at the next check."""


class _Database:
    """One open .mmdb file, the identity of the file it was opened from, its metadata."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        try:
            self.signature = _signature(os.stat(path))
        except OSError as e:
            raise GeoIPError(f"{kind} database {path}: {e.strerror or e}") from None
        try:
            reader = _native.MaxMindDB(path)
        except (OSError, ValueError) as e:  # a damaged file: ValueError (the metadata, the tree's layout)
            raise GeoIPError(f"{kind} database {path}: not a readable MaxMind DB ({e})") from None
        try:
            self._validate(reader)
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
        self.type: str = reader.database_type
        self.build_epoch: int = reader.build_epoch
        self.warned_old = False  # the age warning is given once per loaded database

    def _validate(self, reader: _native.MaxMindDB) -> None:
        where = f"{self.kind} database {self.path}"
        if reader.node_count <= 0:  # the metadata's types were checked when it was opened
            raise GeoIPError(f"{where}: metadata unreadable (an empty search tree)")
        if not any(w in reader.database_type for w in _KINDS[self.kind]):
            raise GeoIPError(f"{where}: is a {reader.database_type} database, expected {' or '.join(_KINDS[self.kind])}")
        for ip in _PROBES + (_PROBES6 if reader.ip_version == 6 else ()):
            try:
                reader.get(ip)  # walks the tree and decodes a whole record: ValueError on a damaged file
            except ValueError as e:
                raise GeoIPError(f"{where}: damaged, probe lookup of {ip} failed ({e})") from None

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
        """The bounds; layouts and fields are checked by the native enricher they configure."""
        if self.cache_size < 0 or self.reload_check_seconds < 0 or self.max_age_days < 0:
            raise GeoIPError("cache_size, reload_check_seconds and max_age_days must be >= 0")


class GeoIP:
    def __init__(self, config: GeoIPConfig, clock: Clock | None = None) -> None:
        config.check()
        # the enricher the batch pipeline hands to Rust; enrich() is its method, no Python frame
        try:
            self.native = _native.GeoIP(list(config.fields), list(config.layouts), wazuh_alerts=config.wazuh_alerts,
                                        cache_size=config.cache_size)
        except ValueError as e:   # a layout or field it does not know
            raise GeoIPError(str(e)) from None
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
        for kind, db in self.databases.items():
            self.native.set_database(kind, db.reader)
        self.enrich = self.native.enrich
        self.counts = {"reloads": 0, "reload_failures": 0}
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

    def enrich(self, fields: dict, tags: list[str]) -> None:
        """Adds `<target>.geo`, `<target>.as` (ecs), `geoip` (logstash), `GeoLocation`
        (wazuh) to `fields` in place, never over a field already there; appends
        FAILURE_TAG to `tags` once when a public address is in no database. (Replaced
        per instance by the native method, which does exactly this.)"""
        self.native.enrich(fields, tags)

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
            self.native.set_database(kind, new.reader)  # clears the native cache
            old.reader.close()
            self.counts["reloads"] += 1
            swapped = True
            log.info("GeoIP %s database reloaded", kind, extra={**new.describe(), "built": _iso(new.build_epoch),
                                                                  "previous_build_epoch": old.build_epoch})
            self._warn_if_old(new, now)
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
        self.native.clear_cache()

    def stats(self, now: float | None = None) -> dict[str, float]:
        """Flat numbers for telemetry: lookups, hits, misses, hit_rate, cache_entries,
        enriched, failures, skipped_private, skipped_invalid, reloads, reload_failures, and
        per database <kind>_build_epoch, <kind>_age_days (kind: city, asn)."""
        if now is None:
            now = self.clock.now()
        n = self.native.stats()
        lookups, hits = n["lookups"], n["hits"]
        out: dict[str, float] = {"lookups": lookups, "hits": hits, "misses": n["misses"],
                                 "hit_rate": hits / lookups if lookups else 0.0,
                                 **{k: n[k] for k in ("cache_entries", "enriched", "failures", "skipped_private",
                                                      "skipped_invalid")},
                                 **self.counts}
        for kind, db in self.databases.items():
            out[f"{kind}_build_epoch"] = db.build_epoch
            out[f"{kind}_age_days"] = round(db.age_days(now), 2)
        return out

    def cache_stats(self) -> dict[str, float]:
        """hits, misses, size, hit_rate (the replay summary's `geoip_cache`)."""
        s = self.stats()
        return {"hits": s["hits"], "misses": s["misses"], "size": s["cache_entries"], "hit_rate": s["hit_rate"]}

    def close(self) -> None:
        native = getattr(self, "native", None)  # absent when a database failed to open
        for kind, db in self.databases.items():
            if native is not None:
                native.set_database(kind, None)
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
