//! streams' native core: the line -> document -> NDJSON path, with a small Python face
//! (`streams._native`). See `native/README.md` for the layout and what is ported so far.

use pyo3::prelude::*;

pub mod grok;
mod grok_py;
pub mod pcre;
pub mod syslog;

/// The Python module `streams._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(syslog::py_priority, m)?)?;
    m.add_class::<grok_py::PyGrok>()?;
    m.add_class::<grok_py::GrokMatcher>()?;
    m.add(
        "GrokLimitError",
        m.py().get_type::<grok_py::GrokLimitError>(),
    )?;
    Ok(())
}
