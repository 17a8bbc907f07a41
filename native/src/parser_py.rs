//! The Python face of the parse core: `streams._native.Parser` (see `streams/_native.pyi`).
//! Python reads the `.grok` and `.yaml` files and passes their data in.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::doc::{write_map, Map, Value};
use crate::parser::{cut_at, Parsed, Parser, LINE_TRUNCATED};
use crate::pcre::Limits;
use crate::timestamps::{TimeParser, Zone};

pub fn from_py(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = v.cast::<PyInt>() {
        return Ok(match i.extract::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::BigInt(i.str()?.to_string()),
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let k = k
                .cast::<PyString>()
                .map_err(|_| PyValueError::new_err(format!("a key must be a string: {k}")))?;
            m.insert(k.to_str()?, from_py(&v)?);
        }
        return Ok(Value::Map(m));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return Ok(Value::List(
            l.iter().map(|x| from_py(&x)).collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return Ok(Value::List(
            t.iter().map(|x| from_py(&x)).collect::<PyResult<_>>()?,
        ));
    }
    Err(PyValueError::new_err(format!("not a data value: {v}")))
}

pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::BigInt(d) => py.get_type::<PyInt>().call1((d,))?,
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
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

pub fn map_to_py<'py>(py: Python<'py>, m: &Map) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in &m.0 {
        d.set_item(PyString::intern(py, k), to_py(py, v)?)?;
    }
    Ok(d)
}

/// One line of a batch as `streams.inputs.decode_line` reads it (`framing::decode_message`:
/// CR dropped, invalid UTF-8 as backslash escapes, NUL bytes flagged), cut at `max_line`.
pub(crate) fn decode(raw: &[u8], max_line: usize) -> (Cow<'_, str>, Vec<&'static str>) {
    let d = crate::framing::decode_message(raw);
    let mut problems = Vec::new();
    if d.invalid {
        problems.push("_invalid_utf8");
    }
    if d.nul {
        problems.push("_nul_bytes");
    }
    let mut text = d.text;
    if let Some(at) = cut_at(&text, max_line) {
        text = match text {
            Cow::Borrowed(s) => Cow::Borrowed(&s[..at]),
            Cow::Owned(mut s) => {
                s.truncate(at);
                Cow::Owned(s)
            }
        };
        problems.push(LINE_TRUNCATED);
    }
    (text, problems)
}

/// The Event document `to_doc` makes of a parse (no host or service yet).
pub(crate) fn event_doc(p: Parsed) -> Map {
    let mut doc = p.doc;
    if let Some(m) = p.message {
        doc.insert("message", Value::Str(m));
    }
    if !p.tags.is_empty() {
        doc.insert(
            "tags",
            Value::List(p.tags.into_iter().map(Value::Str).collect()),
        );
    }
    doc
}

/// Runs a line's Python hooks, the GIL taken back for it (never on the common path).
fn run_hooks(runner: &Py<PyAny>, p: Parsed, line: &str) -> Parsed {
    let rule = p.rule.clone();
    let result = Python::attach(|py| -> PyResult<Parsed> {
        let out = runner.call1(
            py,
            (
                map_to_py(py, &p.doc)?,
                p.message.clone(),
                p.tags.clone(),
                p.hooks.clone(),
                line,
            ),
        )?;
        let (fields, message, tags): (Bound<'_, PyAny>, Option<String>, Vec<String>) =
            out.extract(py)?;
        let Value::Map(doc) = from_py(&fields)? else {
            return Err(PyValueError::new_err("a hook runner must give back a dict"));
        };
        Ok(Parsed {
            doc,
            message,
            tags,
            rule: rule.clone(),
            hooks: Vec::new(),
        })
    });
    result.unwrap_or_else(|e| {
        // the runner itself keeps hook failures as `_parser_error` events; this is a bug
        // of the runner: the line is kept all the same
        Python::attach(|py| e.print(py));
        let mut doc = Map::new();
        let mut ev = Map::new();
        ev.push("original", Value::str(line));
        doc.push("event", Value::Map(ev));
        Parsed {
            doc,
            message: Some(line.to_string()),
            tags: vec!["_parser_error".to_string()],
            rule,
            hooks: Vec::new(),
        }
    })
}

/// A line parsed, its rule's Python hooks (if any) run by `hooks`, the runner the batches
/// are given (`LineParser.hook_runner`): the one way the batch APIs parse a line.
pub(crate) fn parse_with_hooks(
    parser: &mut Parser,
    hooks: Option<&Py<PyAny>>,
    text: &str,
) -> Parsed {
    let p = parser.parse(text);
    match hooks {
        Some(runner) if !p.hooks.is_empty() => run_hooks(runner, p, text),
        _ => p,
    }
}

/// The lines of a batch that `streams parse` writes (blank ones are skipped), parsed.
fn batch(
    parser: &mut Parser,
    hooks: Option<&Py<PyAny>>,
    data: &[u8],
    mut each: impl FnMut(Parsed),
) {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return;
    }
    for raw in data.split(|&b| b == b'\n') {
        let (text, problems) = decode(raw, parser.max_line);
        // `not text or text.isspace()`: Python's whitespace (the 0x1c..0x1f separators too)
        if text.chars().all(crate::pyunicode::is_space) {
            continue;
        }
        parser.stats.add("lines");
        let mut p = parse_with_hooks(parser, hooks, &text);
        p.tags.extend(problems.iter().map(|s| s.to_string()));
        for &k in &problems {
            parser.stats.add(k);
        }
        each(p);
    }
}

#[pyclass(name = "Parser", module = "streams._native")]
pub struct PyParser {
    pub(crate) inner: Parser,
}

#[pymethods]
impl PyParser {
    #[new]
    #[pyo3(signature = (definitions, parsers, *, year = None, timezone = "local", now = 0.0, max_line = 65536, match_limit = 1_000_000, depth_limit = 10_000))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        definitions: HashMap<String, String>,
        parsers: &Bound<'_, PyList>,
        year: Option<i64>,
        timezone: &str,
        now: f64,
        max_line: usize,
        match_limit: u32,
        depth_limit: u32,
    ) -> PyResult<Self> {
        let zone = Zone::parse(timezone).map_err(PyValueError::new_err)?;
        let specs: Vec<Value> = parsers
            .iter()
            .map(|p| from_py(&p))
            .collect::<PyResult<_>>()?;
        let limits = Limits {
            match_limit,
            depth_limit,
            ..Limits::default()
        };
        let inner = Parser::new(
            definitions,
            &specs,
            TimeParser::new(year, zone, now),
            max_line,
            limits,
        )
        .map_err(PyValueError::new_err)?;
        Ok(PyParser { inner })
    }

    /// `(fields, message, tags, rule, hooks)` of one line; `hooks`: the Python hooks
    /// (`module:function`) the caller must run on it, else None.
    #[allow(clippy::type_complexity)]
    fn parse<'py>(
        &mut self,
        py: Python<'py>,
        line: &str,
    ) -> PyResult<(
        Bound<'py, PyDict>,
        Option<String>,
        Vec<String>,
        Option<String>,
        Option<Vec<String>>,
    )> {
        let p = self.inner.parse(line);
        let hooks = (!p.hooks.is_empty()).then_some(p.hooks);
        Ok((map_to_py(py, &p.doc)?, p.message, p.tags, p.rule, hooks))
    }

    /// Rows held by each correlation table (each is bounded).
    fn table_sizes(&self) -> HashMap<String, usize> {
        self.inner.table_sizes().into_iter().collect()
    }

    /// (parser, rule) of every rule, in priority order.
    fn rules(&self) -> Vec<(String, String)> {
        self.inner
            .products()
            .flat_map(|p| p.rule_names().map(move |r| (p.name.clone(), r.to_string())))
            .collect()
    }

    /// The Python hooks the rules name.
    fn hook_names(&self) -> Vec<String> {
        self.inner.hook_names()
    }

    /// Whether a rule names a Python hook: such a parser's lines go through `parse`.
    #[getter]
    fn has_hooks(&self) -> bool {
        self.inner.has_hooks()
    }

    /// NDJSON of the documents of the lines in `data` (what `streams parse` writes), the
    /// GIL released while it runs; `hooks` runs a rule's Python hooks (see `parse_with_hooks`).
    #[pyo3(signature = (data, hooks = None))]
    fn parse_batch<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        hooks: Option<Py<PyAny>>,
    ) -> Bound<'py, PyBytes> {
        let inner = &mut self.inner;
        let out = py.detach(|| {
            let mut out = Vec::with_capacity(data.len() * 6);
            batch(inner, hooks.as_ref(), data, |p| {
                write_map(&mut out, &event_doc(p));
                out.push(b'\n');
            });
            out
        });
        PyBytes::new(py, &out)
    }

    /// The documents of the lines in `data` as dicts.
    fn parse_docs<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let inner = &mut self.inner;
        let docs = py.detach(|| {
            let mut docs = Vec::new();
            batch(inner, None, data, |p| docs.push(event_doc(p)));
            docs
        });
        let list = PyList::empty(py);
        for d in &docs {
            list.append(map_to_py(py, d)?)?;
        }
        Ok(list)
    }

    fn new_input(&mut self) {
        self.inner.new_input();
    }

    /// The clock for guessing the year of year-less stamps.
    fn set_now(&mut self, now: f64) {
        self.inner.times.now = now;
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.stats.0 {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    #[getter]
    fn max_line(&self) -> usize {
        self.inner.max_line
    }
}
