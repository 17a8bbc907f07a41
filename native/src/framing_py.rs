//! The Python face of `framing.rs`: `streams._native.Frame`, `SyslogFramer`,
//! `datagram_frame`, `detect_framing`, `strip_eol` (re-exported by
//! `streams/protocols/framing.py`), and the listeners' fast path: the framer hands back
//! the records themselves (`receive_records`, `datagram_record`), their text decoded as
//! `streams.inputs.decode_line` does and their problem tags set, so no Python runs per
//! message but the record's constructor.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};

use crate::framing::{
    self, decode_message, is_blank, FrameRef, SyslogFramer, DEFAULT_MAX_COUNT, DEFAULT_MAX_SIZE,
    INVALID_UTF8_TAG, NUL_BYTES_TAG,
};
use crate::pyunicode::repr_str;
use crate::relp::repr_bytes;

pub const TRUNCATED_TAG: &str = "_message_truncated";
pub const FRAMING_TAG: &str = "_framing_error";

/// The bytes of a bytes-like object: borrowed from `bytes`, copied from anything else
/// (a bytearray or a memoryview may change under us).
pub enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    Copied(Vec<u8>),
}

impl Input<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(b) => b.as_bytes(),
            Input::Copied(v) => v,
        }
    }
}

pub fn input<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Input<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input::Bytes(b.clone()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Input::Copied(b.to_vec()));
    }
    let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
    Ok(Input::Copied(b.cast_into::<PyBytes>()?.as_bytes().to_vec()))
}

/// One syslog message (its line end stripped) and what went wrong with it, if anything.
#[pyclass(name = "Frame", module = "streams._native", frozen)]
pub struct PyFrame {
    #[pyo3(get)]
    data: Py<PyBytes>,
    /// longer than max_size: this is the first max_size bytes
    #[pyo3(get)]
    truncated: bool,
    /// the stream ended before the message's end
    #[pyo3(get)]
    unterminated: bool,
    /// a framing error: `data` is what was skipped to resync
    #[pyo3(get)]
    error: Option<String>,
}

impl PyFrame {
    fn from_ref(py: Python<'_>, f: &FrameRef<'_>) -> PyFrame {
        PyFrame {
            data: PyBytes::new(py, f.data).unbind(),
            truncated: f.truncated,
            unterminated: f.unterminated,
            error: f.error.map(str::to_string),
        }
    }

    fn key<'a>(&'a self, py: Python<'a>) -> (&'a [u8], bool, bool, Option<&'a str>) {
        (
            self.data.as_bytes(py),
            self.truncated,
            self.unterminated,
            self.error.as_deref(),
        )
    }
}

#[pymethods]
impl PyFrame {
    #[new]
    #[pyo3(signature = (data, truncated=false, unterminated=false, error=None))]
    fn new(data: Py<PyBytes>, truncated: bool, unterminated: bool, error: Option<String>) -> Self {
        PyFrame {
            data,
            truncated,
            unterminated,
            error,
        }
    }

    #[getter]
    fn ok(&self) -> bool {
        !(self.truncated || self.unterminated || self.error.is_some())
    }

    fn __richcmp__(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let Ok(other) = other.cast::<PyFrame>() else {
            return py.NotImplemented();
        };
        let same = self.key(py) == other.get().key(py);
        match op {
            CompareOp::Eq => same
                .into_pyobject(py)
                .unwrap()
                .to_owned()
                .into_any()
                .unbind(),
            CompareOp::Ne => (!same)
                .into_pyobject(py)
                .unwrap()
                .to_owned()
                .into_any()
                .unbind(),
            _ => py.NotImplemented(),
        }
    }

    fn __hash__(&self, py: Python<'_>) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.key(py).hash(&mut h);
        h.finish()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let cap = |b: bool| if b { "True" } else { "False" };
        format!(
            "Frame(data={}, truncated={}, unterminated={}, error={})",
            repr_bytes(self.data.as_bytes(py)),
            cap(self.truncated),
            cap(self.unterminated),
            self.error.as_deref().map_or("None".into(), repr_str)
        )
    }
}

/// The tags of a record: decode_line's problems, then truncation and framing error.
pub fn tags<'py>(py: Python<'py>, flags: [bool; 4]) -> PyResult<Bound<'py, PyTuple>> {
    if flags == [false; 4] {
        return Ok(PyTuple::empty(py));
    }
    let names = [
        intern!(py, INVALID_UTF8_TAG),
        intern!(py, NUL_BYTES_TAG),
        intern!(py, TRUNCATED_TAG),
        intern!(py, FRAMING_TAG),
    ];
    PyTuple::new(
        py,
        names
            .iter()
            .zip(flags)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
    )
}

/// What makes the records: the record type (`streams.pipeline.live.Received`) and the
/// arguments every record of one read shares.
pub struct RecordMaker<'a, 'py> {
    pub factory: &'a Bound<'py, PyAny>,
    pub listener: &'a Bound<'py, PyAny>,
    pub now: &'a Bound<'py, PyAny>,
    pub peer: &'a Bound<'py, PyAny>,
}

impl<'py> RecordMaker<'_, 'py> {
    /// `factory(listener, now, text, None, tags, peer[, ack])`
    pub fn make(
        &self,
        text: &str,
        tags: Bound<'py, PyTuple>,
        ack: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.factory.py();
        let text = PyString::new(py, text);
        match ack {
            None => self
                .factory
                .call1((self.listener, self.now, text, py.None(), tags, self.peer)),
            Some(ack) => self.factory.call1((
                self.listener,
                self.now,
                text,
                py.None(),
                tags,
                self.peer,
                ack,
            )),
        }
    }

    /// The record of a syslog frame, or None when it carries no text worth one.
    fn frame_record(&self, f: &FrameRef<'_>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let d = decode_message(f.data);
        if is_blank(&d.text) {
            return Ok(None);
        }
        let py = self.factory.py();
        let tags = tags(py, [d.invalid, d.nul, f.truncated, f.error.is_some()])?;
        self.make(&d.text, tags, None).map(Some)
    }
}

/// What one read gave the listener: `(records, frames, empty, errors)`.
type Records<'py> = (Bound<'py, PyList>, usize, usize, Vec<String>);

struct Collect<'a, 'py> {
    maker: RecordMaker<'a, 'py>,
    records: Bound<'py, PyList>,
    frames: usize,
    empty: usize,
    errors: Vec<String>,
    failure: Option<PyErr>,
}

impl<'a, 'py> Collect<'a, 'py> {
    fn new(maker: RecordMaker<'a, 'py>) -> Self {
        let records = PyList::empty(maker.factory.py());
        Collect {
            maker,
            records,
            frames: 0,
            empty: 0,
            errors: Vec::new(),
            failure: None,
        }
    }

    fn take(&mut self, f: FrameRef<'_>) {
        if self.failure.is_some() {
            return;
        }
        self.frames += 1;
        if let Some(e) = f.error {
            self.errors.push(e.to_string());
        }
        match self.maker.frame_record(&f) {
            Ok(Some(r)) => {
                if let Err(e) = self.records.append(r) {
                    self.failure = Some(e);
                }
            }
            Ok(None) => self.empty += 1,
            Err(e) => self.failure = Some(e),
        }
    }

    fn done(self) -> PyResult<Records<'py>> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok((self.records, self.frames, self.empty, self.errors)),
        }
    }
}

/// RFC 6587 stream framing for one TCP connection (sans-IO).
#[pyclass(name = "SyslogFramer", module = "streams._native")]
pub struct PySyslogFramer {
    core: SyslogFramer,
}

#[pymethods]
impl PySyslogFramer {
    #[new]
    #[pyo3(signature = (max_size=DEFAULT_MAX_SIZE as i64, max_count=DEFAULT_MAX_COUNT as i64))]
    fn new(max_size: i64, max_count: i64) -> PyResult<Self> {
        let max_size = usize::try_from(max_size).unwrap_or(0);
        let max_count = usize::try_from(max_count).unwrap_or(0);
        SyslogFramer::new(max_size, max_count)
            .map(|core| PySyslogFramer { core })
            .map_err(|_| PyValueError::new_err("max_size must be at least 16 bytes"))
    }

    #[getter]
    fn max_size(&self) -> usize {
        self.core.max_size
    }

    #[getter]
    fn max_count(&self) -> usize {
        self.core.max_count
    }

    /// `"lf"` / `"octet-counted"` once decided, else None.
    #[getter]
    fn framing(&self) -> Option<&'static str> {
        self.core.framing.map(framing::Framing::name)
    }

    /// Bytes held between calls (bounded by max_size + 2).
    #[getter]
    fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// The complete frames of what the socket returned.
    fn receive_data<'py>(&mut self, data: &Bound<'py, PyAny>) -> PyResult<Vec<PyFrame>> {
        let py = data.py();
        let input = input(data)?;
        let mut out = Vec::new();
        self.core
            .receive_data(input.as_slice(), &mut |f| {
                out.push(PyFrame::from_ref(py, &f))
            })
            .map_err(|_| PyRuntimeError::new_err("receive_data() after end_of_stream()"))?;
        Ok(out)
    }

    /// The connection closed: what is left, flagged.
    fn end_of_stream(&mut self, py: Python<'_>) -> Vec<PyFrame> {
        let mut out = Vec::new();
        self.core
            .end_of_stream(&mut |f| out.push(PyFrame::from_ref(py, &f)));
        out
    }

    /// The listener's path: `(records, frames, empty, errors)` of what the socket returned:
    /// each frame's record `factory(listener, now, text, None, tags, peer)` (the text
    /// decoded as `decode_line` does; tags `_invalid_utf8`, `_nul_bytes`,
    /// `_message_truncated`, `_framing_error`), `frames` counted, `empty` those without
    /// text (blank), `errors` the framing errors' reasons.
    fn receive_records<'py>(
        &mut self,
        data: &Bound<'py, PyAny>,
        factory: &Bound<'py, PyAny>,
        listener: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
        peer: &Bound<'py, PyAny>,
    ) -> PyResult<Records<'py>> {
        let input = input(data)?;
        let mut c = Collect::new(RecordMaker {
            factory,
            listener,
            now,
            peer,
        });
        self.core
            .receive_data(input.as_slice(), &mut |f| c.take(f))
            .map_err(|_| PyRuntimeError::new_err("receive_data() after end_of_stream()"))?;
        c.done()
    }

    /// `end_of_stream()` as `receive_records` gives it.
    fn end_of_stream_records<'py>(
        &mut self,
        factory: &Bound<'py, PyAny>,
        listener: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
        peer: &Bound<'py, PyAny>,
    ) -> PyResult<Records<'py>> {
        let mut c = Collect::new(RecordMaker {
            factory,
            listener,
            now,
            peer,
        });
        self.core.end_of_stream(&mut |f| c.take(f));
        c.done()
    }
}

/// UDP: the datagram is the message (line end stripped, size limit); None when empty.
#[pyfunction]
#[pyo3(signature = (data, max_size=DEFAULT_MAX_SIZE))]
pub fn datagram_frame(data: &Bound<'_, PyAny>, max_size: usize) -> PyResult<Option<PyFrame>> {
    let input = input(data)?;
    Ok(framing::datagram_frame(input.as_slice(), max_size)
        .map(|f| PyFrame::from_ref(data.py(), &f)))
}

/// The UDP listener's path: the datagram's record (as `receive_records` makes them), or
/// None when it carries no text.
#[pyfunction]
pub fn datagram_record<'py>(
    data: &Bound<'py, PyAny>,
    max_size: usize,
    factory: &Bound<'py, PyAny>,
    listener: &Bound<'py, PyAny>,
    now: &Bound<'py, PyAny>,
    peer: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let input = input(data)?;
    match framing::datagram_frame(input.as_slice(), max_size) {
        None => Ok(None),
        Some(f) => RecordMaker {
            factory,
            listener,
            now,
            peer,
        }
        .frame_record(&f),
    }
}

/// `"lf"`, `"octet-counted"`, or None when `prefix` cannot tell yet.
#[pyfunction]
pub fn detect_framing(prefix: &Bound<'_, PyAny>) -> PyResult<Option<&'static str>> {
    Ok(framing::detect_framing(input(prefix)?.as_slice()).map(framing::Framing::name))
}

/// Remove exactly one trailing LF, and a CR just before it.
#[pyfunction]
pub fn strip_eol<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let input = input(data)?;
    Ok(PyBytes::new(
        data.py(),
        framing::strip_eol(input.as_slice()),
    ))
}

/// `decode_line(raw)` -> `(text, problems)`, as `streams.inputs.decode_line`.
#[pyfunction]
pub fn decode_line<'py>(
    raw: &Bound<'py, PyAny>,
) -> PyResult<(Cow<'static, str>, Bound<'py, PyTuple>)> {
    let input = input(raw)?;
    let d = decode_message(input.as_slice());
    let t = tags(raw.py(), [d.invalid, d.nul, false, false])?;
    Ok((Cow::Owned(d.text.into_owned()), t))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFrame>()?;
    m.add_class::<PySyslogFramer>()?;
    m.add_function(wrap_pyfunction!(datagram_frame, m)?)?;
    m.add_function(wrap_pyfunction!(datagram_record, m)?)?;
    m.add_function(wrap_pyfunction!(detect_framing, m)?)?;
    m.add_function(wrap_pyfunction!(strip_eol, m)?)?;
    m.add_function(wrap_pyfunction!(decode_line, m)?)?;
    m.add("DEFAULT_MAX_SIZE", DEFAULT_MAX_SIZE)?;
    m.add("DEFAULT_MAX_COUNT", DEFAULT_MAX_COUNT)?;
    Ok(())
}
