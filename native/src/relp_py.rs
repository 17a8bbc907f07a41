//! The Python face of `relp.rs`: `streams._native.RelpServerConnection`, its events
//! (`Open`, `Syslog`, `Close`, `ProtocolError`), `build_frame`, `parse_offers`,
//! `next_txnr` (re-exported by `streams/protocols/relp.py`), and the listener's fast path:
//! `receive_records` hands back the records themselves, each with a native ack
//! (`RelpAck`) that answers its txnr into the connection's outbox; the Python listener is
//! called (`notify(ok, wake, settled)`) only when it has something to do: a nak to count,
//! a first reply to schedule a write for, nothing left pending.

use pyo3::exceptions::PyValueError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::PyTraverseError;

use crate::framing::decode_message;
use crate::framing_py::{input, tags, RecordMaker};
use crate::pyunicode::repr_str;
use crate::relp::{self, repr_bytes, Event, RelpServer, ReplyError, DEFAULT_MAX_FRAME};

fn reply_err(e: ReplyError) -> PyErr {
    PyValueError::new_err(e.0)
}

fn cmp<T: PartialEq>(py: Python<'_>, a: T, b: Option<T>, op: CompareOp) -> Py<PyAny> {
    let Some(b) = b else {
        return py.NotImplemented();
    };
    let r = match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        _ => return py.NotImplemented(),
    };
    r.into_pyobject(py).unwrap().to_owned().into_any().unbind()
}

fn opt_txnr(t: Option<u32>) -> String {
    t.map_or("None".into(), |t| t.to_string())
}

#[pyclass(name = "Open", module = "streams._native", frozen)]
pub struct PyOpen {
    #[pyo3(get)]
    txnr: u32,
    /// offer name -> raw value (`commands` -> "syslog")
    #[pyo3(get)]
    offers: Py<PyDict>,
}

#[pymethods]
impl PyOpen {
    #[new]
    fn new(txnr: u32, offers: Py<PyDict>) -> Self {
        PyOpen { txnr, offers }
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(o) = other.cast::<PyOpen>() else {
            return Ok(py.NotImplemented());
        };
        let o = o.get();
        let same = self.txnr == o.txnr && self.offers.bind(py).eq(o.offers.bind(py))?;
        Ok(cmp(py, same, Some(true), op))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Open(txnr={}, offers={})",
            self.txnr,
            self.offers.bind(py).repr()?
        ))
    }
}

#[pyclass(name = "Syslog", module = "streams._native", frozen)]
pub struct PySyslog {
    #[pyo3(get)]
    txnr: u32,
    #[pyo3(get)]
    message: Py<PyBytes>,
}

#[pymethods]
impl PySyslog {
    #[new]
    fn new(txnr: u32, message: Py<PyBytes>) -> Self {
        PySyslog { txnr, message }
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let o = other.cast::<PySyslog>().ok();
        cmp(
            py,
            (self.txnr, self.message.as_bytes(py)),
            o.as_ref()
                .map(|o| (o.get().txnr, o.get().message.as_bytes(py))),
            op,
        )
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        (self.txnr, self.message.bind(py)).into_pyobject(py)?.hash()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Syslog(txnr={}, message={})",
            self.txnr,
            repr_bytes(self.message.as_bytes(py))
        )
    }
}

#[pyclass(name = "Close", module = "streams._native", frozen)]
pub struct PyClose {
    #[pyo3(get)]
    txnr: u32,
}

#[pymethods]
impl PyClose {
    #[new]
    fn new(txnr: u32) -> Self {
        PyClose { txnr }
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let o = other.cast::<PyClose>().ok().map(|o| o.get().txnr);
        cmp(other.py(), self.txnr, o, op)
    }

    fn __hash__(&self) -> u64 {
        u64::from(self.txnr)
    }

    fn __repr__(&self) -> String {
        format!("Close(txnr={})", self.txnr)
    }
}

/// A fatal protocol error; `txnr` is set when that txnr is owed a reply (nak it).
#[pyclass(name = "ProtocolError", module = "streams._native", frozen)]
pub struct PyProtocolError {
    #[pyo3(get)]
    reason: String,
    #[pyo3(get)]
    txnr: Option<u32>,
    /// always, for now (see the module doc); callers should check it
    #[pyo3(get)]
    fatal: bool,
}

#[pymethods]
impl PyProtocolError {
    #[new]
    #[pyo3(signature = (reason, txnr=None, fatal=true))]
    fn new(reason: String, txnr: Option<u32>, fatal: bool) -> Self {
        PyProtocolError {
            reason,
            txnr,
            fatal,
        }
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let o = other.cast::<PyProtocolError>().ok();
        let key = |e: &PyProtocolError| (e.reason.clone(), e.txnr, e.fatal);
        cmp(other.py(), key(self), o.map(|o| key(o.get())), op)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        (self.reason.as_str(), self.txnr, self.fatal)
            .into_pyobject(py)?
            .hash()
    }

    fn __repr__(&self) -> String {
        format!(
            "ProtocolError(reason={}, txnr={}, fatal={})",
            repr_str(&self.reason),
            opt_txnr(self.txnr),
            if self.fatal { "True" } else { "False" }
        )
    }
}

fn event_to_py(py: Python<'_>, e: Event<'_>) -> PyResult<Py<PyAny>> {
    Ok(match e {
        Event::Open { txnr, offers } => {
            let d = PyDict::new(py);
            for (k, v) in offers {
                d.set_item(k, v)?;
            }
            Py::new(
                py,
                PyOpen {
                    txnr,
                    offers: d.unbind(),
                },
            )?
            .into_any()
        }
        Event::Syslog { txnr, message } => Py::new(
            py,
            PySyslog {
                txnr,
                message: PyBytes::new(py, message).unbind(),
            },
        )?
        .into_any(),
        Event::Close { txnr } => Py::new(py, PyClose { txnr })?.into_any(),
        Event::ProtocolError { reason, txnr } => Py::new(
            py,
            PyProtocolError {
                reason,
                txnr,
                fatal: true,
            },
        )?
        .into_any(),
    })
}

/// A str as UTF-8 (lone surrogates as `?`, as `encode("utf-8", "replace")` has them).
fn utf8_of(s: &Bound<'_, PyString>) -> PyResult<String> {
    match s.to_str() {
        Ok(t) => Ok(t.to_string()),
        Err(_) => {
            let b = s.call_method1("encode", ("utf-8", "replace"))?;
            Ok(String::from_utf8_lossy(b.cast::<PyBytes>()?.as_bytes()).into_owned())
        }
    }
}

/// One RELP session, server side (sans-IO).
#[pyclass(name = "RelpServerConnection", module = "streams._native")]
pub struct PyRelp {
    core: RelpServer,
    /// replies the acks resolved and the listener has not yet taken
    outbox: Vec<u8>,
    /// records handed out by `receive_records` and not yet acked or nak'ed
    pending: usize,
    notify: Option<Py<PyAny>>,
    nak_reason: String,
}

#[pymethods]
impl PyRelp {
    /// `software`: our `relp_software` offer, by default `streams,VERSION,-`. `notify`
    /// and `nak_reason`: for the records' acks (`receive_records`).
    #[new]
    #[pyo3(signature = (max_frame=DEFAULT_MAX_FRAME, software=None, *, notify=None, nak_reason=None))]
    fn new(
        py: Python<'_>,
        max_frame: usize,
        software: Option<String>,
        notify: Option<Py<PyAny>>,
        nak_reason: Option<String>,
    ) -> PyResult<Self> {
        let software = match software {
            Some(s) => s,
            None => {
                let version = py.import("streams")?.getattr("__version__")?;
                format!("streams,{version},-")
            }
        };
        Ok(PyRelp {
            core: RelpServer::new(max_frame, software),
            outbox: Vec::new(),
            pending: 0,
            notify,
            nak_reason: nak_reason.unwrap_or_else(|| "error".into()),
        })
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.notify)
    }

    fn __clear__(&mut self) {
        self.notify = None;
    }

    #[getter]
    fn max_frame(&self) -> usize {
        self.core.max_frame
    }

    #[getter]
    fn software(&self) -> &str {
        &self.core.software
    }

    #[getter]
    fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// A fatal protocol error happened: flush replies and close.
    #[getter]
    fn failed(&self) -> bool {
        self.core.failed()
    }

    /// The client sent `close`: answer it, then close the socket.
    #[getter]
    fn closing(&self) -> bool {
        self.core.closing()
    }

    /// Txnrs received and not yet sent a reply, oldest first.
    #[getter]
    fn unacked<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.core.unacked().collect::<Vec<_>>())
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// Records of `receive_records` not yet acked or nak'ed.
    #[getter]
    fn pending(&self) -> usize {
        self.pending
    }

    /// The next txnr the client must use (for tests that skip ahead).
    #[getter(_expected)]
    fn expected(&self) -> u32 {
        self.core.expected
    }

    #[setter(_expected)]
    fn set_expected(&mut self, v: u32) {
        self.core.expected = v;
    }

    /// The events of what the socket returned.
    fn receive_data(&mut self, data: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
        let py = data.py();
        let input = input(data)?;
        let mut out = Vec::new();
        let mut failure = None;
        self.core.receive_data(input.as_slice(), &mut |e| {
            if failure.is_none() {
                match event_to_py(py, e) {
                    Ok(o) => out.push(o),
                    Err(err) => failure = Some(err),
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The listener's path: `(records, events)` of what the socket returned. Each `syslog`
    /// frame is a record `factory(listener, now, text, None, tags, peer, ack)` (text
    /// decoded as `decode_line` does, its problems as tags, `ack` a `RelpAck`); `events`
    /// are the other events (Open, Close, ProtocolError), in order.
    fn receive_records<'py>(
        slf: &Bound<'py, Self>,
        data: &Bound<'py, PyAny>,
        factory: &Bound<'py, PyAny>,
        listener: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
        peer: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Vec<Py<PyAny>>)> {
        let py = slf.py();
        let input = input(data)?;
        let maker = RecordMaker {
            factory,
            listener,
            now,
            peer,
        };
        let records = PyList::empty(py);
        let mut events = Vec::new();
        let mut failure: Option<PyErr> = None;
        let conn = slf.clone().unbind();
        let mut this = slf.borrow_mut();
        let mut made = 0;
        this.core.receive_data(input.as_slice(), &mut |e| {
            if failure.is_some() {
                return;
            }
            let r = match e {
                Event::Syslog { txnr, message } => {
                    let d = decode_message(message);
                    let tags = tags(py, [d.invalid, d.nul, false, false]);
                    tags.and_then(|tags| {
                        let ack = Bound::new(
                            py,
                            RelpAck {
                                conn: conn.clone_ref(py),
                                txnr,
                            },
                        )?;
                        let rec = maker.make(&d.text, tags, Some(ack.into_any()))?;
                        made += 1;
                        records.append(rec)
                    })
                }
                other => event_to_py(py, other).map(|o| events.push(o)),
            };
            if let Err(e) = r {
                failure = Some(e);
            }
        });
        this.pending += made;
        match failure {
            Some(e) => Err(e),
            None => Ok((records, events)),
        }
    }

    /// The replies the acks resolved since the last call (and clears them).
    fn take_replies<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let b = PyBytes::new(py, &self.outbox);
        self.outbox.clear();
        b
    }

    /// `200 OK` and our offers for the Open event (librelp requires the offers).
    #[pyo3(signature = (txnr=None))]
    fn answer_open<'py>(
        &mut self,
        py: Python<'py>,
        txnr: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.core.answer_open(txnr).map_err(reply_err)?;
        Ok(PyBytes::new(py, &r))
    }

    /// `TXNR rsp 6 200 OK`: the message is taken over; may be sent late (txnr order).
    fn ack<'py>(&mut self, py: Python<'py>, txnr: i64) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.core.ack(txnr).map_err(reply_err)?;
        Ok(PyBytes::new(py, &r))
    }

    /// `TXNR rsp N 500 reason`: the client keeps (and later resends) the message.
    #[pyo3(signature = (txnr, reason=None))]
    fn nak<'py>(
        &mut self,
        py: Python<'py>,
        txnr: i64,
        reason: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let reason = match reason {
            Some(r) => utf8_of(r)?,
            None => "error".into(),
        };
        let r = self.core.nak(txnr, &reason).map_err(reply_err)?;
        Ok(PyBytes::new(py, &r))
    }

    /// librelp answers `close` with an empty rsp (`TXNR rsp 0`).
    fn answer_close<'py>(&mut self, py: Python<'py>, txnr: i64) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.core.answer_close(txnr).map_err(reply_err)?;
        Ok(PyBytes::new(py, &r))
    }

    /// The `serverclose` hint (txnr 0, no reply expected), before a server-side close.
    #[staticmethod]
    fn server_close(py: Python<'_>) -> Bound<'_, PyBytes> {
        PyBytes::new(py, &RelpServer::server_close())
    }
}

/// The ack of one record: `ack(ok)` answers its txnr (`200 OK`, or `500` with the
/// connection's nak reason) into the connection's outbox, in txnr order.
#[pyclass(name = "RelpAck", module = "streams._native", frozen)]
pub struct RelpAck {
    conn: Py<PyRelp>,
    #[pyo3(get)]
    txnr: u32,
}

#[pymethods]
impl RelpAck {
    fn __call__(&self, py: Python<'_>, ok: bool) -> PyResult<()> {
        let mut c = self.conn.bind(py).borrow_mut();
        let txnr = i64::from(self.txnr);
        let reply = if ok {
            c.core.ack(txnr)
        } else {
            let reason = std::mem::take(&mut c.nak_reason);
            let r = c.core.nak(txnr, &reason);
            c.nak_reason = reason;
            r
        }
        .map_err(reply_err)?;
        let wake = c.outbox.is_empty() && !reply.is_empty();
        c.outbox.extend_from_slice(&reply);
        c.pending = c.pending.saturating_sub(1);
        let settled = c.pending == 0;
        let notify = if wake || settled || !ok {
            c.notify.as_ref().map(|n| n.clone_ref(py))
        } else {
            None
        };
        drop(c);
        if let Some(n) = notify {
            n.call1(py, (ok, wake, settled))?;
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.conn)
    }
}

#[pyfunction]
#[pyo3(signature = (txnr, command, data=None))]
fn build_frame<'py>(
    py: Python<'py>,
    txnr: i64,
    command: &str,
    data: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let data = match data {
        Some(d) => input(d)?.as_slice().to_vec(),
        None => Vec::new(),
    };
    Ok(PyBytes::new(py, &relp::build_frame(txnr, command, &data)))
}

/// `name=value` lines (LF separated; the spec's leading LF tolerated) -> dict.
#[pyfunction]
fn parse_offers<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(data.py());
    for (k, v) in relp::parse_offers(input(data)?.as_slice()) {
        d.set_item(k, v)?;
    }
    Ok(d)
}

#[pyfunction]
fn next_txnr(txnr: i64) -> i64 {
    if txnr >= i64::from(relp::MAX_TXNR) {
        1
    } else {
        txnr + 1
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOpen>()?;
    m.add_class::<PySyslog>()?;
    m.add_class::<PyClose>()?;
    m.add_class::<PyProtocolError>()?;
    m.add_class::<PyRelp>()?;
    m.add_class::<RelpAck>()?;
    m.add_function(wrap_pyfunction!(build_frame, m)?)?;
    m.add_function(wrap_pyfunction!(parse_offers, m)?)?;
    m.add_function(wrap_pyfunction!(next_txnr, m)?)?;
    m.add("RELP_DEFAULT_MAX_FRAME", DEFAULT_MAX_FRAME)?;
    m.add("RELP_MAX_TXNR", relp::MAX_TXNR)?;
    m.add("RELP_VERSION", relp::RELP_VERSION)?;
    Ok(())
}
