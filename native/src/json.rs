//! JSON text -> the document tree (`crate::doc::Value`), as the Python parser reads it
//! today (`streams/parse/dispatch.py` `_json`, `streams/parse/products/wazuh.py`
//! `loads_lenient`): `orjson.loads(text)` first, and when that raises,
//! `json.loads(text, strict=False)` ("recovered").
//!
//! Two grammars, one hand-written iterative parser (an explicit stack: a line of 100 000
//! `[` costs no native stack):
//!
//! * [`parse_strict`] accepts what orjson 3.13 accepts: RFC 8259, surrounded by
//!   `" \t\n\r"` only; no raw U+0000..U+001F in strings, no NaN/Infinity, no trailing
//!   comma, no leading zero, no lone surrogate escape, at most [`ORJSON_MAX_DEPTH`]
//!   nested arrays/objects. Integers in i64 are `Int`, in (i64::MAX, u64::MAX] `BigInt`;
//!   beyond u64 (either sign) orjson reads them as a float (`-9223372036854775809` ->
//!   `-9.223372036854776e18`), and a number that is infinite as a double (`1e400`,
//!   310 nines) is refused.
//! * [`parse_lenient`] accepts what CPython 3.11's `json.loads(text, strict=False)`
//!   accepts: raw control characters in strings; `NaN`, `Infinity`, `-Infinity`; any
//!   integer as `Int` or `BigInt` up to Python's 4300-digit `int()` limit (more digits is
//!   the `ValueError` Python raises, caught like a syntax error); floats overflow to
//!   ±inf; duplicate keys: the last value, at the key's first position (as orjson).
//!
//! What Python does and what these return (the caller maps them back):
//!
//! | Python | here |
//! | --- | --- |
//! | `orjson.loads` returns | `parse_strict` -> `Ok` |
//! | `orjson.JSONDecodeError` (depth included) | `parse_strict` -> `Err(_)`, any variant |
//! | `json.loads` returns | `parse_lenient` -> `Ok` |
//! | `json.loads` raises `ValueError` (syntax, int digit limit) | `Err(JsonError::Invalid)` |
//! | `json.loads` raises `RecursionError` (not caught by `loads_lenient`: the line is a `_parser_error` event) | `Err(JsonError::TooDeep)` |
//! | `json.loads` returns a document holding a lone surrogate (`"\ud800"`) | `Err(JsonError::LoneSurrogate)` |
//!
//! Lone surrogates: Python keeps `\ud800` (or `\udc00`, or a high one not followed by a
//! low one) as a lone surrogate in the string, which a Rust `String` cannot hold. Rather
//! than hand back a different document (U+FFFD), the lenient parser says so:
//! `LoneSurrogate` is returned only when the whole text parsed (a later syntax error or
//! too deep a nesting wins, as it does in Python), so the caller knows Python would have
//! produced a document and can route that (rare) line to the Python parser. orjson
//! refuses them, so the strict parser sees them as `Invalid`.
//!
//! Lone surrogates already in the *text* (an undecodable byte read with
//! `surrogateescape`) make `orjson.loads` raise (the str is not UTF-8) while
//! `json.loads` accepts them inside strings. `lib.rs` stands them in by private-use
//! characters, which this parser takes as ordinary characters: for such a line the
//! caller must skip the strict parser (call [`parse_lenient`] directly, recovered =
//! true) to do what Python does.
//!
//! The nesting limit of `json.loads` is not a constant: CPython's C scanner counts each
//! `[`/`{` against `sys.getrecursionlimit()` (1000) minus the Python frames already on the
//! stack. Measured (the frames above `json.loads` + `decode` + `raw_decode`):
//! 986 nested containers parse in `streams replay` on a bare JSON line, 984 for an
//! `ossec: {...}` body (the Wazuh hook is two frames deeper), 980 / 978 in `streams run`
//! (asyncio). [`PYTHON_MAX_DEPTH`] is the replay figure; [`parse_lenient_depth`] and
//! [`loads_depth`] take another. Near that limit Python also needs headroom for what it
//! calls while parsing (see [`ERRMSG_LEVELS`], [`CONSTANT_LEVELS`]): a syntax error in a
//! string or a missing delimiter/key within 3 levels of it, or a NaN/Infinity within 1,
//! is a RecursionError too; that is reproduced. Only a line that orjson refuses *and*
//! that nests that deep tells any of this apart. (Figures from CPython 3.11.7, the
//! project's interpreter, with `json.loads` instrumented in the two commands.)
//!
//! `_json` in dispatch.py asks `loads_lenient` only for lines holding `"rule"` or
//! `"manager"`; that test, and what a document that is not an object becomes, stay with
//! the caller.
//!
//! `parse_strict`'s error variant is ours, not orjson's message: any `Err` is "orjson
//! raised" (orjson even reports some deep truncated texts as "failed to allocate memory").

use std::collections::HashMap;

use crate::doc::{Map, Value};

/// orjson's limit: 1024 nested arrays/objects parse, 1025 raise `JSONDecodeError`.
pub const ORJSON_MAX_DEPTH: usize = 1024;

/// `json.loads` in `streams replay` on a bare JSON line: 986 nested containers parse,
/// 987 raise `RecursionError` (see the module notes for the other call paths).
pub const PYTHON_MAX_DEPTH: usize = 986;

/// Python's `sys.get_int_max_str_digits()` default: `int()` of more decimal digits
/// raises `ValueError` (the sign is not counted).
pub const PY_INT_MAX_STR_DIGITS: usize = 4300;

/// The recursion levels CPython 3.11's scanner needs beyond the open containers to raise a
/// syntax error through its `raise_errmsg` (calling the `JSONDecodeError` class and its
/// Python `__init__`): a string, delimiter or property-name error met within 3 levels of
/// the limit is a RecursionError instead. (Measured: with 993 arrays allowed, `[`*990 +
/// `1 x` is a ValueError, `[`*991 + `1 x` a RecursionError.) "Expecting value" (no value
/// where one must be, a bad number) is raised without a call, at any depth.
pub const ERRMSG_LEVELS: usize = 3;

/// `NaN`, `Infinity` and `-Infinity` are looked up through a call (`parse_constant`):
/// one level more than the open containers (`[`*992 + `NaN` parses, 993 levels do not).
pub const CONSTANT_LEVELS: usize = 1;

/// Maps longer than this get a key index while parsed (duplicate keys are looked up).
const INDEX_FROM: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON for this grammar: orjson's `JSONDecodeError`, or the `ValueError` of
    /// `json.loads` (which `loads_lenient` catches).
    Invalid,
    /// Nested deeper than the limit: orjson's `JSONDecodeError` ("depth limit exceeded"),
    /// or Python's `RecursionError`, which `loads_lenient` does not catch (lenient: also
    /// a syntax error or NaN/Infinity too near the limit, see [`ERRMSG_LEVELS`]).
    TooDeep,
    /// Lenient only: the text parsed, but a string holds a lone surrogate escape, which
    /// Python keeps and a Rust string cannot.
    LoneSurrogate,
}

/// `orjson.loads(text)`.
pub fn parse_strict(text: &str) -> Result<Value, JsonError> {
    Parser::new(text, true, ORJSON_MAX_DEPTH).document()
}

/// `json.loads(text, strict=False)` at the nesting limit of `streams replay`.
pub fn parse_lenient(text: &str) -> Result<Value, JsonError> {
    parse_lenient_depth(text, PYTHON_MAX_DEPTH)
}

/// `json.loads(text, strict=False)` where `max_depth` nested containers still parse.
pub fn parse_lenient_depth(text: &str, max_depth: usize) -> Result<Value, JsonError> {
    Parser::new(text, false, max_depth).document()
}

/// `loads_lenient(text)`: `(document, recovered)`, recovered when only the lenient
/// parser took it. The error is the lenient parser's (`Invalid` is Python's
/// `(None, False)`; `TooDeep` its uncaught `RecursionError`).
pub fn loads(text: &str) -> Result<(Value, bool), JsonError> {
    loads_depth(text, PYTHON_MAX_DEPTH)
}

/// [`loads`] with the lenient parser's nesting limit given.
pub fn loads_depth(text: &str, max_depth: usize) -> Result<(Value, bool), JsonError> {
    match parse_strict(text) {
        Ok(v) => Ok((v, false)),
        Err(_) => parse_lenient_depth(text, max_depth).map(|v| (v, true)),
    }
}

/// An array or object being read.
enum Frame {
    List(Vec<Value>),
    Map {
        map: Map,
        /// The key whose value is being read.
        key: String,
        /// Key -> position, once the map is long enough to need it.
        index: Option<HashMap<String, usize>>,
    },
}

impl Frame {
    fn map(key: String) -> Frame {
        Frame::Map {
            map: Map::new(),
            key,
            index: None,
        }
    }
}

/// `d[key] = v`, Python's way: a repeated key keeps its first position, takes the value.
fn dict_set(map: &mut Map, index: &mut Option<HashMap<String, usize>>, key: String, v: Value) {
    let at = match index {
        Some(ix) => ix.get(&key).copied(),
        None => map.0.iter().position(|(k, _)| *k == key),
    };
    if let Some(at) = at {
        map.0[at].1 = v;
        return;
    }
    if let Some(ix) = index {
        ix.insert(key.clone(), map.0.len());
    }
    map.0.push((key, v));
    if index.is_none() && map.0.len() > INDEX_FROM {
        *index = Some(
            map.0
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect(),
        );
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// orjson's grammar (else Python's `strict=False` one).
    strict: bool,
    max_depth: usize,
    /// Arrays and objects open at `self.i`.
    depth: usize,
    /// A lone surrogate escape was read (lenient; the text may still fail later).
    lone: bool,
}

type Res<T> = Result<T, JsonError>;

impl<'a> Parser<'a> {
    fn new(text: &'a str, strict: bool, max_depth: usize) -> Parser<'a> {
        Parser {
            b: text.as_bytes(),
            i: 0,
            strict,
            max_depth,
            depth: 0,
            lone: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A syntax error in a string or between the members of an array or object: what
    /// Python raises through `raise_errmsg` (see [`ERRMSG_LEVELS`]).
    fn syntax(&self) -> JsonError {
        if !self.strict && self.depth + ERRMSG_LEVELS > self.max_depth {
            JsonError::TooDeep
        } else {
            JsonError::Invalid
        }
    }

    fn lit(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// `NaN`, `Infinity`, `-Infinity` (lenient only; the caller matched the word).
    fn constant(&self, f: f64) -> Res<Value> {
        if self.depth + CONSTANT_LEVELS > self.max_depth {
            return Err(JsonError::TooDeep);
        }
        Ok(Value::Float(f))
    }

    /// The whole text: one value between optional whitespace.
    fn document(mut self) -> Res<Value> {
        self.ws();
        let v = self.value()?;
        self.ws();
        if self.i != self.b.len() {
            return Err(JsonError::Invalid); // Python: "Extra data", raised at the top
        }
        if self.lone {
            return Err(JsonError::LoneSurrogate);
        }
        Ok(v)
    }

    /// Opens an array or object: one level deeper, checked before anything inside it is
    /// read (as Python's scanner does; orjson refuses the text in any case).
    fn open(&mut self) -> Res<()> {
        if self.depth >= self.max_depth {
            return Err(JsonError::TooDeep);
        }
        self.depth += 1;
        self.i += 1;
        self.ws();
        Ok(())
    }

    /// `"key" :` with the whitespace after it, at what should be the key's quote.
    fn key(&mut self) -> Res<String> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax()); // "Expecting property name enclosed in double quotes"
        }
        self.i += 1;
        let k = self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.syntax()); // "Expecting ':' delimiter"
        }
        self.i += 1;
        self.ws();
        Ok(k)
    }

    /// One value at `self.i` (no whitespace before it), nested ones on an explicit stack.
    fn value(&mut self) -> Res<Value> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            // no value here is Python's "Expecting value" (a StopIteration inside)
            let mut v = match self.peek().ok_or(JsonError::Invalid)? {
                b'[' => {
                    self.open()?;
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        self.depth -= 1;
                        Value::List(Vec::new())
                    } else {
                        stack.push(Frame::List(Vec::new()));
                        continue 'value;
                    }
                }
                b'{' => {
                    self.open()?;
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        self.depth -= 1;
                        Value::Map(Map::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::map(key));
                        continue 'value;
                    }
                }
                b'"' => {
                    self.i += 1;
                    Value::Str(self.string()?)
                }
                b't' if self.lit(b"true") => Value::Bool(true),
                b'f' if self.lit(b"false") => Value::Bool(false),
                b'n' if self.lit(b"null") => Value::Null,
                b'N' if !self.strict && self.lit(b"NaN") => self.constant(f64::NAN)?,
                b'I' if !self.strict && self.lit(b"Infinity") => self.constant(f64::INFINITY)?,
                b'-' if !self.strict && self.lit(b"-Infinity") => {
                    self.constant(f64::NEG_INFINITY)?
                }
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(JsonError::Invalid),
            };
            // `v` is complete: put it in its container, close the containers it completes
            loop {
                match stack.last_mut() {
                    None => return Ok(v),
                    Some(Frame::List(items)) => {
                        items.push(v);
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.i += 1;
                                self.ws();
                                continue 'value;
                            }
                            Some(b']') => {
                                self.i += 1;
                                v = Value::List(std::mem::take(items));
                            }
                            _ => return Err(self.syntax()), // "Expecting ',' delimiter"
                        }
                    }
                    Some(Frame::Map { map, key, index }) => {
                        dict_set(map, index, std::mem::take(key), v);
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.i += 1;
                                self.ws();
                                *key = self.key()?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.i += 1;
                                v = Value::Map(std::mem::take(map));
                            }
                            _ => return Err(self.syntax()), // "Expecting ',' delimiter"
                        }
                    }
                }
                stack.pop();
                self.depth -= 1;
            }
        }
    }

    /// A string's content, `self.i` just after its opening quote; ends after the closing one.
    fn string(&mut self) -> Res<String> {
        let mut out = String::new();
        let mut start = self.i;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.syntax()); // "Unterminated string starting at"
            };
            match c {
                b'"' => {
                    out.push_str(self.slice(start, self.i));
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(self.slice(start, self.i));
                    self.i += 1;
                    self.escape(&mut out)?;
                    start = self.i;
                }
                0..=0x1f if self.strict => return Err(JsonError::Invalid),
                _ => self.i += 1,
            }
        }
    }

    /// `self.b[from..to]` as text: both ends are at ASCII bytes of a `str`.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        std::str::from_utf8(&self.b[from..to]).expect("cut at ASCII bytes of a str")
    }

    /// After a backslash.
    fn escape(&mut self, out: &mut String) -> Res<()> {
        let Some(c) = self.peek() else {
            return Err(self.syntax()); // unterminated
        };
        self.i += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let u = self.hex4()?;
                match u {
                    0xD800..=0xDBFF => {
                        // a pair only with a `\u` low surrogate right after it
                        let low = match self.b.get(self.i..self.i + 6) {
                            Some([b'\\', b'u', h @ ..]) => {
                                hex(h).filter(|l| (0xDC00..=0xDFFF).contains(l))
                            }
                            _ => None,
                        };
                        match low {
                            Some(low) => {
                                self.i += 6;
                                char::from_u32(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00))
                                    .expect("a surrogate pair is a scalar value")
                            }
                            None => self.lone_surrogate()?,
                        }
                    }
                    0xDC00..=0xDFFF => self.lone_surrogate()?,
                    _ => char::from_u32(u).expect("not a surrogate"),
                }
            }
            _ => return Err(self.syntax()), // "Invalid \\escape"
        };
        out.push(ch);
        Ok(())
    }

    /// orjson refuses a lone surrogate; Python keeps it (noted, replaced meanwhile).
    fn lone_surrogate(&mut self) -> Res<char> {
        if self.strict {
            return Err(JsonError::Invalid);
        }
        self.lone = true;
        Ok(char::REPLACEMENT_CHARACTER)
    }

    fn hex4(&mut self) -> Res<u32> {
        match self.b.get(self.i..self.i + 4).and_then(hex) {
            Some(u) => {
                self.i += 4;
                Ok(u)
            }
            None => Err(self.syntax()), // "Invalid \\uXXXX escape"
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn at_digit(&self, at: usize) -> bool {
        matches!(self.b.get(at), Some(b'0'..=b'9'))
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at `self.i`, the longest
    /// such prefix, as Python's scanner reads it: in `01`, `1.`, `1.e5`, `1e` or `1e+`
    /// the number ends before the `1`, the `.` or the `e`, and what follows is refused
    /// by the caller (as a missing delimiter; orjson refuses the same texts).
    fn number(&mut self) -> Res<Value> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError::Invalid), // "Expecting value"
        }
        let mut float = false;
        if self.peek() == Some(b'.') && self.at_digit(self.i + 1) {
            self.i += 1;
            self.digits();
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let sign = usize::from(matches!(self.b.get(self.i + 1), Some(b'+' | b'-')));
            if self.at_digit(self.i + 1 + sign) {
                self.i += 1 + sign;
                self.digits();
                float = true;
            }
        }
        let text = self.slice(start, self.i);
        if !float {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::Int(n));
            }
            if self.strict {
                // orjson: u64 is an int; beyond, the number is read as a double
                if !neg && text.parse::<u64>().is_ok() {
                    return Ok(Value::BigInt(text.to_string()));
                }
            } else {
                let digits = text.len() - usize::from(neg);
                if digits > PY_INT_MAX_STR_DIGITS {
                    return Err(JsonError::Invalid); // int()'s ValueError, raised at any depth
                }
                return Ok(Value::BigInt(text.to_string()));
            }
        }
        // Rust's parse is correctly rounded, as Python's float() and orjson's reader are
        let f: f64 = text.parse().map_err(|_| JsonError::Invalid)?;
        if self.strict && f.is_infinite() {
            return Err(JsonError::Invalid);
        }
        Ok(Value::Float(f))
    }
}

/// Four hex digits (either case).
fn hex(h: &[u8]) -> Option<u32> {
    if h.len() != 4 {
        return None;
    }
    h.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

#[cfg(test)]
mod tests {
    use super::JsonError::{Invalid, LoneSurrogate, TooDeep};
    use super::*;

    const N: Value = Value::Null;

    #[allow(non_snake_case)]
    fn B(b: bool) -> Value {
        Value::Bool(b)
    }

    fn i(n: i64) -> Value {
        Value::Int(n)
    }

    fn big(d: &str) -> Value {
        Value::BigInt(d.to_string())
    }

    fn fl(f: f64) -> Value {
        Value::Float(f)
    }

    fn s(t: &str) -> Value {
        Value::str(t)
    }

    fn l(items: Vec<Value>) -> Value {
        Value::List(items)
    }

    fn m(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(Map(entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()))
    }

    /// Equal, floats by their bits (-0.0 is not 0.0) except that NaN is NaN.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => {
                (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
            }
            (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.0
                        .iter()
                        .zip(&y.0)
                        .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
            }
            _ => a == b,
        }
    }

    fn same_result(a: &Res<Value>, b: &Res<Value>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => same(x, y),
            _ => a == b,
        }
    }

    /// Every expected result in this table was printed by running its input through the
    /// real `orjson.loads` (orjson 3.13.0) and `json.loads(text, strict=False)` (CPython
    /// 3.11.7) in the project's `.venv` (`ValueError` -> Invalid, a document holding a
    /// lone surrogate -> LoneSurrogate): `(input, orjson, json strict=False)`.
    #[test]
    fn edge_cases_as_orjson_and_python_json() {
        #[rustfmt::skip]
        let table: Vec<(&str, Res<Value>, Res<Value>)> = vec![
        ("1", Ok(i(1)), Ok(i(1))),
        ("-0", Ok(i(0)), Ok(i(0))),
        ("-0.0", Ok(fl(-0.0)), Ok(fl(-0.0))),
        ("0", Ok(i(0)), Ok(i(0))),
        ("01", Err(Invalid), Err(Invalid)),
        ("-01", Err(Invalid), Err(Invalid)),
        ("00", Err(Invalid), Err(Invalid)),
        ("1.", Err(Invalid), Err(Invalid)),
        ("1.e5", Err(Invalid), Err(Invalid)),
        (".5", Err(Invalid), Err(Invalid)),
        ("+1", Err(Invalid), Err(Invalid)),
        ("--1", Err(Invalid), Err(Invalid)),
        ("-", Err(Invalid), Err(Invalid)),
        ("0x10", Err(Invalid), Err(Invalid)),
        ("1E", Err(Invalid), Err(Invalid)),
        ("0.0e", Err(Invalid), Err(Invalid)),
        ("1e+", Err(Invalid), Err(Invalid)),
        ("1E5", Ok(fl(100000.0)), Ok(fl(100000.0))),
        ("1e+5", Ok(fl(100000.0)), Ok(fl(100000.0))),
        ("1e-5", Ok(fl(1e-05)), Ok(fl(1e-05))),
        ("0e0", Ok(fl(0.0)), Ok(fl(0.0))),
        ("1e01", Ok(fl(10.0)), Ok(fl(10.0))),
        ("1.5E+3", Ok(fl(1500.0)), Ok(fl(1500.0))),
        ("1e400", Err(Invalid), Ok(fl(f64::INFINITY))),
        ("-1e400", Err(Invalid), Ok(fl(f64::NEG_INFINITY))),
        ("1e-400", Ok(fl(0.0)), Ok(fl(0.0))),
        ("-1e-400", Ok(fl(-0.0)), Ok(fl(-0.0))),
        ("1e99999999999999999999", Err(Invalid), Ok(fl(f64::INFINITY))),
        ("1e-99999999999999999999", Ok(fl(0.0)), Ok(fl(0.0))),
        ("1.5e308", Ok(fl(1.5e+308)), Ok(fl(1.5e+308))),
        ("1.8e308", Err(Invalid), Ok(fl(f64::INFINITY))),
        ("2.2250738585072014e-308", Ok(fl(2.2250738585072014e-308)), Ok(fl(2.2250738585072014e-308))),
        ("5e-324", Ok(fl(5e-324)), Ok(fl(5e-324))),
        ("1e-324", Ok(fl(0.0)), Ok(fl(0.0))),
        ("0.1000000000000000055511151231257827", Ok(fl(0.1)), Ok(fl(0.1))),
        ("123456789012345678901234567890.0", Ok(fl(1.2345678901234568e+29)), Ok(fl(1.2345678901234568e+29))),
        ("9007199254740993", Ok(i(9007199254740993)), Ok(i(9007199254740993))),
        ("9007199254740993.0", Ok(fl(9007199254740992.0)), Ok(fl(9007199254740992.0))),
        ("9223372036854775807", Ok(i(9223372036854775807)), Ok(i(9223372036854775807))),
        ("9223372036854775808", Ok(big("9223372036854775808")), Ok(big("9223372036854775808"))),
        ("-9223372036854775808", Ok(i(-9223372036854775808)), Ok(i(-9223372036854775808))),
        ("-9223372036854775809", Ok(fl(-9.223372036854776e+18)), Ok(big("-9223372036854775809"))),
        ("18446744073709551615", Ok(big("18446744073709551615")), Ok(big("18446744073709551615"))),
        ("18446744073709551616", Ok(fl(1.8446744073709552e+19)), Ok(big("18446744073709551616"))),
        ("-18446744073709551615", Ok(fl(-1.8446744073709552e+19)), Ok(big("-18446744073709551615"))),
        ("-18446744073709551616", Ok(fl(-1.8446744073709552e+19)), Ok(big("-18446744073709551616"))),
        ("1000000000000000000000000000000", Ok(fl(1e+30)), Ok(big("1000000000000000000000000000000"))),
        ("-12345678901234567890", Ok(fl(-1.2345678901234567e+19)), Ok(big("-12345678901234567890"))),
        ("12345678901234567890e0", Ok(fl(1.2345678901234567e+19)), Ok(fl(1.2345678901234567e+19))),
        ("[18446744073709551616, -1e400]", Err(Invalid), Ok(l(vec![big("18446744073709551616"), fl(f64::NEG_INFINITY)]))),
        ("NaN", Err(Invalid), Ok(fl(f64::NAN))),
        ("Infinity", Err(Invalid), Ok(fl(f64::INFINITY))),
        ("-Infinity", Err(Invalid), Ok(fl(f64::NEG_INFINITY))),
        ("nan", Err(Invalid), Err(Invalid)),
        ("inf", Err(Invalid), Err(Invalid)),
        ("-NaN", Err(Invalid), Err(Invalid)),
        ("+Infinity", Err(Invalid), Err(Invalid)),
        ("[NaN, Infinity, -Infinity]", Err(Invalid), Ok(l(vec![fl(f64::NAN), fl(f64::INFINITY), fl(f64::NEG_INFINITY)]))),
        (r#"{"a": NaN}"#, Err(Invalid), Ok(m(vec![("a", fl(f64::NAN))]))),
        ("-Infinityx", Err(Invalid), Err(Invalid)),
        ("NaNx", Err(Invalid), Err(Invalid)),
        ("true", Ok(B(true)), Ok(B(true))),
        ("false", Ok(B(false)), Ok(B(false))),
        ("null", Ok(N), Ok(N)),
        ("True", Err(Invalid), Err(Invalid)),
        ("nul", Err(Invalid), Err(Invalid)),
        ("nulll", Err(Invalid), Err(Invalid)),
        ("truefalse", Err(Invalid), Err(Invalid)),
        ("", Err(Invalid), Err(Invalid)),
        ("  ", Err(Invalid), Err(Invalid)),
        (" 1 ", Ok(i(1)), Ok(i(1))),
        ("\t1\n", Ok(i(1)), Ok(i(1))),
        ("\r\n[]\r\n", Ok(l(vec![])), Ok(l(vec![]))),
        ("\u{c}1", Err(Invalid), Err(Invalid)),
        ("\u{b}1", Err(Invalid), Err(Invalid)),
        ("\u{a0}1", Err(Invalid), Err(Invalid)),
        ("\u{2000}1", Err(Invalid), Err(Invalid)),
        ("\u{feff}1", Err(Invalid), Err(Invalid)),
        ("\u{feff}{}", Err(Invalid), Err(Invalid)),
        ("1 2", Err(Invalid), Err(Invalid)),
        ("[1]x", Err(Invalid), Err(Invalid)),
        ("[1]\u{0}", Err(Invalid), Err(Invalid)),
        ("1\u{0}", Err(Invalid), Err(Invalid)),
        ("{}", Ok(m(vec![])), Ok(m(vec![]))),
        ("[]", Ok(l(vec![])), Ok(l(vec![]))),
        ("{ }", Ok(m(vec![])), Ok(m(vec![]))),
        ("[ ]", Ok(l(vec![])), Ok(l(vec![]))),
        ("{\t}", Ok(m(vec![])), Ok(m(vec![]))),
        ("[\n]", Ok(l(vec![])), Ok(l(vec![]))),
        ("[1,]", Err(Invalid), Err(Invalid)),
        (r#"{"a":1,}"#, Err(Invalid), Err(Invalid)),
        ("[1,,2]", Err(Invalid), Err(Invalid)),
        ("[,]", Err(Invalid), Err(Invalid)),
        ("{,}", Err(Invalid), Err(Invalid)),
        ("[1 2]", Err(Invalid), Err(Invalid)),
        (r#"{"a":1 "b":2}"#, Err(Invalid), Err(Invalid)),
        (r#"{"a"}"#, Err(Invalid), Err(Invalid)),
        (r#"{"a":}"#, Err(Invalid), Err(Invalid)),
        (r#"{"a" 1}"#, Err(Invalid), Err(Invalid)),
        ("{1:2}", Err(Invalid), Err(Invalid)),
        ("{a:1}", Err(Invalid), Err(Invalid)),
        ("{'a':1}", Err(Invalid), Err(Invalid)),
        (r#"{"a" : 1 }"#, Ok(m(vec![("a", i(1))])), Ok(m(vec![("a", i(1))]))),
        (r#"{"a":1,"b":2,"a":3}"#, Ok(m(vec![("a", i(3)), ("b", i(2))])), Ok(m(vec![("a", i(3)), ("b", i(2))]))),
        (r#"{"a":1,"b":{"c":1},"b":[2]}"#, Ok(m(vec![("a", i(1)), ("b", l(vec![i(2)]))])), Ok(m(vec![("a", i(1)), ("b", l(vec![i(2)]))]))),
        (r#"{"x":{"a":1,"a":2},"y":[{"a":1}]}"#, Ok(m(vec![("x", m(vec![("a", i(2))])), ("y", l(vec![m(vec![("a", i(1))])]))])), Ok(m(vec![("x", m(vec![("a", i(2))])), ("y", l(vec![m(vec![("a", i(1))])]))]))),
        (r#"[1, [2, [3, {"k": [4]}]], {}]"#, Ok(l(vec![i(1), l(vec![i(2), l(vec![i(3), m(vec![("k", l(vec![i(4)]))])])]), m(vec![])])), Ok(l(vec![i(1), l(vec![i(2), l(vec![i(3), m(vec![("k", l(vec![i(4)]))])])]), m(vec![])]))),
        ("[", Err(Invalid), Err(Invalid)),
        ("]", Err(Invalid), Err(Invalid)),
        ("[1", Err(Invalid), Err(Invalid)),
        ("[1,", Err(Invalid), Err(Invalid)),
        (r#"{"a""#, Err(Invalid), Err(Invalid)),
        (r#"{"a":"#, Err(Invalid), Err(Invalid)),
        (r#"{"a":1"#, Err(Invalid), Err(Invalid)),
        (r#"{"a":1,"#, Err(Invalid), Err(Invalid)),
        (r#""""#, Ok(s("")), Ok(s(""))),
        (r#""abc"#, Err(Invalid), Err(Invalid)),
        (r#""\"#, Err(Invalid), Err(Invalid)),
        (r#""\""#, Err(Invalid), Err(Invalid)),
        (r#""a\"b""#, Ok(s(r#"a"b"#)), Ok(s(r#"a"b"#))),
        (r#""\/""#, Ok(s("/")), Ok(s("/"))),
        (r#""\b\f\n\r\t\"\\""#, Ok(s("\u{8}\u{c}\n\r\t\"\\")), Ok(s("\u{8}\u{c}\n\r\t\"\\"))),
        (r#""\a""#, Err(Invalid), Err(Invalid)),
        (r#""\x41""#, Err(Invalid), Err(Invalid)),
        (r#""\U0041""#, Err(Invalid), Err(Invalid)),
        (r#""\0""#, Err(Invalid), Err(Invalid)),
        (r#""\'""#, Err(Invalid), Err(Invalid)),
        (r#""\u0041""#, Ok(s("A")), Ok(s("A"))),
        (r#""\u00e9""#, Ok(s("\u{e9}")), Ok(s("\u{e9}"))),
        (r#""\u00E9""#, Ok(s("\u{e9}")), Ok(s("\u{e9}"))),
        (r#""\u0000""#, Ok(s("\u{0}")), Ok(s("\u{0}"))),
        (r#""\u001f""#, Ok(s("\u{1f}")), Ok(s("\u{1f}"))),
        (r#""\u12""#, Err(Invalid), Err(Invalid)),
        (r#""\u12g4""#, Err(Invalid), Err(Invalid)),
        (r#""\u 123""#, Err(Invalid), Err(Invalid)),
        (r#""\u"#, Err(Invalid), Err(Invalid)),
        (r#""\u0041"#, Err(Invalid), Err(Invalid)),
        (r#""\ud83d\ude00""#, Ok(s("\u{1f600}")), Ok(s("\u{1f600}"))),
        (r#""\uD83D\uDE00""#, Ok(s("\u{1f600}")), Ok(s("\u{1f600}"))),
        (r#""\uDBFF\uDFFF""#, Ok(s("\u{10ffff}")), Ok(s("\u{10ffff}"))),
        (r#""\ud800\udc00""#, Ok(s("\u{10000}")), Ok(s("\u{10000}"))),
        (r#""\ud800""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\udc00""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\udfff""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800x""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\u0041""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\ud800""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\\""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\n""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\udc00\ud800""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\udc00\ud800""#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800\u12g4""#, Err(Invalid), Err(Invalid)),
        (r#"{"\ud800":1}"#, Err(Invalid), Err(LoneSurrogate)),
        (r#""\ud800" x"#, Err(Invalid), Err(Invalid)),
        (r#"["\ud800", 1,]"#, Err(Invalid), Err(Invalid)),
        (r#"["\ud800", [1]]"#, Err(Invalid), Err(LoneSurrogate)),
        ("\"a\u{0}b\"", Err(Invalid), Ok(s("a\u{0}b"))),
        ("\"a\u{1}b\"", Err(Invalid), Ok(s("a\u{1}b"))),
        ("\"a\u{1f}b\"", Err(Invalid), Ok(s("a\u{1f}b"))),
        ("\"a\tb\"", Err(Invalid), Ok(s("a\tb"))),
        ("\"a\nb\"", Err(Invalid), Ok(s("a\nb"))),
        ("\"a\rb\"", Err(Invalid), Ok(s("a\rb"))),
        ("{\"k\ny\": \"v\tw\"}", Err(Invalid), Ok(m(vec![("k\ny", s("v\tw"))]))),
        ("\"a\u{7f}b\"", Ok(s("a\u{7f}b")), Ok(s("a\u{7f}b"))),
        ("\"a\u{80}b\"", Ok(s("a\u{80}b")), Ok(s("a\u{80}b"))),
        ("\"\u{2028}\u{2029}\"", Ok(s("\u{2028}\u{2029}")), Ok(s("\u{2028}\u{2029}"))),
        ("\"\u{e9}\u{1f600}\"", Ok(s("\u{e9}\u{1f600}")), Ok(s("\u{e9}\u{1f600}"))),
        ("\"\u{feff}\"", Ok(s("\u{feff}")), Ok(s("\u{feff}"))),
        ("{\"a\":1}\n", Ok(m(vec![("a", i(1))])), Ok(m(vec![("a", i(1))]))),
        ("{\"rule\":{\"id\":\"5710\",\"level\":5},\"full_log\":\"line1\nline2\"}", Err(Invalid), Ok(m(vec![("rule", m(vec![("id", s("5710")), ("level", i(5))])), ("full_log", s("line1\nline2"))]))),
        (r#"{"rule":{"id":"5710"},"x":NaN}"#, Err(Invalid), Ok(m(vec![("rule", m(vec![("id", s("5710"))])), ("x", fl(f64::NAN))]))),
        (r#"{"rule":{"id":"5710"},"x":1,}"#, Err(Invalid), Err(Invalid)),
        ];
        let mut bad = Vec::new();
        for (text, strict, lenient) in &table {
            let got_strict = parse_strict(text);
            let got_lenient = parse_lenient(text);
            if !same_result(&got_strict, strict) {
                bad.push(format!(
                    "strict  {text:?}: {got_strict:?}, orjson: {strict:?}"
                ));
            }
            if !same_result(&got_lenient, lenient) {
                bad.push(format!(
                    "lenient {text:?}: {got_lenient:?}, json: {lenient:?}"
                ));
            }
            // loads_lenient: orjson first, then json (recovered)
            let want = match (strict, lenient) {
                (Ok(v), _) => Ok((v.clone(), false)),
                (Err(_), Ok(v)) => Ok((v.clone(), true)),
                (Err(_), Err(e)) => Err(*e),
            };
            let got = loads(text);
            let ok = match (&got, &want) {
                (Ok((a, ra)), Ok((b, rb))) => same(a, b) && ra == rb,
                _ => got == want,
            };
            if !ok {
                bad.push(format!("loads   {text:?}: {got:?}, Python: {want:?}"));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    /// orjson: 1024 nested arrays/objects parse, 1025 do not, an empty one included
    /// (checked against orjson 3.13.0).
    #[test]
    fn orjson_depth_limit() {
        let nest = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_strict(&nest(1024, "")).is_ok());
        assert_eq!(parse_strict(&nest(1025, "")), Err(TooDeep));
        assert_eq!(parse_strict(&nest(1024, "[]")), Err(TooDeep));
        assert_eq!(parse_strict(&nest(1024, "{}")), Err(TooDeep));
        assert!(parse_strict(&nest(1023, "{}")).is_ok());
        let objects =
            |n: usize, inner: &str| format!("{}{inner}{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        assert!(parse_strict(&objects(1024, "1")).is_ok());
        assert_eq!(parse_strict(&objects(1024, "[]")), Err(TooDeep));
        let mixed = |inner: &str| format!("{}{inner}{}", r#"{"a":["#.repeat(512), "]}".repeat(512));
        assert!(parse_strict(&mixed("1")).is_ok());
        assert_eq!(parse_strict(&mixed("[]")), Err(TooDeep));
        // the limit is met while reading: what comes after does not matter, what comes
        // before does (orjson: "depth limit exceeded" / "leading zero")
        assert_eq!(
            parse_strict(&format!("{}x", "[".repeat(2000))),
            Err(TooDeep)
        );
        assert_eq!(
            parse_strict(&format!("[01{}", "[".repeat(2000))),
            Err(Invalid)
        );
        // the deepest document parses to the right tree
        let v = parse_strict(&nest(1024, "7")).unwrap();
        let mut at = &v;
        for _ in 0..1024 {
            match at {
                Value::List(items) if items.len() == 1 => at = &items[0],
                other => panic!("not a one-item list: {other:?}"),
            }
        }
        assert_eq!(at, &i(7));
    }

    /// Python's scanner raises RecursionError (not a ValueError: `loads_lenient` lets it
    /// through) on the container past the limit, and a ValueError for a syntax error met
    /// before it; a lone surrogate before it does not stop it either.
    #[test]
    fn python_depth_limit() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_lenient(&nest(PYTHON_MAX_DEPTH)).is_ok());
        assert_eq!(parse_lenient(&nest(PYTHON_MAX_DEPTH + 1)), Err(TooDeep));
        assert!(parse_lenient_depth(&nest(978), 978).is_ok());
        assert_eq!(parse_lenient_depth(&nest(979), 978), Err(TooDeep));
        assert_eq!(
            parse_lenient(&format!("{}x", "[".repeat(2000))),
            Err(TooDeep)
        );
        assert_eq!(
            parse_lenient(&format!("[01{}", "[".repeat(2000))),
            Err(Invalid)
        );
        assert_eq!(
            parse_lenient(&format!(r#"["\ud800",{}"#, "[".repeat(2000))),
            Err(TooDeep)
        );
        // near the limit Python needs headroom to raise a JSONDecodeError (3 levels) or
        // to look NaN/Infinity up (1): measured with 993 arrays allowed (CPython 3.11.7)
        let at =
            |d: usize, tail: &str| parse_lenient_depth(&format!("{}{tail}", "[".repeat(d)), 993);
        for tail in [
            "1 x",
            "1",
            r#""abc"#,
            r#""\x""#,
            r#""\u12g4""#,
            "{x",
            r#"{"a" x"#,
            r#"{"a":1 x"#,
            r#"{"a":1,}"#,
            "NaN x",
            "01",
            "1.",
            "1e",
        ] {
            // an object in the tail is one of the d levels
            let d = if tail.starts_with('{') { 989 } else { 990 };
            assert_eq!(at(d, tail), Err(Invalid), "{tail} at {d}");
            assert_eq!(at(d + 1, tail), Err(TooDeep), "{tail} at {}", d + 1);
        }
        // "Expecting value" and int()'s digit limit need no call: Invalid up to the limit
        // (`01`, `1.`, `1e` above are a number and then a missing delimiter)
        for tail in ["x", "1,]", "-", "-x", "tru"] {
            assert_eq!(at(993, tail), Err(Invalid), "{tail}");
        }
        assert_eq!(at(993, &"1".repeat(4301)), Err(Invalid));
        let closed = |d: usize, inner: &str| {
            parse_lenient_depth(&format!("{}{inner}{}", "[".repeat(d), "]".repeat(d)), 993)
        };
        for word in ["NaN", "Infinity", "-Infinity"] {
            assert!(closed(992, word).is_ok(), "{word}");
            assert_eq!(closed(993, word), Err(TooDeep), "{word}");
        }
        assert!(closed(993, &"1".repeat(4300)).is_ok());
        assert!(closed(993, "1.5e400").is_ok());
        assert!(closed(993, r#""a\u00e9""#).is_ok());
        assert_eq!(
            parse_lenient_depth(&format!("{}{}x", "[".repeat(993), "]".repeat(993)), 993),
            Err(Invalid)
        );
        // orjson refuses past 1024, so loads falls to the lenient parser, whose error it is
        let deep = format!("{{\"rule\":{}}}", nest(1100));
        assert_eq!(loads(&deep), Err(TooDeep));
        // between the two limits: orjson takes it, Python's json is not asked
        let mid = nest(1000);
        assert!(matches!(loads(&mid), Ok((_, false))));
        assert_eq!(parse_lenient(&mid), Err(TooDeep));
    }

    /// 100 000 `[` (and `{"a":`) cost no native stack: the parser is iterative.
    #[test]
    fn no_stack_overflow() {
        for text in ["[".repeat(100_000), r#"{"a":"#.repeat(100_000)] {
            assert_eq!(parse_strict(&text), Err(TooDeep));
            assert_eq!(parse_lenient(&text), Err(TooDeep));
            assert_eq!(parse_lenient_depth(&text, usize::MAX), Err(Invalid));
            assert_eq!(loads(&text), Err(TooDeep));
        }
    }

    /// Python's int() refuses more than 4300 digits (ValueError, caught as a syntax
    /// error); orjson reads any integer past u64 as a double, refused when infinite.
    /// (Checked: `json.loads("1"*4300)` is an int, `"1"*4301` and `"1"+"0"*4300` raise,
    /// `"1"*4301+".0"` is inf; orjson raises on all of them.)
    #[test]
    fn integer_digit_limits() {
        let ones = "1".repeat(4300);
        assert_eq!(parse_lenient(&ones), Ok(big(&ones)));
        let neg = format!("-{ones}");
        assert_eq!(parse_lenient(&neg), Ok(big(&neg)));
        assert_eq!(parse_lenient(&format!("{ones}1")), Err(Invalid));
        assert_eq!(parse_lenient(&format!("-{ones}1")), Err(Invalid));
        assert_eq!(
            parse_lenient(&format!("1{}", "0".repeat(4300))),
            Err(Invalid)
        );
        assert_eq!(parse_lenient(&format!("{ones}1.0")), Ok(fl(f64::INFINITY)));
        for text in [ones.clone(), format!("{ones}1"), format!("{ones}1.0")] {
            assert_eq!(parse_strict(&text), Err(Invalid));
        }
        // 309 digits is still a finite double for orjson, 310 nines is not
        let d309 = format!("1{}", "0".repeat(308));
        assert_eq!(parse_strict(&d309), Ok(fl(1e308)));
        assert_eq!(parse_strict(&"9".repeat(310)), Err(Invalid));
        assert_eq!(parse_lenient(&d309), Ok(big(&d309)));
    }

    /// A repeated key keeps its first position and takes the last value (a Python dict;
    /// orjson builds one the same way), in small maps and in indexed big ones.
    #[test]
    fn duplicate_keys() {
        let body: Vec<String> = (0..100).map(|n| format!("\"k{}\":{n}", n % 37)).collect();
        let text = format!("{{{}}}", body.join(","));
        let want = m((0..37)
            .map(|k| (k, (0..100).filter(|n| n % 37 == k).max().unwrap()))
            .map(|(k, n)| (Box::leak(format!("k{k}").into_boxed_str()) as &str, i(n)))
            .collect());
        assert_eq!(parse_strict(&text), Ok(want.clone()));
        assert_eq!(parse_lenient(&text), Ok(want));
    }

    /// The choice for lone surrogate escapes: Python keeps them, a Rust string cannot,
    /// so the lenient parser answers LoneSurrogate, only once the whole text parsed.
    #[test]
    fn lone_surrogates_are_reported_not_replaced() {
        assert_eq!(parse_lenient(r#"{"a":"x\ud800y"}"#), Err(LoneSurrogate));
        assert_eq!(loads(r#"{"a":"x\udfff"}"#), Err(LoneSurrogate));
        assert_eq!(parse_lenient(r#"{"a":"x\ud800y",}"#), Err(Invalid));
        assert_eq!(parse_strict(r#"{"a":"x\ud800y"}"#), Err(Invalid));
        // a pair is one character, also next to a lone one
        assert_eq!(
            parse_strict(r#""\ud83d\ude00\u00e9""#),
            Ok(s("\u{1f600}\u{e9}"))
        );
    }

    /// An alerts.json line with a raw newline and tab in full_log: refused by orjson,
    /// taken by Python's json (`_wazuh_json_recovered`).
    #[test]
    fn recovered_wazuh_alert() {
        let text = "{\"timestamp\":\"2024-09-23T05:55:30\",\"rule\":{\"level\":5,\"id\":\"750\",\
                    \"mail\":false},\"agent\":{\"id\":\"007\"},\"full_log\":\"a\n\tb\",\
                    \"data\":{\"n\":18446744073709551615,\"f\":1.5,\"z\":null}}";
        let (v, recovered) = loads(text).unwrap();
        assert!(recovered);
        let doc = v.as_map().unwrap();
        let keys: Vec<&str> = doc.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["timestamp", "rule", "agent", "full_log", "data"]);
        assert_eq!(doc.get("full_log"), Some(&s("a\n\tb")));
        assert_eq!(
            doc.get("data"),
            Some(&m(vec![
                ("n", big("18446744073709551615")),
                ("f", fl(1.5)),
                ("z", N)
            ]))
        );
        assert_eq!(
            doc.get("rule"),
            Some(&m(vec![
                ("level", i(5)),
                ("id", s("750")),
                ("mail", B(false))
            ]))
        );
        let clean = text.replace("a\n\tb", r"a\n\tb");
        assert!(matches!(loads(&clean), Ok((_, false))));
    }
}
