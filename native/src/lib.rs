//! streams' native core: the line -> document -> NDJSON path, with a small Python face
//! (`streams._native`). See `native/README.md` for the layout and what is ported so far.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList};

pub mod header;
pub mod pyunicode;
pub mod syslog;
pub mod timestamps;

use header::{Map, Value};
use pyunicode::Int;

/// `(fields, program, message)` as Python gets them.
type PyHeader<'py> = (Bound<'py, PyDict>, Option<String>, String);

fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::Int(Int::Small(n)) => n.into_pyobject(py)?.into_any(),
        // Python's own int(): the same value, and the same ValueError past its digit limit
        Value::Int(Int::Big(digits)) => py.get_type::<PyInt>().call1((digits,))?,
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(m) => map_to_py(py, m)?.into_any(),
    })
}

fn map_to_py<'py>(py: Python<'py>, m: &Map) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in &m.0 {
        d.set_item(k, to_py(py, v)?)?;
    }
    Ok(d)
}

/// `parse_syslog(line, year, tz, now)` -> `(fields, program, message)` or None: what
/// `streams.parse.syslog.parse_syslog(line, {}, TimeParser(year, tz, ManualClock(now)))`
/// writes and returns. An unknown time zone raises ValueError.
#[pyfunction]
#[pyo3(name = "parse_syslog")]
fn py_parse_syslog<'py>(
    py: Python<'py>,
    line: &str,
    year: Option<i64>,
    tz: &str,
    now: f64,
) -> PyResult<Option<PyHeader<'py>>> {
    let zone = timestamps::Zone::parse(tz).map_err(PyValueError::new_err)?;
    let times = timestamps::TimeParser::new(year, zone, now);
    match header::parse_syslog(line, &times) {
        None => Ok(None),
        Some(h) => Ok(Some((map_to_py(py, &h.fields)?, h.program, h.message))),
    }
}

/// The Python module `streams._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(syslog::py_priority, m)?)?;
    m.add_function(wrap_pyfunction!(py_parse_syslog, m)?)?;
    Ok(())
}
