//! After parsing, what a pipeline does with each document, for a whole batch and with no
//! Python: the host and time defaults, the deterministic `_id`, the dated index, the
//! output bytes (Elasticsearch bulk lines or spool records) and what the batch counts —
//! datasets, tags, the derived metrics, the addresses of bans and failures, and the
//! side records of the lines that move the TTL index. Python reads these per batch, never
//! a document.

use std::collections::HashMap;

use crate::doc::{py_str, write_map, Map, Value};
use crate::timestamps::{days_from_civil, fromisoformat};

/// What the output bytes are: `_bulk` lines (an action line, then the document) as
/// `DIR/elasticsearch/*.ndjson` holds them, or the Elasticsearch sink's spool records
/// (`index TAB id TAB document`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Bulk,
    Spool,
}

/// Index names from a template with `{dataset}` and `{date}` (`YYYY.MM.DD` of
/// `@timestamp`), `{{`/`}}` for braces, then lower-cased with every run of characters
/// Elasticsearch refuses as `_`. Per-dataset templates win (Wazuh's alerts keep
/// `wazuh-alerts-4.x-*`, which its app reads).
pub struct IndexNamer {
    template: String,
    per_dataset: Vec<(String, String)>,
    cache: HashMap<(String, String), String>,
    /// the last (dataset, day) asked: consecutive lines mostly share it
    last: (String, String, String),
}

impl IndexNamer {
    pub fn new(template: String, per_dataset: Vec<(String, String)>) -> IndexNamer {
        IndexNamer {
            template,
            per_dataset,
            cache: HashMap::new(),
            last: (String::new(), String::new(), String::new()),
        }
    }

    pub fn name(&mut self, dataset: &str, timestamp: &str) -> &str {
        let day = match timestamp.char_indices().nth(10) {
            Some((at, _)) => &timestamp[..at],
            None => timestamp,
        };
        if self.last.0 != dataset || self.last.1 != day || self.last.2.is_empty() {
            let name = self.lookup(dataset, day);
            self.last = (dataset.to_string(), day.to_string(), name);
        }
        &self.last.2
    }

    fn lookup(&mut self, dataset: &str, day: &str) -> String {
        let day = day.to_string();
        let key = (dataset.to_string(), day);
        if !self.cache.contains_key(&key) {
            if self.cache.len() > 10_000 {
                self.cache.clear(); // an archive of many years: stay bounded
            }
            let tpl = self
                .per_dataset
                .iter()
                .find(|(d, _)| d == dataset)
                .map_or(self.template.as_str(), |(_, t)| t.as_str());
            let name = index_name(tpl, dataset, &key.1.replace('-', "."));
            self.cache.insert(key.clone(), name);
        }
        self.cache[&key].clone()
    }
}

fn index_name(template: &str, dataset: &str, date: &str) -> String {
    let mut text = String::with_capacity(template.len() + dataset.len() + date.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(r) = rest.strip_prefix("{{").or_else(|| rest.strip_prefix("}}")) {
            text.push(rest.as_bytes()[0] as char);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{dataset}") {
            text.push_str(dataset);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{date}") {
            text.push_str(date);
            rest = r;
        } else {
            // the Python side checks templates before they get here
            text.push(rest.as_bytes()[0] as char);
            rest = &rest[1..];
        }
    }
    text.push_str(rest);
    let mut out = String::with_capacity(text.len());
    let mut bad = false;
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            out.push(c);
            bad = false;
        } else if !bad {
            out.push('_');
            bad = true;
        }
    }
    out
}

/// The `_id` of a document: BLAKE2b with a 12-byte digest of the parts joined by NUL, in
/// hex — the same id for the same line, so a resend or a second load overwrites.
pub fn event_id(parts: &[&[u8]]) -> String {
    use blake2::digest::{Update, VariableOutput};
    let mut h = blake2::Blake2bVar::new(12).expect("12 is a valid BLAKE2b size");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"\0");
        }
        h.update(p);
    }
    let mut digest = [0u8; 12];
    h.finalize_variable(&mut digest).expect("sized for 12");
    let mut hex = String::with_capacity(24);
    for b in digest {
        hex.push(char::from_digit((b >> 4) as u32, 16).unwrap());
        hex.push(char::from_digit((b & 15) as u32, 16).unwrap());
    }
    hex
}

/// The documents of a batch, grouped by index in order of first appearance.
pub struct Output {
    format: Format,
    pub chunks: Vec<Chunk>,
    at: HashMap<String, usize>,
    /// emptied buffers of earlier batches: a batch's megabytes are not allocated (and
    /// zeroed by the kernel, page by page) anew each time
    pool: Vec<Vec<u8>>,
}

/// The bytes of buffers kept for the next batch (memory stays flat whatever the number
/// of indices a batch writes to), and the size a new chunk's buffer starts at.
const POOLED_BYTES: usize = 8 << 20;
const FIRST_CAPACITY: usize = 64 << 10;

pub struct Chunk {
    pub index: String,
    pub data: Vec<u8>,
    pub count: u64,
    /// the records of a live batch whose documents are in this chunk (what fails with it)
    pub positions: Vec<u32>,
}

impl Output {
    pub fn new(format: Format, pool: Vec<Vec<u8>>) -> Output {
        Output {
            format,
            chunks: Vec::new(),
            at: HashMap::new(),
            pool,
        }
    }

    /// The buffers of this batch's chunks, emptied, for the next one.
    pub fn recycle(mut self) -> Vec<Vec<u8>> {
        let mut kept: usize = self.pool.iter().map(Vec::capacity).sum();
        // the largest first: the busiest index of the next batch needs no growth either
        self.chunks
            .sort_by_key(|c| std::cmp::Reverse(c.data.capacity()));
        for c in self.chunks {
            if kept + c.data.capacity() <= POOLED_BYTES {
                kept += c.data.capacity();
                let mut d = c.data;
                d.clear();
                self.pool.push(d);
            }
        }
        self.pool.sort_by_key(Vec::capacity); // pop() hands out the largest first
        self.pool
    }

    pub fn write(&mut self, index: &str, id: &str, doc: &Map, position: usize) {
        let i = match self.at.get(index).copied() {
            Some(i) => i,
            None => {
                let data = self
                    .pool
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY));
                self.chunks.push(Chunk {
                    index: index.to_string(),
                    data,
                    count: 0,
                    positions: Vec::new(),
                });
                self.at.insert(index.to_string(), self.chunks.len() - 1);
                self.chunks.len() - 1
            }
        };
        let chunk = &mut self.chunks[i];
        let out = &mut chunk.data;
        match self.format {
            Format::Bulk => {
                out.extend_from_slice(b"{\"index\":{\"_index\":\"");
                out.extend_from_slice(index.as_bytes());
                out.extend_from_slice(b"\",\"_id\":\"");
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(b"\"}}\n");
            }
            Format::Spool => {
                out.extend_from_slice(index.as_bytes());
                out.push(b'\t');
                out.extend_from_slice(id.as_bytes());
                out.push(b'\t');
            }
        }
        write_map(out, doc);
        out.push(b'\n');
        chunk.count += 1;
        chunk.positions.push(position as u32);
    }
}

/// (bucket, host, dataset, name) of a derived count.
pub type MetricKey = (i64, String, String, String);

/// Derived counts by (bucket, host, dataset), then name: consecutive lines mostly share
/// the group, so a line's counts cost a comparison, not a key made and hashed per count.
#[derive(Default)]
pub struct Metrics {
    groups: Vec<Group>,
    at: HashMap<(i64, String, String), usize>,
    last: Option<usize>,
}

struct Group {
    bucket: i64,
    host: String,
    dataset: String,
    names: Vec<(String, u64)>,
}

impl Metrics {
    fn group(&mut self, bucket: i64, host: &str, dataset: &str) -> &mut Group {
        let same = |g: &Group| g.bucket == bucket && g.host == host && g.dataset == dataset;
        let i = match self.last {
            Some(i) if same(&self.groups[i]) => i,
            _ => {
                let key = (bucket, host.to_string(), dataset.to_string());
                let i = match self.at.get(&key) {
                    Some(&i) => i,
                    None => {
                        self.groups.push(Group {
                            bucket,
                            host: key.1.clone(),
                            dataset: key.2.clone(),
                            names: Vec::new(),
                        });
                        self.at.insert(key, self.groups.len() - 1);
                        self.groups.len() - 1
                    }
                };
                self.last = Some(i);
                i
            }
        };
        &mut self.groups[i]
    }

    /// Removes and returns the counts of the buckets before `before` (all with None): a
    /// live flush leaves the bucket still filling.
    pub fn take(&mut self, before: Option<i64>) -> Metrics {
        let (done, keep): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| before.is_none_or(|b| g.bucket < b));
        self.at = keep
            .iter()
            .enumerate()
            .map(|(i, g)| ((g.bucket, g.host.clone(), g.dataset.clone()), i))
            .collect();
        self.groups = keep;
        self.last = None;
        Metrics {
            groups: done,
            at: HashMap::new(),
            last: None,
        }
    }

    /// Every count: `((bucket, host, dataset, name), n)`.
    pub fn into_counts(self) -> impl Iterator<Item = (MetricKey, u64)> {
        self.groups.into_iter().flat_map(|g| {
            let (b, h, d) = (g.bucket, g.host, g.dataset);
            g.names
                .into_iter()
                .map(move |(n, c)| ((b, h.clone(), d.clone(), n), c))
        })
    }
}

impl Group {
    fn add(&mut self, name: &str) {
        match self.names.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => self.names.push((name.to_string(), 1)),
        }
    }
}

/// What a batch counts, merged by the Python side into its totals (per key, not per line).
#[derive(Default)]
pub struct Tally {
    /// (few distinct keys: a vector searched in order beats hashing each line's)
    pub datasets: Vec<(String, u64)>,
    pub problems: Vec<(String, u64)>,
    pub metrics: Metrics,
    /// address -> (bans, failures, country of the last one that had one)
    pub security: HashMap<String, (u64, u64, Option<String>)>,
    pub side: Vec<Side>,
}

/// What the TTL index feed reads of a line that moves a Fail2ban or Postfix count (or a
/// `server_stopped`): a few strings, not the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub host: Option<String>,
    pub dataset: Option<String>,
    pub action: Option<String>,
    pub jail: Option<String>,
    pub address: Option<String>,
    pub queueid: Option<String>,
    /// the line has a `postfix` object (the queue entry is refreshed even without an id)
    pub postfix: bool,
    pub removed: bool,
    pub position: usize,
}

/// Rule groups counted per Wazuh alert: a bound against pathological alerts.
const MAX_GROUPS: usize = 8;

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// `x or default`, then `str(x)` as Python would write it into a metric name.
fn or_text<'a>(v: Option<&'a Value>, default: &'a str) -> std::borrow::Cow<'a, str> {
    match v {
        Some(Value::Str(s)) if !s.is_empty() => std::borrow::Cow::Borrowed(s),
        Some(v) if v.truthy() => std::borrow::Cow::Owned(py_str(v)),
        _ => std::borrow::Cow::Borrowed(default),
    }
}

/// A piece of a metric name.
enum Part<'a> {
    Lit(&'static str),
    Val(&'a Value),
}

fn push_py_str(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => out.push_str(s),
        other => out.push_str(&py_str(other)),
    }
}

/// Epoch seconds of an ISO 8601 `@timestamp` (what `datetime.fromisoformat` reads; a
/// naive one as UTC), truncated as `int()` does; None when it is no time.
pub fn epoch_of(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    // the parser's own form, YYYY-MM-DDTHH:MM:SS.mmmZ: no general parse
    if b.len() == 24 && b[23] == b'Z' && b[19] == b'.' && b[10] == b'T' {
        let n = |i: usize, w: usize| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[i..i + w] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (c - b'0') as i64;
            }
            Some(v)
        };
        let (y, mo, d) = (n(0, 4)?, n(5, 2)?, n(8, 2)?);
        let (h, mi, s) = (n(11, 2)?, n(14, 2)?, n(17, 2)?);
        if (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s < 60 {
            return Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s);
        }
    }
    let t = fromisoformat(&ts.replace('Z', "+00:00"))?;
    let us = t.civil.wall_us() - t.offset_us.unwrap_or(0);
    // int(float seconds): towards zero
    Some((us as f64 / 1e6).trunc() as i64)
}

impl Tally {
    /// `DerivedMetrics.observe`: the counts one document adds to its bucket.
    pub fn observe_metrics(&mut self, doc: &Map, bucket: i64) {
        let event = doc.get("event").and_then(Value::as_map);
        let get = |k: &str| event.and_then(|e| e.get(k));
        let dataset = or_text(get("dataset"), "unknown");
        let host = or_text(
            doc.get("host")
                .and_then(Value::as_map)
                .and_then(|h| h.get("name")),
            "unknown",
        );
        let g = self.metrics.group(bucket, &host, &dataset);
        let mut name = String::new();
        // a name of `parts`, each a literal or a value as `str()` writes it
        let mut add = |parts: &[Part]| {
            name.clear();
            for p in parts {
                match p {
                    Part::Lit(s) => name.push_str(s),
                    Part::Val(v) => push_py_str(&mut name, v),
                }
            }
            g.add(&name);
        };
        add(&[Part::Lit("events")]);
        let action = get("action").filter(|a| a.truthy());
        if let Some(a) = action {
            add(&[Part::Lit("action."), Part::Val(a)]);
        }
        if text(get("outcome")) == Some("failure") {
            add(&[Part::Lit("failures")]);
        }
        if let (Some(f2b), Some(a)) = (doc.get("fail2ban").filter(|v| v.truthy()), action) {
            let f2b = f2b.as_map();
            if let Some(jail) = f2b.and_then(|m| m.get("jail")).filter(|j| j.truthy()) {
                add(&[
                    Part::Lit("jail."),
                    Part::Val(jail),
                    Part::Lit("."),
                    Part::Val(a),
                ]);
            }
            if text(Some(a)) == Some("ban") {
                let cc = doc
                    .get("source")
                    .and_then(Value::as_map)
                    .and_then(|s| s.get("geo"))
                    .and_then(Value::as_map)
                    .and_then(|g| g.get("country_iso_code"))
                    .filter(|c| c.truthy());
                if let Some(cc) = cc {
                    add(&[Part::Lit("country."), Part::Val(cc), Part::Lit(".ban")]);
                }
            }
        }
        if let Some(pf) = doc
            .get("postfix")
            .filter(|v| v.truthy())
            .and_then(Value::as_map)
        {
            if let Some(status) = pf.get("status").filter(|s| s.truthy()) {
                add(&[Part::Lit("delivery."), Part::Val(status)]);
            }
            if text(pf.get("action")) == Some("reject") {
                let code = [pf.get("status_code"), pf.get("status_code_enhanced")]
                    .into_iter()
                    .flatten()
                    .find(|c| c.truthy());
                match code {
                    Some(c) => add(&[Part::Lit("reject."), Part::Val(c)]),
                    None => add(&[Part::Lit("reject.none")]),
                }
            }
        }
        if dataset == "wazuh.alerts" {
            if let Some(rule) = doc
                .get("rule")
                .filter(|r| r.truthy())
                .and_then(Value::as_map)
            {
                if let Some(level) = rule.get("level").filter(|l| !matches!(l, Value::Null)) {
                    add(&[Part::Lit("level."), Part::Val(level)]);
                }
                if let Some(Value::List(groups)) = rule.get("groups") {
                    for gr in groups.iter().take(MAX_GROUPS) {
                        add(&[Part::Lit("group."), Part::Val(gr)]);
                    }
                }
            }
        }
    }

    /// The replay summary's tables: who was banned, who failed to log in, from where.
    pub fn observe_security(&mut self, doc: &Map) {
        let event = doc.get("event").and_then(Value::as_map);
        let action = event.and_then(|e| text(e.get("action")));
        let failure = event.and_then(|e| text(e.get("outcome"))) == Some("failure");
        let ban = action == Some("ban");
        if !ban && !failure {
            return;
        }
        let src = doc.get("source").and_then(Value::as_map);
        let who = src.and_then(|s| {
            [s.get("ip"), s.get("address")]
                .into_iter()
                .flatten()
                .find(|v| v.truthy())
        });
        let Some(who) = who else { return };
        let cc = src
            .and_then(|s| s.get("geo"))
            .and_then(Value::as_map)
            .and_then(|g| g.get("country_iso_code"))
            .filter(|c| c.truthy())
            .map(py_str);
        let entry = self.security.entry(py_str(who)).or_insert((0, 0, None));
        if ban {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if cc.is_some() {
            entry.2 = cc;
        }
    }

    /// The side record of a line the TTL index feed must see (see `index/feed.py`): one
    /// that moves a Fail2ban or Postfix count, or any line with `every` (the feed's `logs`
    /// source keeps an entry per dataset).
    pub fn observe_side(&mut self, doc: &Map, position: usize, every: bool) {
        let event = doc.get("event").and_then(Value::as_map);
        let field = |k: &str| event.and_then(|e| text(e.get(k))).map(str::to_string);
        let f2b = doc
            .get("fail2ban")
            .filter(|v| v.truthy())
            .and_then(Value::as_map);
        let pf = doc
            .get("postfix")
            .filter(|v| v.truthy())
            .and_then(Value::as_map);
        let action = field("action");
        let dataset = field("dataset");
        let stopped = action.as_deref() == Some("server_stopped")
            && dataset.as_deref() == Some("fail2ban.log");
        if f2b.is_none() && pf.is_none() && !stopped && !every {
            return;
        }
        let src = doc.get("source").and_then(Value::as_map);
        let address = src
            .and_then(|s| {
                [s.get("ip"), s.get("address")]
                    .into_iter()
                    .flatten()
                    .find(|v| v.truthy())
            })
            .and_then(Value::as_str)
            .map(str::to_string);
        self.side.push(Side {
            host: doc
                .get("host")
                .and_then(Value::as_map)
                .and_then(|h| text(h.get("name")))
                .map(str::to_string),
            dataset,
            action,
            jail: f2b.and_then(|m| text(m.get("jail"))).map(str::to_string),
            address,
            queueid: pf.and_then(|m| text(m.get("queueid"))).map(str::to_string),
            postfix: pf.is_some(),
            removed: pf.is_some_and(|m| {
                text(m.get("message")) == Some("removed")
                    || text(m.get("postsuper_action")) == Some("removed")
            }),
            position,
        });
    }

    pub fn count_dataset(&mut self, doc: &Map) {
        let ds = or_text(
            doc.get("event")
                .and_then(Value::as_map)
                .and_then(|e| e.get("dataset")),
            "unknown",
        );
        count(&mut self.datasets, &ds);
    }

    /// Each tag of the document's `tags` once per occurrence.
    pub fn count_tags(&mut self, doc: &Map) {
        let Some(Value::List(tags)) = doc.get("tags") else {
            return;
        };
        for t in tags.iter().filter_map(Value::as_str) {
            count(&mut self.problems, t);
        }
    }
}

fn count(counts: &mut Vec<(String, u64)>, key: &str) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key.to_string(), 1)),
    }
}

/// `default_host`: the host a line that names none gets (a map only: a JSON line's own
/// non-object `host` stays as it is).
pub fn default_host(doc: &mut Map, name: &str) {
    match doc.get_mut("host") {
        None => {
            let mut h = Map::new();
            h.push("name", Value::str(name));
            doc.push("host", Value::Map(h));
        }
        Some(Value::Map(h)) => {
            if !h.contains("name") {
                h.push("name", Value::str(name));
            }
        }
        Some(_) => {}
    }
}

/// The dataset a document's index is named after.
pub fn dataset_of(doc: &Map) -> &str {
    doc.get("event")
        .and_then(Value::as_map)
        .and_then(|e| e.get("dataset"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_the_template_and_elasticsearch_rules() {
        let mut n = IndexNamer::new(
            "streams-{dataset}-{date}".into(),
            vec![("wazuh.alerts".into(), "wazuh-alerts-4.x-{date}".into())],
        );
        assert_eq!(
            n.name("sshd.log", "2026-11-24T00:05:01.000Z"),
            "streams-sshd.log-2026.11.24"
        );
        assert_eq!(
            n.name("wazuh.alerts", "2026-11-24T00:05:01.000Z"),
            "wazuh-alerts-4.x-2026.11.24"
        );
        assert_eq!(
            n.name("My Data/Set", "2026-11-24"),
            "streams-my_data_set-2026.11.24"
        );
        assert_eq!(index_name("a{{b}}-{date}", "x", "d"), "a_b_-d");
    }

    #[test]
    fn ids_are_blake2b_96_of_the_parts() {
        // hashlib.blake2b(b"a\0" b"1\0" b"line", digest_size=12).hexdigest()
        assert_eq!(event_id(&[b"a", b"1", b"line"]), "1044802f12e5072a13903de2");
        assert_eq!(event_id(&[b"a", b"1", b"line"]).len(), 24);
    }

    #[test]
    fn the_default_host_fills_only_a_missing_name() {
        let host = |doc: &Map| doc.get("host").cloned();
        let mut doc = Map::new();
        default_host(&mut doc, "mx9");
        assert_eq!(
            host(&doc),
            Some(Value::Map(Map(vec![("name".into(), Value::str("mx9"))])))
        );
        let mut doc = Map(vec![(
            "host".into(),
            Value::Map(Map(vec![("ip".into(), Value::str("1"))])),
        )]);
        default_host(&mut doc, "mx9");
        let want = Map(vec![
            ("ip".into(), Value::str("1")),
            ("name".into(), Value::str("mx9")),
        ]);
        assert_eq!(host(&doc), Some(Value::Map(want)));
        let mut doc = Map(vec![(
            "host".into(),
            Value::Map(Map(vec![("name".into(), Value::str("mx1"))])),
        )]);
        default_host(&mut doc, "mx9");
        assert_eq!(
            doc.get("host")
                .and_then(Value::as_map)
                .and_then(|h| h.get("name")),
            Some(&Value::str("mx1"))
        );
        let mut doc = Map(vec![("host".into(), Value::str("web"))]);
        default_host(&mut doc, "mx9");
        assert_eq!(host(&doc), Some(Value::str("web")));
    }

    #[test]
    fn epochs_of_iso_stamps() {
        assert_eq!(epoch_of("1970-01-01T00:01:00.000Z"), Some(60));
        assert_eq!(epoch_of("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            epoch_of("2026-11-24T00:05:01.000Z"),
            epoch_of("2026-11-24T00:05:01+00:00")
        );
        assert_eq!(epoch_of("yesterday"), None);
    }
}
