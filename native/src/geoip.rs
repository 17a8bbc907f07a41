//! GeoIP enrichment: source addresses -> geo and AS fields, in one or more layouts (see
//! `streams/enrich/geoip.py` for the layouts and the configuration; Python keeps the
//! files' identity, hot reload, age warnings and telemetry, this module the lookups).
//!
//! An LRU in front of the databases holds the *built* fragments per address text (attack
//! traffic repeats addresses, so most lookups are hits, and building the fields costs
//! more than the lookup); a hit clones them into the document. Private, loopback,
//! link-local, CGNAT, documentation, multicast and reserved addresses are skipped, as are
//! values that are not addresses (never resolved); both are counted. A public address
//! neither database knows is a failure: the document is tagged `_geoip_lookup_failure`.

pub mod address;
pub mod layouts;
mod lru;
pub mod mmdb;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use crate::doc::{Map, Value};
use lru::Lru;
use mmdb::Mmdb;

pub const FAILURE_TAG: &str = "_geoip_lookup_failure";
pub const WAZUH_DATASET: &str = "wazuh.alerts";
pub const LAYOUTS: [&str; 3] = ["ecs", "logstash", "wazuh"];

/// The per-layout fragments of one address, built once per cache miss.
#[derive(Default)]
pub struct Found {
    pub geo: Option<Map>,
    pub asn: Option<Map>,
    pub logstash: Option<Map>,
    pub wazuh: Option<Map>,
    /// The same fragments in a host's own form, made at its first use (the Python face
    /// keeps dicts here, so a hit copies dicts instead of converting the tree again).
    pub host: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Found {
    /// The fragment a per-document key takes.
    pub fn top(&self, key: Top) -> Option<&Map> {
        match key {
            Top::Logstash => self.logstash.as_ref(),
            Top::Wazuh => self.wazuh.as_ref(),
        }
    }
}

/// What a lookup of an address text gave (cached as such: a hit on a hostname is as cheap
/// as a hit on an address).
#[derive(Clone)]
pub enum Outcome {
    Invalid,
    Private,
    NotFound,
    Found(Arc<Found>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub enriched: u64,
    pub failures: u64,
    pub skipped_private: u64,
    pub skipped_invalid: u64,
}

/// The document-level keys the per-document layouts write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Top {
    Logstash,
    Wazuh,
}

impl Top {
    pub fn key(self) -> &'static str {
        match self {
            Top::Logstash => "geoip",
            Top::Wazuh => "GeoLocation",
        }
    }
}

/// What enrichment reads and writes of a document: the native tree, or (in `geoip_py`) a
/// Python dict changed in place. Nothing already there is overwritten.
pub trait Document {
    /// The text at the configured field `field` (its dotted `path`), when it is a string,
    /// written into `out`.
    fn address(&self, field: usize, path: &[String], out: &mut String) -> bool;
    /// `target` (a top-level key) made an object when missing or null, then copies of
    /// the found `geo` and `as` (those there are) added where absent; a target that is
    /// some other value is left alone.
    fn fill_target(&mut self, field: usize, target: &str, found: &Found);
    /// `key` set to a copy of its fragment (`found.top(key)`, there is one) unless the
    /// document has it.
    fn put_absent(&mut self, key: Top, found: &Found);
    /// `event.dataset` is `wazuh.alerts`.
    fn is_wazuh_alert(&self) -> bool;
}

struct Field {
    path: Vec<String>,
    target: String,
}

/// The databases, the cache and the counters: what a lookup touches.
struct Lookups {
    city: Option<Arc<Mmdb>>,
    asn: Option<Arc<Mmdb>>,
    cache: Lru<Outcome>,
    counters: Counters,
    ecs: bool,
    logstash: bool,
    /// GeoLocation fragments are built (the wazuh layout, or Wazuh alerts get them)
    wazuh_fragments: bool,
}

pub struct GeoIp {
    fields: Vec<Field>,
    /// the wazuh layout: GeoLocation on every document, not only on Wazuh alerts
    wazuh: bool,
    lookups: Lookups,
    text: String,
    prev: String,
}

impl GeoIp {
    /// `fields`: (dotted address field, ECS target) in order; `layouts`: any of
    /// [`LAYOUTS`]; `wazuh_alerts`: GeoLocation on Wazuh alerts even without the wazuh
    /// layout; `cache_size`: addresses (0: no cache). No database yet: see
    /// [`GeoIp::set_city`], [`GeoIp::set_asn`].
    pub fn new(
        fields: &[(String, String)],
        layouts: &[String],
        wazuh_alerts: bool,
        cache_size: usize,
    ) -> Result<GeoIp, String> {
        if layouts.is_empty() || layouts.iter().any(|l| !LAYOUTS.contains(&l.as_str())) {
            return Err(format!(
                "layouts: {layouts:?}; known: {}",
                LAYOUTS.join(", ")
            ));
        }
        let fields = fields
            .iter()
            .map(|(f, target)| {
                let path = crate::doc::path(f)
                    .ok()
                    .filter(|_| !target.is_empty())
                    .ok_or_else(|| format!("fields: bad entry {f:?} -> {target:?}"))?;
                Ok(Field {
                    path,
                    target: target.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        let has = |l: &str| layouts.iter().any(|x| x == l);
        let wazuh = has("wazuh");
        Ok(GeoIp {
            fields,
            wazuh,
            lookups: Lookups {
                city: None,
                asn: None,
                cache: Lru::new(cache_size),
                counters: Counters::default(),
                ecs: has("ecs"),
                logstash: has("logstash"),
                wazuh_fragments: wazuh || wazuh_alerts,
            },
            text: String::new(),
            prev: String::new(),
        })
    }

    /// Replaces the City (or Country) database; the cache, built from the old one, is
    /// cleared.
    pub fn set_city(&mut self, db: Option<Arc<Mmdb>>) {
        self.lookups.city = db;
        self.clear_cache();
    }

    /// Replaces the ASN database (the cache is cleared).
    pub fn set_asn(&mut self, db: Option<Arc<Mmdb>>) {
        self.lookups.asn = db;
        self.clear_cache();
    }

    /// Empties the cache; the counters keep counting.
    pub fn clear_cache(&mut self) {
        self.lookups.cache.clear();
    }

    pub fn counters(&self) -> Counters {
        self.lookups.counters
    }

    pub fn cache_entries(&self) -> usize {
        self.lookups.cache.len()
    }

    /// The lookup of one address text, through the cache (counted as a hit or a miss).
    pub fn lookup(&mut self, text: &str) -> Outcome {
        self.lookups.lookup(text)
    }

    /// What `GeoIP.enrich(fields, tags)` does, on the native document: may add
    /// `<target>.geo`, `<target>.as`, `geoip`, `GeoLocation`; pushes
    /// "_geoip_lookup_failure" once when a public address is in no database. Never
    /// overwrites existing fields.
    pub fn enrich(&mut self, doc: &mut Map, tags: &mut Vec<String>) {
        if self.enrich_document(doc) && !tags.iter().any(|t| t == FAILURE_TAG) {
            tags.push(FAILURE_TAG.to_string());
        }
    }

    /// Enriches any [`Document`]; true when it is to be tagged as a lookup failure.
    pub fn enrich_document<D: Document + ?Sized>(&mut self, doc: &mut D) -> bool {
        let mut once = true; // the per-document layouts take the first address found
        let mut failed = false;
        // a Wazuh alert has its data.srcip in source.ip too: one lookup per target
        let mut prev_target: Option<usize> = None;
        for (f, field) in self.fields.iter().enumerate() {
            if !doc.address(f, &field.path, &mut self.text) {
                continue;
            }
            if prev_target.is_some_and(|p| self.fields[p].target == field.target)
                && self.text == self.prev
            {
                continue;
            }
            std::mem::swap(&mut self.text, &mut self.prev);
            prev_target = Some(f);
            let found = match self.lookups.lookup(&self.prev) {
                Outcome::Found(found) => found,
                Outcome::Invalid => {
                    self.lookups.counters.skipped_invalid += 1;
                    continue;
                }
                Outcome::Private => {
                    self.lookups.counters.skipped_private += 1;
                    continue;
                }
                Outcome::NotFound => {
                    self.lookups.counters.failures += 1;
                    failed = true;
                    continue;
                }
            };
            self.lookups.counters.enriched += 1;
            if found.geo.is_some() || found.asn.is_some() {
                doc.fill_target(f, &field.target, &found);
            }
            if once {
                once = false;
                if found.logstash.is_some() {
                    doc.put_absent(Top::Logstash, &found);
                }
                if found.wazuh.is_some() && (self.wazuh || doc.is_wazuh_alert()) {
                    doc.put_absent(Top::Wazuh, &found);
                }
            }
        }
        failed
    }
}

impl Lookups {
    fn lookup(&mut self, text: &str) -> Outcome {
        if let Some(hit) = self.cache.get(text) {
            self.counters.hits += 1;
            return hit.clone();
        }
        self.counters.misses += 1;
        let outcome = self.resolve(text);
        self.cache.insert(text, outcome.clone());
        outcome
    }

    fn resolve(&self, text: &str) -> Outcome {
        let Some(addr) = address::parse(text) else {
            return Outcome::Invalid;
        };
        if !address::is_public(addr.version(), addr.int()) {
            return Outcome::Private;
        }
        // a record that cannot be read (a file damaged past the probes that validated
        // it) counts as not found rather than stopping the pipeline
        let record = |db: &Option<Arc<Mmdb>>| match db.as_ref()?.get(addr.ip) {
            Ok(Some(Value::Map(m))) if !m.is_empty() => Some(m),
            _ => None,
        };
        let (city, asn) = (record(&self.city), record(&self.asn));
        if city.is_none() && asn.is_none() {
            return Outcome::NotFound;
        }
        let geo = city
            .as_ref()
            .filter(|_| self.ecs || self.wazuh_fragments)
            .map(layouts::city_fields);
        let wazuh = match (&geo, self.wazuh_fragments) {
            (Some(geo), true) => Some(layouts::wazuh_fields(geo)),
            _ => None,
        };
        let non_empty = |m: Option<Map>| m.filter(|m| !m.is_empty());
        Outcome::Found(Arc::new(Found {
            geo: if self.ecs { non_empty(geo) } else { None },
            asn: non_empty(asn.as_ref().filter(|_| self.ecs).map(layouts::asn_fields)),
            logstash: self
                .logstash
                .then(|| layouts::logstash_fields(&addr.text, city.as_ref(), asn.as_ref())),
            wazuh: non_empty(wazuh),
            host: OnceLock::new(),
        }))
    }
}

impl Document for Map {
    fn address(&self, _field: usize, path: &[String], out: &mut String) -> bool {
        match self.str_at(path) {
            Some(s) => {
                out.clear();
                out.push_str(s);
                true
            }
            None => false,
        }
    }

    fn fill_target(&mut self, _field: usize, target: &str, found: &Found) {
        let dest = match self.get_mut(target) {
            Some(Value::Null) | None => {
                self.insert(target, Value::Map(Map::new()));
                self.get_mut(target).expect("just made")
            }
            Some(v) => v,
        };
        let Value::Map(dest) = dest else { return };
        for (key, part) in [("geo", &found.geo), ("as", &found.asn)] {
            if let Some(part) = part {
                if !dest.contains(key) {
                    dest.push(key, Value::Map(part.clone()));
                }
            }
        }
    }

    fn put_absent(&mut self, key: Top, found: &Found) {
        if let Some(part) = found.top(key) {
            if !self.contains(key.key()) {
                self.push(key.key(), Value::Map(part.clone()));
            }
        }
    }

    fn is_wazuh_alert(&self) -> bool {
        let dataset = self
            .get("event")
            .and_then(Value::as_map)
            .and_then(|e| e.get("dataset"));
        dataset.and_then(Value::as_str) == Some(WAZUH_DATASET)
    }
}

#[cfg(test)]
mod tests {
    use super::mmdb::tests::test_db;
    use super::*;
    use crate::doc::write_map;

    fn geoip(layouts: &[&str], asn: bool, cache_size: usize) -> GeoIp {
        let fields: Vec<(String, String)> = [
            ("source.ip", "source"),
            ("client.ip", "client"),
            ("data.srcip", "source"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let layouts: Vec<String> = layouts.iter().map(|s| s.to_string()).collect();
        let mut g = GeoIp::new(&fields, &layouts, true, cache_size).unwrap();
        let open = |n| Some(Arc::new(Mmdb::open(&test_db(n)).unwrap()));
        g.set_city(open("GeoIP2-City-Test.mmdb"));
        if asn {
            g.set_asn(open("GeoLite2-ASN-Test.mmdb"));
        }
        g
    }

    fn doc(json: &str) -> Map {
        let Value::Map(m) = crate::json::parse_strict(json).unwrap() else {
            panic!("not an object")
        };
        m
    }

    fn enriched(g: &mut GeoIp, json: &str) -> (String, Vec<String>) {
        let mut d = doc(json);
        let mut tags = Vec::new();
        g.enrich(&mut d, &mut tags);
        let mut out = Vec::new();
        write_map(&mut out, &d);
        (String::from_utf8(out).unwrap(), tags)
    }

    #[test]
    fn ecs_and_asn_fields() {
        let mut g = geoip(&["ecs"], true, 16);
        let (out, tags) = enriched(&mut g, r#"{"source":{"ip":"89.160.20.115"}}"#);
        assert_eq!(
            out,
            r#"{"source":{"ip":"89.160.20.115","geo":{"location":{"lat":58.4167,"lon":15.6167},"timezone":"Europe/Stockholm","country_iso_code":"SE","country_name":"Sweden","city_name":"Linköping","region_name":"Östergötland County","region_iso_code":"SE-E","continent_code":"EU"},"as":{"number":29518,"organization":{"name":"Bredband2 AB"}}}}"#
        );
        assert!(tags.is_empty());
        let (out, _) = enriched(&mut g, r#"{"source":{"ip":"1.0.0.1"}}"#);
        assert_eq!(
            out,
            r#"{"source":{"ip":"1.0.0.1","as":{"number":15169,"organization":{"name":"Google Inc."}}}}"#
        );
    }

    #[test]
    fn skipped_failed_and_counted() {
        let mut g = geoip(&["ecs"], false, 16);
        let (out, tags) = enriched(
            &mut g,
            r#"{"source":{"ip":"8.8.8.8"},"client":{"ip":"10.0.0.1"},"data":{"srcip":"mail.example.com"}}"#,
        );
        assert_eq!(tags, [FAILURE_TAG]);
        assert!(!out.contains("geo"));
        let mut tags = vec![FAILURE_TAG.to_string()];
        g.enrich(&mut doc(r#"{"source":{"ip":"8.8.8.8"}}"#), &mut tags);
        assert_eq!(tags, [FAILURE_TAG]);
        let c = g.counters();
        assert_eq!(
            (
                c.failures,
                c.skipped_private,
                c.skipped_invalid,
                c.hits,
                c.misses
            ),
            (2, 1, 1, 1, 3)
        );
        assert_eq!(g.cache_entries(), 3);
    }

    #[test]
    fn per_document_layouts_and_existing_fields() {
        let mut g = geoip(&["ecs", "logstash", "wazuh"], false, 16);
        let (out, _) = enriched(
            &mut g,
            r#"{"source":{"ip":"10.0.0.1"},"client":{"ip":"89.160.20.115","geo":{"city_name":"mine"}},"data":{"srcip":"81.2.69.142"}}"#,
        );
        let d = doc(&out);
        let at = |p: &str| {
            let path = crate::doc::path(p).unwrap();
            d.at(&path).cloned()
        };
        assert_eq!(at("client.geo.city_name"), Some(Value::str("mine")));
        assert_eq!(at("geoip.ip"), Some(Value::str("89.160.20.115")));
        assert_eq!(at("GeoLocation.city_name"), Some(Value::str("Linköping")));
        assert_eq!(at("source.geo.city_name"), Some(Value::str("London")));
        // Wazuh alerts get GeoLocation without the wazuh layout; others do not
        let mut g = geoip(&["ecs"], false, 16);
        let (out, _) = enriched(
            &mut g,
            r#"{"event":{"dataset":"wazuh.alerts"},"data":{"srcip":"81.2.69.142"}}"#,
        );
        assert!(
            out.contains(r#""GeoLocation":{"city_name":"London""#),
            "{out}"
        );
        let (out, _) = enriched(
            &mut g,
            r#"{"event":{"dataset":"sshd.log"},"source":{"ip":"81.2.69.142"}}"#,
        );
        assert!(!out.contains("GeoLocation"));
    }

    #[test]
    fn same_address_twice_is_one_lookup_and_cache_off() {
        let mut g = geoip(&["ecs"], false, 0);
        let (out, _) = enriched(
            &mut g,
            r#"{"source":{"ip":"81.2.69.142"},"data":{"srcip":"81.2.69.142"}}"#,
        );
        assert!(out.contains(r#""source":{"ip":"81.2.69.142","geo""#));
        let c = g.counters();
        assert_eq!((c.misses, c.hits, c.enriched), (1, 0, 1));
        // only the one just before counts: another target in between, another lookup
        let (out, _) = enriched(
            &mut g,
            r#"{"source":{"ip":"81.2.69.142"},"client":{"ip":"81.2.69.142"},"data":{"srcip":"81.2.69.142"}}"#,
        );
        assert!(out.contains(r#""client":{"ip":"81.2.69.142","geo""#));
        let c = g.counters();
        assert_eq!(
            (c.misses, c.hits, c.enriched, g.cache_entries()),
            (4, 0, 4, 0)
        );
    }

    #[test]
    fn address_outcomes() {
        let mut g = geoip(&["ecs"], false, 16);
        assert!(matches!(g.lookup("2001:218::1"), Outcome::Found(_)));
        assert!(matches!(g.lookup("2001:db8::1"), Outcome::Private));
        assert!(matches!(g.lookup("fe80::1%eth0"), Outcome::Private));
        assert!(matches!(g.lookup("081.2.69.142"), Outcome::Invalid));
    }

    /// `cargo test --release geoip::tests::bench_hits -- --ignored --nocapture`: µs per
    /// enrich of a native document whose address is in the cache.
    #[test]
    #[ignore]
    fn bench_hits() {
        let mut g = geoip(&["ecs"], true, 65536);
        let addrs = [
            "81.2.69.142",
            "89.160.20.115",
            "216.160.83.56",
            "175.16.199.1",
        ];
        let n = 1_000_000;
        let docs: Vec<Map> = (0..n)
            .map(|i| {
                doc(&format!(
                    r#"{{"source":{{"ip":"{}"}}}}"#,
                    addrs[i % addrs.len()]
                ))
            })
            .collect();
        let mut tags = Vec::new();
        let t = std::time::Instant::now();
        for mut d in docs {
            g.enrich(&mut d, &mut tags);
            std::hint::black_box(&d);
        }
        let us = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        let c = g.counters();
        println!(
            "{us:.3} us per enrich (hits {}, misses {})",
            c.hits, c.misses
        );
    }
}
