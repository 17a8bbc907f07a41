//! The Python face of the grok port (`streams._native.Grok`, `GrokMatcher`,
//! `GrokLimitError`); see `streams/_native.pyi`. Python reads the `.grok` and `.yaml`
//! files and passes their data in.

use crate::grok::{Fields, Item, Library, Matcher, Node, Value};
use crate::pcre::{Limits, MatchError};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use std::collections::HashMap;

create_exception!(
    _native,
    GrokLimitError,
    PyRuntimeError,
    "A regex resource limit (match limit, depth or JIT stack) was hit: the text may or may not match."
);

/// Grok definitions (`NAME -> regex`), compiled into rule alternations.
#[pyclass(name = "Grok", module = "streams._native", frozen)]
pub struct PyGrok {
    lib: Library,
}

#[pymethods]
impl PyGrok {
    #[new]
    #[pyo3(signature = (definitions, *, match_limit = 1_000_000, depth_limit = 10_000))]
    fn new(definitions: HashMap<String, String>, match_limit: u32, depth_limit: u32) -> Self {
        let limits = Limits {
            match_limit,
            depth_limit,
            ..Limits::default()
        };
        PyGrok {
            lib: Library::new(definitions, limits),
        }
    }

    /// The regex an expression expands to (Python `re` syntax, captures `_g1`, `_g2`…).
    fn expand(&self, expr: &str) -> PyResult<String> {
        self.lib
            .expand(expr)
            .map_err(|e| PyValueError::new_err(e.0))
    }

    /// Compiles every definition alone; ValueError naming each one that does not.
    fn validate(&self) -> PyResult<()> {
        let bad = self.lib.validate();
        if bad.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = bad.iter().map(|(n, e)| format!("{n}: {e}")).collect();
        Err(PyValueError::new_err(lines.join("\n")))
    }

    /// One product parser's rules, in priority order: (rule name, expression, statics),
    /// the statics as `ProductParser.sets + Rule.sets` hold them: (parents, leaf, value).
    #[allow(clippy::type_complexity)]
    fn compile_rules(
        &self,
        py: Python<'_>,
        name: String,
        items: Vec<(String, String, Vec<(Vec<String>, String, Py<PyAny>)>)>,
    ) -> PyResult<GrokMatcher> {
        let mut statics = Vec::new();
        let mut rules = Vec::with_capacity(items.len());
        for (rule, expr, sets) in items {
            let mut paths = Vec::with_capacity(sets.len());
            for (mut parents, leaf, value) in sets {
                parents.push(leaf);
                if parents.iter().any(String::is_empty) {
                    return Err(PyValueError::new_err(format!(
                        "{name}: rule {rule}: bad field name {:?}",
                        parents.join(".")
                    )));
                }
                paths.push(parents);
                statics.push(value);
            }
            rules.push(Item {
                name: rule,
                expr,
                statics: paths,
            });
        }
        let matcher = self
            .lib
            .compile_alternation(rules)
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        let names = matcher
            .names
            .iter()
            .map(|n| PyString::new(py, n).unbind())
            .collect();
        let keys = matcher
            .keys
            .iter()
            .map(|k| PyString::intern(py, k).unbind())
            .collect();
        Ok(GrokMatcher {
            name,
            matcher,
            statics,
            names,
            keys,
        })
    }
}

/// A product parser's compiled rules.
#[pyclass(module = "streams._native", frozen)]
pub struct GrokMatcher {
    #[pyo3(get)]
    name: String,
    matcher: Matcher,
    statics: Vec<Py<PyAny>>,
    names: Vec<Py<PyString>>,
    /// the field names, interned (by `Key::id`): no new string per field and match
    keys: Vec<Py<PyString>>,
}

/// A text with lone surrogates (Python allows them: a JSON `\ud800` escape, say), as
/// PCRE2 can read it: each surrogate (3 bytes with "surrogatepass") becomes U+FFFD (3
/// bytes too), which every class of the patterns treats alike (not `\w`, `\s`, `\d`; `.`
/// and negated classes match it). Captures are cut from the original bytes at the same
/// offsets.
struct Surrogates<'py> {
    original: Bound<'py, PyBytes>,
    base: usize,
}

fn without_surrogates(raw: &[u8]) -> String {
    let mut clean = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // ED A0..BF xx: U+D800..U+DFFF
        if raw[i] == 0xED && i + 2 < raw.len() && (0xA0..=0xBF).contains(&raw[i + 1]) {
            clean.extend_from_slice("\u{fffd}".as_bytes());
            i += 3;
        } else {
            clean.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(clean).expect("surrogatepass UTF-8 minus its surrogates is UTF-8")
}

impl GrokMatcher {
    fn to_dict<'py>(
        &self,
        py: Python<'py>,
        fields: &Fields<'_, '_>,
        sur: Option<&Surrogates<'py>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (key, node) in fields {
            let key = self.keys[key.id].bind(py);
            match node {
                Node::Obj(sub) => d.set_item(key, self.to_dict(py, sub, sur)?)?,
                Node::Val(v) => match v {
                    Value::Str(s) => match sur {
                        None => d.set_item(key, *s)?,
                        Some(sur) => {
                            let at = s.as_ptr() as usize - sur.base;
                            let part = &sur.original.as_bytes()[at..at + s.len()];
                            let text = PyBytes::new(py, part)
                                .call_method1("decode", ("utf-8", "surrogatepass"))?;
                            d.set_item(key, text)?
                        }
                    },
                    Value::Int(i) => d.set_item(key, *i)?,
                    Value::Float(f) => d.set_item(key, *f)?,
                    Value::BigInt(s) => {
                        d.set_item(key, py.get_type::<PyInt>().call1((s.as_str(),))?)?
                    }
                    Value::Static(n) => d.set_item(key, self.statics[*n].bind(py))?,
                },
            }
        }
        Ok(d)
    }

    fn run<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        sur: Option<&Surrogates<'py>>,
    ) -> PyResult<Option<(Bound<'py, PyString>, Bound<'py, PyDict>)>> {
        match self.matcher.matches(text) {
            Ok(None) => Ok(None),
            Ok(Some((item, fields))) => Ok(Some((
                self.names[item].bind(py).clone(),
                self.to_dict(py, &fields, sur)?,
            ))),
            Err(MatchError::Limit(what)) => Err(GrokLimitError::new_err(format!(
                "{}: {what} reached on a text of {} bytes",
                self.name,
                text.len()
            ))),
            Err(e) => Err(PyRuntimeError::new_err(format!("{}: {e}", self.name))),
        }
    }
}

#[pymethods]
impl GrokMatcher {
    /// (rule name, fields) of the first rule that matches all of `text`, else None;
    /// GrokLimitError when a regex limit was hit first.
    #[pyo3(name = "match")]
    fn match_<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
    ) -> PyResult<Option<(Bound<'py, PyString>, Bound<'py, PyDict>)>> {
        if let Ok(s) = text.to_str() {
            return self.run(py, s, None);
        }
        let original = text
            .call_method1("encode", ("utf-8", "surrogatepass"))?
            .cast_into::<PyBytes>()?;
        let clean = without_surrogates(original.as_bytes());
        let sur = Surrogates {
            original,
            base: clean.as_ptr() as usize,
        };
        self.run(py, &clean, Some(&sur))
    }

    /// The rule names, in priority order.
    #[getter]
    fn rules(&self) -> Vec<String> {
        self.matcher.names.clone()
    }

    /// Whether every regex runs on PCRE2's JIT (else its interpreter, bounded by the
    /// depth limit).
    #[getter]
    fn jit(&self) -> bool {
        self.matcher.is_jit()
    }

    /// How many regexes the rules were split into (PCRE2's size limit).
    #[getter]
    fn chunks(&self) -> usize {
        self.matcher.chunk_count()
    }
}
