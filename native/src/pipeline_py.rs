//! The Python face of the batch pipeline: `streams._native.Pipeline`. One call takes the
//! bytes of many lines (a replay block) or the messages of many socket reads (`run`) and
//! gives back the output bytes per index and what the batch counts; the GIL is released
//! while the lines are parsed, enriched and written.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::doc::{Map, Value};
use crate::geoip::GeoIp;
use crate::geoip_py::PyGeoIp;
use crate::parser::{Parsed, Parser};
use crate::parser_py::{decode, event_doc, from_py, parse_with_hooks, PyParser};
use crate::pipeline::{
    dataset_of, default_host, epoch_of, event_id, Format, IndexNamer, MetricKey, Metrics, Output,
    Tally,
};
use crate::timestamps::format_timestamp;

const FROM_INGEST: &str = "_timestamp_from_ingest";

#[pyclass(name = "Pipeline", module = "streams._native")]
pub struct PyPipeline {
    parser: Py<PyParser>,
    namer: IndexNamer,
    format: Format,
    bucket: i64,
    /// `(fields, message, tags, hooks, line) -> (fields, message, tags)`: runs a rule's
    /// Python hooks (the escape hatch); called with the GIL for those lines only
    hooks: Option<Py<PyAny>>,
    /// the derived counts of every batch so far, until `take_metrics`
    metrics: Metrics,
    /// output buffers for the next batch
    pool: Vec<Vec<u8>>,
    geoip: Option<Py<PyGeoIp>>,
}

/// What one batch gives the Python side.
struct Batch {
    lines: u64,
    empty: u64,
    events: u64,
    out: Output,
    tally: Tally,
}

/// The document of a parsed (and enriched) line: its host and time defaults.
fn finish(p: Parsed, host: Option<&str>, now_text: &str) -> Map {
    let mut doc = event_doc(p);
    if let Some(h) = host {
        default_host(&mut doc, h);
    }
    stamp_if_none(&mut doc, now_text);
    doc
}

/// A document with no time of its own takes the ingest time, tagged so.
fn stamp_if_none(doc: &mut Map, now_text: &str) {
    if !doc.contains("@timestamp") {
        doc.insert("@timestamp", Value::str(now_text));
        doc.tag(FROM_INGEST);
    }
}

/// What one batch works with: the pipeline's parts, borrowed for the call (the GIL
/// released meanwhile), and the batch being filled.
struct Work<'a> {
    parser: &'a mut Parser,
    geoip: Option<&'a mut GeoIp>,
    namer: &'a mut IndexNamer,
    hooks: Option<&'a Py<PyAny>>,
    bucket: i64,
    b: Batch,
}

impl Work<'_> {
    /// A line parsed (its rule's Python hooks run, if any), its input's tags added, enriched.
    fn parse(&mut self, text: &str, tags: impl IntoIterator<Item = String>) -> Parsed {
        let mut p = parse_with_hooks(self.parser, self.hooks, text);
        p.tags.extend(tags);
        if let Some(g) = self.geoip.as_mut() {
            g.enrich(&mut p.doc, &mut p.tags);
        }
        p
    }

    /// A finished document into its index's chunk; counted, its metrics in `bucket`.
    fn write(&mut self, doc: &Map, id: &str, position: usize, bucket: Option<i64>) {
        let ts = doc.get("@timestamp").and_then(Value::as_str).unwrap_or("");
        let index = self.namer.name(dataset_of(doc), ts);
        self.b.out.write(index, id, doc, position);
        if let Some(b) = bucket {
            self.b.tally.observe_metrics(doc, b);
        }
        self.b.tally.count_dataset(doc);
        self.b.events += 1;
    }
}

impl PyPipeline {
    /// Runs `f` over a new batch with the GIL released; the counts and buffers that
    /// outlive a batch go back into the pipeline, the batch to Python.
    fn run<'py, R: Send>(
        &mut self,
        py: Python<'py>,
        f: impl FnOnce(&mut Work<'_>) -> R + Send,
    ) -> PyResult<(Bound<'py, PyDict>, R)> {
        let mut parser = self.parser.borrow_mut(py);
        let mut geoip = self.geoip.as_ref().map(|g| g.borrow_mut(py));
        let b = Batch {
            lines: 0,
            empty: 0,
            events: 0,
            out: Output::new(self.format, std::mem::take(&mut self.pool)),
            tally: Tally {
                metrics: std::mem::take(&mut self.metrics),
                ..Tally::default()
            },
        };
        let mut work = Work {
            parser: &mut parser.inner,
            geoip: geoip.as_mut().map(|g| &mut g.inner),
            namer: &mut self.namer,
            hooks: self.hooks.as_ref(),
            bucket: self.bucket,
            b,
        };
        let r = py.detach(|| f(&mut work));
        let mut b = work.b;
        drop(parser);
        drop(geoip);
        self.metrics = std::mem::take(&mut b.tally.metrics);
        let d = batch_to_py(py, b, &mut self.pool)?;
        Ok((d, r))
    }
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (parser, *, index_template, per_dataset, format = "bulk", bucket_seconds = 60, hooks = None, geoip = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        parser: Py<PyParser>,
        index_template: String,
        per_dataset: Vec<(String, String)>,
        format: &str,
        bucket_seconds: i64,
        hooks: Option<Py<PyAny>>,
        geoip: Option<Py<PyGeoIp>>,
    ) -> PyResult<Self> {
        let format = match format {
            "bulk" => Format::Bulk,
            "spool" => Format::Spool,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown output format {other:?}"
                )))
            }
        };
        if bucket_seconds <= 0 {
            return Err(PyValueError::new_err("bucket_seconds must be > 0"));
        }
        Ok(PyPipeline {
            parser,
            namer: IndexNamer::new(index_template, per_dataset),
            format,
            bucket: bucket_seconds,
            hooks,
            metrics: Metrics::default(),
            pool: Vec::new(),
            geoip,
        })
    }

    /// The lines of `data` (whole lines of one file, numbered from `first_line`): parsed,
    /// enriched, written. Metrics count by each document's own `@timestamp`; a line with
    /// no time takes `now`'s (tagged); `host`: the `host.name` of lines that name none.
    #[pyo3(signature = (data, *, source, first_line, now, host = None))]
    fn replay<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        source: &str,
        first_line: u64,
        now: f64,
        host: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let now_text =
            format_timestamp(now).ok_or_else(|| PyValueError::new_err("now out of range"))?;
        let (d, ()) = self.run(py, |w| {
            let data = data.strip_suffix(b"\n").unwrap_or(data);
            if data.is_empty() {
                return;
            }
            let mut digits = itoa::Buffer::new();
            for raw in data.split(|&c| c == b'\n') {
                w.b.lines += 1;
                let lineno = first_line + w.b.lines - 1;
                let (text, problems) = decode(raw, w.parser.max_line);
                if text.chars().all(crate::pyunicode::is_space) {
                    w.b.empty += 1;
                    continue;
                }
                let p = w.parse(&text, problems.iter().map(|s| s.to_string()));
                let doc = finish(p, host, &now_text);
                w.b.tally.count_tags(&doc);
                w.b.tally.observe_security(&doc);
                let original = doc
                    .get("event")
                    .and_then(Value::as_map)
                    .and_then(|e| e.get("original"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let id = event_id(&[
                    source.as_bytes(),
                    digits.format(lineno).as_bytes(),
                    original.as_bytes(),
                ]);
                let ts = doc.get("@timestamp").and_then(Value::as_str).unwrap_or("");
                let bucket = epoch_of(ts).map(|e| e - e.rem_euclid(w.bucket));
                w.write(&doc, &id, w.b.events as usize, bucket);
            }
        })?;
        Ok(d)
    }

    /// The derived counts (`[((bucket, host, dataset, name), n)]`) of the buckets before
    /// `before` (all with None), forgotten here.
    #[pyo3(signature = (before = None))]
    fn take_metrics(&mut self, before: Option<i64>) -> Vec<(MetricKey, u64)> {
        self.metrics.take(before).into_counts().collect()
    }

    /// A live batch: the worker's records (`Received`: a syslog line in `text`, parsed
    /// here, or a structured event whose `(document, original)` `structured(item, position)`
    /// gives). Metrics count in the bucket the record arrived in (never before
    /// `open_bucket`, the first one not flushed yet); `feed`: 0 no side records, 1 those of
    /// lines that move an index count, 2 every line's. Besides the batch: `failed`
    /// [(position, why)] of records that could not be handled (dead-lettered by the
    /// caller), `acks` [(position, ack)] of the records that carry one, `structured`
    /// [(position, document)] of the structured events written.
    #[pyo3(signature = (items, structured, *, open_bucket, feed = 1))]
    fn live<'py>(
        &mut self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        structured: &Bound<'py, PyAny>,
        open_bucket: i64,
        feed: u8,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Records {
            records: recs,
            acks,
            structured,
        } = records(py, items, structured)?;
        let (d, failed) = self.run(py, |w| {
            w.b.lines = recs.len() as u64;
            let mut failed: Vec<(usize, String)> = Vec::new();
            // the records of one socket read share their receive time: formatted once
            let mut stamp = (f64::NAN, String::new());
            for (pos, rec) in recs.into_iter().enumerate() {
                let rec = match rec {
                    Ok(r) => r,
                    Err(why) => {
                        failed.push((pos, why));
                        continue;
                    }
                };
                if stamp.0.to_bits() != rec.received_at.to_bits() {
                    stamp = (
                        rec.received_at,
                        format_timestamp(rec.received_at).unwrap_or_default(),
                    );
                }
                let received = &stamp.1;
                let (doc, original, parsed) = match rec.body {
                    Body::Line(text) => {
                        let p = w.parse(&text, rec.tags);
                        (finish(p, rec.peer_host.as_deref(), received), text, true)
                    }
                    Body::Document(mut doc, original) => {
                        stamp_if_none(&mut doc, received);
                        (doc, original, false)
                    }
                };
                let ts = doc.get("@timestamp").and_then(Value::as_str).unwrap_or("");
                // deterministic: the same message resent after a restart (RELP) gets the
                // same _id, so Elasticsearch keeps one copy
                let host = doc.get("host").and_then(Value::as_map);
                let source = host
                    .and_then(|h| {
                        [h.get("hostname"), h.get("name")]
                            .into_iter()
                            .flatten()
                            .find(|v| v.truthy())
                    })
                    .map_or_else(|| rec.listener.clone(), crate::doc::py_str);
                let id = event_id(&[source.as_bytes(), ts.as_bytes(), b"0", original.as_bytes()]);
                if parsed && feed > 0 {
                    w.b.tally.observe_side(&doc, pos, feed > 1);
                }
                // the interval it arrived in, unless that one was flushed already
                let arrived = rec.received_at as i64;
                let bucket = (arrived - arrived.rem_euclid(w.bucket)).max(open_bucket);
                w.write(&doc, &id, pos, Some(bucket));
            }
            failed
        })?;
        d.set_item("failed", failed)?;
        d.set_item("acks", acks)?;
        d.set_item("structured", structured)?;
        Ok(d)
    }
}

/// One record of a live batch as the worker hands it over.
struct Record {
    body: Body,
    tags: Vec<String>,
    received_at: f64,
    peer_host: Option<String>,
    listener: String,
}

/// A syslog line to parse, or a structured event's document (a Riemann event's
/// `to_doc()`) with the text its `_id` is made of.
enum Body {
    Line(String),
    Document(Map, String),
}

/// The worker's records as the core reads them, and what goes back to Python per record
/// type: the acks to resolve, the structured events' documents (the index takes those).
struct Records<'py> {
    records: Vec<Result<Record, String>>,
    acks: Vec<(usize, Bound<'py, PyAny>)>,
    structured: Vec<(usize, Bound<'py, PyAny>)>,
}

/// Reads the records; a structured one (`text` None) gets its `(document, original)` from
/// `structured(item, position)` (None: it cannot be made, the record fails).
fn records<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
    structured: &Bound<'py, PyAny>,
) -> PyResult<Records<'py>> {
    let (text_k, tags_k, at_k, peer_k, listener_k, ack_k) = (
        pyo3::intern!(py, "text"),
        pyo3::intern!(py, "tags"),
        pyo3::intern!(py, "received_at"),
        pyo3::intern!(py, "peer"),
        pyo3::intern!(py, "listener"),
        pyo3::intern!(py, "ack"),
    );
    let mut out = Records {
        records: Vec::with_capacity(items.len()),
        acks: Vec::new(),
        structured: Vec::new(),
    };
    for (pos, item) in items.iter().enumerate() {
        let ack = item.getattr(ack_k)?;
        if !ack.is_none() {
            out.acks.push((pos, ack));
        }
        let raw_text = item.getattr(text_k)?;
        let body = if !raw_text.is_none() {
            Body::Line(match raw_text.extract::<String>() {
                Ok(t) => t,
                // a lone surrogate: parsed as its escape, as the per-line face does
                Err(_) => raw_text
                    .call_method1("encode", ("utf-8", "surrogatepass"))?
                    .call_method1("decode", ("utf-8", "backslashreplace"))?
                    .extract()?,
            })
        } else {
            let prep = structured.call1((&item, pos))?;
            if prep.is_none() {
                out.records
                    .push(Err("the event's document could not be made".to_string()));
                continue;
            }
            let (doc, original): (Bound<'_, PyAny>, String) = prep.extract()?;
            match from_py(&doc) {
                Ok(Value::Map(m)) => {
                    out.structured.push((pos, doc));
                    Body::Document(m, original)
                }
                Ok(_) => {
                    out.records.push(Err(
                        "TypeError: the event's document is not an object".to_string()
                    ));
                    continue;
                }
                Err(e) => {
                    out.records
                        .push(Err(format!("{}: {}", e.get_type(py).name()?, e.value(py))));
                    continue;
                }
            }
        };
        let peer = item.getattr(peer_k)?;
        let peer_host = match peer.cast::<pyo3::types::PyTuple>() {
            Ok(t) if !t.is_empty() => Some(t.get_item(0)?.str()?.to_string()),
            _ => None,
        };
        out.records.push(Ok(Record {
            body,
            tags: item.getattr(tags_k)?.extract()?,
            received_at: item.getattr(at_k)?.extract()?,
            peer_host,
            listener: item.getattr(listener_k)?.extract()?,
        }));
    }
    Ok(out)
}

fn batch_to_py<'py>(
    py: Python<'py>,
    b: Batch,
    pool: &mut Vec<Vec<u8>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("lines", b.lines)?;
    d.set_item("empty", b.empty)?;
    d.set_item("events", b.events)?;
    let chunks = PyList::empty(py);
    for c in &b.out.chunks {
        let positions: Vec<u8> = c.positions.iter().flat_map(|p| p.to_ne_bytes()).collect();
        chunks.append((
            c.index.as_str(),
            PyBytes::new(py, &c.data),
            c.count,
            PyBytes::new(py, &positions),
        ))?;
    }
    d.set_item("chunks", chunks)?;
    *pool = b.out.recycle();
    let t = b.tally;
    d.set_item(
        "datasets",
        t.datasets.into_iter().collect::<HashMap<_, _>>(),
    )?;
    d.set_item(
        "problems",
        t.problems.into_iter().collect::<HashMap<_, _>>(),
    )?;
    let security = PyList::empty(py);
    for (ip, (bans, failures, cc)) in t.security {
        security.append((ip, bans, failures, cc))?;
    }
    d.set_item("security", security)?;
    let side = PyList::empty(py);
    for s in t.side {
        side.append((
            s.position, s.host, s.dataset, s.action, s.jail, s.address, s.queueid, s.postfix,
            s.removed,
        ))?;
    }
    d.set_item("side", side)?;
    Ok(d)
}

/// `event_id(parts)`: the deterministic `_id` (see `pipeline::event_id`), for the
/// documents that do not come through a batch.
#[pyfunction]
pub fn event_id_of(parts: Vec<Vec<u8>>) -> String {
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    event_id(&refs)
}

/// The index a template names for a dataset and an ISO `@timestamp`.
#[pyfunction]
pub fn index_name(template: &str, dataset: &str, timestamp: &str) -> String {
    IndexNamer::new(template.to_string(), Vec::new())
        .name(dataset, timestamp)
        .to_string()
}

/// The derived metric counts of one document: `[((bucket, host, dataset, name), n)]`,
/// in the bucket of its `@timestamp` unless `bucket` is given (none when it has no time).
#[pyfunction]
#[pyo3(signature = (doc, bucket_seconds, bucket = None))]
pub fn metric_counts(
    doc: &Bound<'_, PyDict>,
    bucket_seconds: i64,
    bucket: Option<i64>,
) -> PyResult<Vec<(MetricKey, u64)>> {
    let Value::Map(doc) = from_py(doc.as_any())? else {
        unreachable!("a dict converts to a map")
    };
    let b = match bucket {
        Some(b) => b,
        None => match doc
            .get("@timestamp")
            .and_then(Value::as_str)
            .and_then(epoch_of)
        {
            Some(e) if bucket_seconds > 0 => e - e.rem_euclid(bucket_seconds),
            _ => return Ok(Vec::new()),
        },
    };
    let mut t = Tally::default();
    t.observe_metrics(&doc, b);
    Ok(t.metrics.into_counts().collect())
}

/// What a line's side record says of one document (for the per-document callers of the
/// index feed): `(host, dataset, action, jail, address, queueid, postfix, removed)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn side_record(
    doc: &Bound<'_, PyDict>,
) -> PyResult<(
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    bool,
)> {
    let Value::Map(doc) = from_py(doc.as_any())? else {
        unreachable!("a dict converts to a map")
    };
    let mut t = Tally::default();
    t.observe_side(&doc, 0, true);
    let s = t.side.pop().expect("every document has one with `every`");
    Ok((
        s.host, s.dataset, s.action, s.jail, s.address, s.queueid, s.postfix, s.removed,
    ))
}

/// Resolves a batch's acks (`live`'s `acks`, [(position, ack)]): `ack(ok)` with `ok`
/// unless the whole batch failed or the position is in `refused`; one callback raising
/// does not keep the others from their answer. Returns the errors raised, to be logged.
#[pyfunction]
pub fn settle<'py>(
    acks: &Bound<'py, PyList>,
    refused: &Bound<'py, PyAny>,
    failed: bool,
) -> PyResult<Vec<PyErr>> {
    let mut errors = Vec::new();
    for entry in acks.iter() {
        let (pos, ack): (usize, Bound<'py, PyAny>) = entry.extract()?;
        let ok = !failed && !refused.contains(pos)?;
        if let Err(e) = ack.call1((ok,)) {
            errors.push(e);
        }
    }
    Ok(errors)
}
