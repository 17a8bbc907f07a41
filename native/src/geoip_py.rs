//! The Python face of GeoIP: `streams._native.MaxMindDB` (one opened file) and
//! `streams._native.GeoIP` (the enricher; `streams/enrich/geoip.py` configures it, swaps
//! its databases on reload and reports its counters). See `streams/_native.pyi`.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::doc::Map;
use crate::geoip::address::{self, NOT_PUBLIC_V4, NOT_PUBLIC_V6};
use crate::geoip::mmdb::{Mmdb, MmdbError};
use crate::geoip::{Document, Found, GeoIp, Top, FAILURE_TAG, WAZUH_DATASET};
use crate::parser_py::{map_to_py, to_py};

fn mmdb_err(e: MmdbError) -> PyErr {
    match e {
        MmdbError::Io(e) => PyErr::from(e),
        MmdbError::Invalid(m) => PyValueError::new_err(m),
    }
}

/// A MaxMind DB file, memory-mapped: replace it by rename, never write it in place.
#[pyclass(name = "MaxMindDB", module = "streams._native")]
pub struct PyMaxMindDb {
    db: Option<Arc<Mmdb>>,
}

impl PyMaxMindDb {
    fn db(&self) -> PyResult<&Arc<Mmdb>> {
        self.db
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("the database is closed"))
    }
}

#[pymethods]
impl PyMaxMindDb {
    /// OSError when the file cannot be read, ValueError when it is not a MaxMind DB.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let db = py.detach(|| Mmdb::open(&path)).map_err(mmdb_err)?;
        Ok(PyMaxMindDb {
            db: Some(Arc::new(db)),
        })
    }

    #[getter]
    fn database_type(&self) -> PyResult<String> {
        Ok(self.db()?.database_type().to_string())
    }

    #[getter]
    fn build_epoch(&self) -> PyResult<u64> {
        Ok(self.db()?.build_epoch())
    }

    #[getter]
    fn node_count(&self) -> PyResult<u32> {
        Ok(self.db()?.node_count())
    }

    #[getter]
    fn ip_version(&self) -> PyResult<u16> {
        Ok(self.db()?.ip_version())
    }

    /// The whole record of an address (a dict), or None when it is in no network of the
    /// file (an IPv6 address in an IPv4-only file neither). ValueError for a text that is
    /// not an address, or a damaged file.
    fn get<'py>(&self, py: Python<'py>, ip: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let addr = address::parse(ip)
            .ok_or_else(|| PyValueError::new_err(format!("{ip:?} is not an IP address")))?;
        match self.db()?.get(addr.ip).map_err(mmdb_err)? {
            Some(v) => Ok(Some(to_py(py, &v)?)),
            None => Ok(None),
        }
    }

    /// Unmaps the file (once no GeoIP uses it either).
    fn close(&mut self) {
        self.db = None;
    }
}

/// The enricher: lookups, the LRU of built fragments, the layouts and the counters.
#[pyclass(name = "GeoIP", module = "streams._native")]
pub struct PyGeoIp {
    pub inner: GeoIp,
    /// per configured field: its path's keys and its target, as Python strings made once
    keys: Vec<(Vec<Py<PyString>>, Py<PyString>)>,
}

#[pymethods]
impl PyGeoIp {
    #[new]
    #[pyo3(signature = (fields, layouts, *, wazuh_alerts = true, cache_size = 65536))]
    fn new(
        py: Python<'_>,
        fields: Vec<(String, String)>,
        layouts: Vec<String>,
        wazuh_alerts: bool,
        cache_size: usize,
    ) -> PyResult<Self> {
        let inner = GeoIp::new(&fields, &layouts, wazuh_alerts, cache_size)
            .map_err(PyValueError::new_err)?;
        let keys = fields
            .iter()
            .map(|(f, target)| {
                let path = f
                    .split('.')
                    .map(|p| PyString::intern(py, p).unbind())
                    .collect();
                (path, PyString::intern(py, target).unbind())
            })
            .collect();
        Ok(PyGeoIp { inner, keys })
    }

    /// Puts a database (or none) in the `city` or `asn` slot; the cache is cleared.
    #[pyo3(signature = (kind, db))]
    fn set_database(&mut self, kind: &str, db: Option<PyRef<'_, PyMaxMindDb>>) -> PyResult<()> {
        let db = match db {
            Some(db) => Some(db.db()?.clone()),
            None => None,
        };
        match kind {
            "city" => self.inner.set_city(db),
            "asn" => self.inner.set_asn(db),
            _ => return Err(PyValueError::new_err(format!("no {kind:?} database slot"))),
        }
        Ok(())
    }

    /// Enriches `fields` in place (see `GeoIp::enrich`); `tags` gets
    /// "_geoip_lookup_failure" once when a public address is in no database.
    fn enrich(&mut self, fields: &Bound<'_, PyDict>, tags: &Bound<'_, PyList>) -> PyResult<()> {
        let mut doc = PyDoc {
            d: fields,
            keys: &self.keys,
            err: None,
        };
        let failed = self.inner.enrich_document(&mut doc);
        if let Some(e) = doc.err {
            return Err(e);
        }
        let py = fields.py();
        if failed && !tags.contains(intern!(py, FAILURE_TAG))? {
            tags.append(intern!(py, FAILURE_TAG))?;
        }
        Ok(())
    }

    /// Empties the cache (after a database changed); the counters keep counting.
    fn clear_cache(&mut self) {
        self.inner.clear_cache();
    }

    /// lookups, hits, misses, cache_entries, enriched, failures, skipped_private,
    /// skipped_invalid.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.counters();
        let d = PyDict::new(py);
        for (k, v) in [
            ("lookups", c.hits + c.misses),
            ("hits", c.hits),
            ("misses", c.misses),
            ("cache_entries", self.inner.cache_entries() as u64),
            ("enriched", c.enriched),
            ("failures", c.failures),
            ("skipped_private", c.skipped_private),
            ("skipped_invalid", c.skipped_invalid),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// `(version, integer, canonical text)` of an address literal, else None (what
    /// decides "skipped_invalid").
    #[staticmethod]
    fn address(text: &str) -> Option<(u8, u128, String)> {
        address::parse(text).map(|a| (a.version(), a.int(), a.text))
    }

    /// Whether an address is outside the skipped ranges ([`NOT_PUBLIC`]).
    #[staticmethod]
    fn is_public(version: u8, n: u128) -> bool {
        address::is_public(version, n)
    }

    /// The skipped ranges per IP version, as CIDR texts.
    #[classattr]
    #[allow(non_snake_case)]
    fn NOT_PUBLIC(py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        d.set_item(4, PyTuple::new(py, NOT_PUBLIC_V4)?)?;
        d.set_item(6, PyTuple::new(py, NOT_PUBLIC_V6)?)?;
        Ok(d.unbind())
    }
}

/// A Python dict as a [`Document`], changed in place; dicts and strings are taken only
/// when exactly of those types (as the Python code did). The first Python error stops
/// nothing here: it is kept and raised once the document is done.
struct PyDoc<'a, 'py> {
    d: &'a Bound<'py, PyDict>,
    keys: &'a [(Vec<Py<PyString>>, Py<PyString>)],
    err: Option<PyErr>,
}

/// A found address's fragments as dicts, made once per cache entry (in `Found::host`):
/// a hit copies them (and their one nested object), as the Python code did.
struct PyFragments {
    geo: Option<Py<PyDict>>,
    asn: Option<Py<PyDict>>,
    logstash: Option<Py<PyDict>>,
    wazuh: Option<Py<PyDict>>,
}

impl PyFragments {
    fn of<'a>(py: Python<'_>, found: &'a Found) -> PyResult<&'a PyFragments> {
        if found.host.get().is_none() {
            let dict = |m: &Option<Map>| -> PyResult<Option<Py<PyDict>>> {
                m.as_ref()
                    .map(|m| Ok(map_to_py(py, m)?.unbind()))
                    .transpose()
            };
            let made = PyFragments {
                geo: dict(&found.geo)?,
                asn: dict(&found.asn)?,
                logstash: dict(&found.logstash)?,
                wazuh: dict(&found.wazuh)?,
            };
            let _ = found.host.set(Box::new(made));
        }
        let host = found.host.get().expect("set above");
        host.downcast_ref::<PyFragments>()
            .ok_or_else(|| PyValueError::new_err("GeoIP fragments of another host"))
    }
}

/// A copy of a fragment for one document (documents must not share dicts), its nested
/// object (`location`, `organization`) copied too.
fn copied<'py>(
    py: Python<'py>,
    d: &Py<PyDict>,
    nested: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = d.bind(py).copy()?;
    if let Some(v) = c.get_item(nested)? {
        if let Ok(inner) = v.cast::<PyDict>() {
            c.set_item(nested, inner.copy()?)?;
        }
    }
    Ok(c)
}

impl PyDoc<'_, '_> {
    fn keep<T>(&mut self, r: PyResult<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.err.get_or_insert(e);
                None
            }
        }
    }

    fn set(
        &mut self,
        d: &Bound<'_, PyDict>,
        key: &Bound<'_, PyString>,
        part: &Py<PyDict>,
        nested: &Bound<'_, PyString>,
    ) {
        let r = copied(d.py(), part, nested).and_then(|v| d.set_item(key, v));
        self.keep(r);
    }
}

impl Document for PyDoc<'_, '_> {
    fn address(&self, field: usize, _path: &[String], out: &mut String) -> bool {
        let py = self.d.py();
        let (first, rest) = self.keys[field].0.split_first().expect("a path");
        let mut cur = match self.d.get_item(first.bind(py)) {
            Ok(Some(v)) => v,
            _ => return false,
        };
        for key in rest {
            let Ok(d) = cur.cast_exact::<PyDict>() else {
                return false;
            };
            match d.get_item(key.bind(py)) {
                Ok(Some(v)) => cur = v,
                _ => return false,
            }
        }
        let Ok(s) = cur.cast_exact::<PyString>() else {
            return false;
        };
        out.clear();
        match s.to_str() {
            Ok(t) => out.push_str(t),
            // lone surrogates: not an address either way
            Err(_) => out.push_str(&s.to_string_lossy()),
        }
        true
    }

    fn fill_target(&mut self, field: usize, _target: &str, found: &Found) {
        let py = self.d.py();
        let Some(frags) = self.keep(PyFragments::of(py, found)) else {
            return;
        };
        let target = self.keys[field].1.bind(py);
        let dest = match self.d.get_item(target) {
            Ok(Some(v)) if !v.is_none() => v,
            Ok(_) => {
                let fresh = PyDict::new(py);
                if self.keep(self.d.set_item(target, &fresh)).is_none() {
                    return;
                }
                fresh.into_any()
            }
            Err(e) => {
                self.keep::<()>(Err(e));
                return;
            }
        };
        let Ok(dest) = dest.cast_exact::<PyDict>() else {
            return;
        };
        for (key, part, nested) in [
            (intern!(py, "geo"), &frags.geo, intern!(py, "location")),
            (intern!(py, "as"), &frags.asn, intern!(py, "organization")),
        ] {
            if let Some(part) = part {
                if self.keep(dest.contains(key)) == Some(false) {
                    self.set(dest, key, part, nested);
                }
            }
        }
    }

    fn put_absent(&mut self, key: Top, found: &Found) {
        let py = self.d.py();
        let Some(frags) = self.keep(PyFragments::of(py, found)) else {
            return;
        };
        let (key, part) = match key {
            Top::Logstash => (intern!(py, "geoip"), &frags.logstash),
            Top::Wazuh => (intern!(py, "GeoLocation"), &frags.wazuh),
        };
        let d = self.d;
        if let Some(part) = part {
            if self.keep(d.contains(key)) == Some(false) {
                self.set(d, key, part, intern!(py, "location"));
            }
        }
    }

    fn is_wazuh_alert(&self) -> bool {
        let py = self.d.py();
        let event = match self.d.get_item(intern!(py, "event")) {
            Ok(Some(e)) => e,
            _ => return false,
        };
        let Ok(event) = event.cast::<PyDict>() else {
            return false;
        };
        match event.get_item(intern!(py, "dataset")) {
            Ok(Some(v)) => v.eq(WAZUH_DATASET).unwrap_or(false),
            _ => false,
        }
    }
}

/// Adds the GeoIP classes to `streams._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMaxMindDb>()?;
    m.add_class::<PyGeoIp>()
}
