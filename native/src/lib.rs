//! streams' native core: the line -> document -> NDJSON path, with a small Python face
//! (`streams._native`). See `native/README.md` for the layout and what is ported so far.

// Documents are many small strings and maps made and freed per line: mimalloc's
// thread-local free lists cost a fraction of glibc malloc's (as in pydantic-core).
#[cfg(feature = "extension-module")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

pub mod doc;
pub mod framing;
mod framing_py;
pub mod geoip;
mod geoip_py;
pub mod grok;
mod grok_py;
pub mod header;
pub mod ip;
pub mod json;
pub mod ops;
pub mod parser;
mod parser_py;
pub mod pcre;
pub mod pipeline;
mod pipeline_py;
pub mod pyunicode;
pub mod relp;
mod relp_py;
pub mod riemann;
pub mod syslog;
pub mod timestamps;

use doc::{Map, Value};

/// `(fields, program, message)` as Python gets them.
type PyHeader<'py> = (
    Bound<'py, PyDict>,
    Option<Bound<'py, PyAny>>,
    Bound<'py, PyAny>,
);

/// Lone surrogates (a `\\ud800` JSON escape, a byte undecodable under `surrogateescape`)
/// have no place in a Rust `str`: a line holding some is parsed with each one swapped for
/// a private-use character of a block the line does not use (neither is a digit, a space
/// or a word character for Python either), and swapped back in what comes out.
#[derive(Clone, Copy)]
struct Surrogates(Option<u32>);

impl Surrogates {
    fn text<'py>(&self, py: Python<'py>, s: &str) -> PyResult<Bound<'py, PyAny>> {
        let Some(base) = self.0 else {
            return Ok(PyString::new(py, s).into_any());
        };
        let stand_in = |c: char| (base..base + 0x800).contains(&(c as u32));
        if !s.chars().any(stand_in) {
            return Ok(PyString::new(py, s).into_any());
        }
        let mut buf = Vec::with_capacity(s.len());
        for c in s.chars() {
            if stand_in(c) {
                let cp = 0xD800 + (c as u32 - base);
                buf.extend_from_slice(&[
                    0xE0 | (cp >> 12) as u8,
                    0x80 | ((cp >> 6) & 0x3F) as u8,
                    0x80 | (cp & 0x3F) as u8,
                ]);
            } else {
                let mut tmp = [0; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
        PyBytes::new(py, &buf).call_method1("decode", ("utf-8", "surrogatepass"))
    }
}

/// The line as a Rust string, and how its lone surrogates were stood in for.
fn line_text(line: &Bound<'_, PyString>) -> PyResult<(String, Surrogates)> {
    if let Ok(s) = line.to_str() {
        return Ok((s.to_string(), Surrogates(None)));
    }
    let units: Vec<u32> = line
        .call_method1("encode", ("utf-32-le", "surrogatepass"))?
        .cast_into::<PyBytes>()?
        .as_bytes()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let base = (0..32u32)
        .map(|i| 0xF0000 + i * 0x800)
        .find(|b| !units.iter().any(|&u| (*b..*b + 0x800).contains(&u)))
        .ok_or_else(|| {
            PyValueError::new_err("no free private-use block for the line's surrogates")
        })?;
    let text = units
        .iter()
        .map(|&u| match u {
            0xD800..=0xDFFF => char::from_u32(base + u - 0xD800),
            _ => char::from_u32(u),
        })
        .collect::<Option<String>>()
        .ok_or_else(|| PyValueError::new_err("not a Unicode string"))?;
    Ok((text, Surrogates(Some(base))))
}

fn to_py<'py>(py: Python<'py>, sur: Surrogates, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Str(s) => sur.text(py, s)?,
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, sur, item)?)?;
            }
            list.into_any()
        }
        Value::Map(m) => map_to_py(py, sur, m)?.into_any(),
        // the rest as the parser's face writes them (Python's own int() for a big one:
        // the same value, and the same ValueError past its digit limit)
        other => parser_py::to_py(py, other)?,
    })
}

fn map_to_py<'py>(py: Python<'py>, sur: Surrogates, m: &Map) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in &m.0 {
        d.set_item(sur.text(py, k)?, to_py(py, sur, v)?)?;
    }
    Ok(d)
}

/// `parse_syslog(line, year, tz, now)` -> `(fields, program, message)` or None: the
/// syslog header's fields, the program, the message (year-less stamps in `year`, else
/// guessed from `now`; naive times in `tz`). An unknown time zone raises ValueError.
#[pyfunction]
#[pyo3(name = "parse_syslog")]
fn py_parse_syslog<'py>(
    py: Python<'py>,
    line: &Bound<'py, PyString>,
    year: Option<i64>,
    tz: &str,
    now: f64,
) -> PyResult<Option<PyHeader<'py>>> {
    let zone = timestamps::Zone::parse(tz).map_err(PyValueError::new_err)?;
    let times = timestamps::TimeParser::new(year, zone, now);
    let (line, sur) = line_text(line)?;
    match header::parse_syslog(&line, &times) {
        None => Ok(None),
        Some(h) => {
            let program = match &h.program {
                Some(p) => Some(sur.text(py, p)?),
                None => None,
            };
            Ok(Some((
                map_to_py(py, sur, &h.fields)?,
                program,
                sur.text(py, &h.message)?,
            )))
        }
    }
}

/// The Python module `streams._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(syslog::py_priority, m)?)?;
    m.add_function(wrap_pyfunction!(py_parse_syslog, m)?)?;
    m.add_class::<parser_py::PyParser>()?;
    m.add_class::<pipeline_py::PyPipeline>()?;
    m.add_function(wrap_pyfunction!(pipeline_py::event_id_of, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline_py::index_name, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline_py::metric_counts, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline_py::side_record, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline_py::settle, m)?)?;
    m.add_function(wrap_pyfunction!(riemann::py::decode_riemann, m)?)?;
    m.add_class::<grok_py::PyGrok>()?;
    m.add_class::<grok_py::GrokMatcher>()?;
    geoip_py::register(m)?;
    framing_py::register(m)?;
    relp_py::register(m)?;
    m.add(
        "GrokLimitError",
        m.py().get_type::<grok_py::GrokLimitError>(),
    )?;
    Ok(())
}
