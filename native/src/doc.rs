//! The one document tree of the core: what the header, the grok captures, the ops and
//! JSON bodies write, and what goes out as a Python dict or as NDJSON.
//!
//! Maps keep insertion order (Python's dict order, so documents come out as the Python
//! parser wrote them); documents are small, so a map is a vector searched linearly.

use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64, as its ASCII decimal digits with an optional `-`.
    BigInt(String),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Map),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map(pub Vec<(String, Value)>);

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Python's truth value.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.0.is_empty(),
        }
    }
}

impl Map {
    pub fn new() -> Map {
        Map(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// `d[key] = v`: replaces in place (keeping the key's position) or appends.
    pub fn insert(&mut self, key: &str, v: Value) {
        match self.get_mut(key) {
            Some(slot) => *slot = v,
            None => self.0.push((key.to_string(), v)),
        }
    }

    /// Appends an entry whose key is not there yet (no lookup).
    pub fn push(&mut self, key: &str, v: Value) {
        self.0.push((key.to_string(), v));
    }

    /// `d.pop(key, None)`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// `d.setdefault(key, v)`.
    pub fn setdefault(&mut self, key: &str, v: Value) -> &mut Value {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.0.push((key.to_string(), v));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// The object at `key`, made (or put in place of a non-object) when needed — what
    /// the grok fill does for a capture's parent objects.
    pub fn obj(&mut self, key: &str) -> &mut Map {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(at) => {
                if !matches!(self.0[at].1, Value::Map(_)) {
                    self.0[at].1 = Value::Map(Map::new());
                }
                at
            }
            None => {
                // sized for a typical sub-object: no growth for most
                self.0
                    .push((key.to_string(), Value::Map(Map(Vec::with_capacity(4)))));
                self.0.len() - 1
            }
        };
        match &mut self.0[at].1 {
            Value::Map(m) => m,
            _ => unreachable!(),
        }
    }

    /// The object at a path (this map for an empty one), made like [`Map::put`]'s parents.
    pub fn obj_at(&mut self, path: &[String]) -> &mut Map {
        let mut m = self;
        for p in path {
            m = m.obj(p);
        }
        m
    }

    /// `setdefault(key, {})` that leaves a non-object alone: None then.
    pub fn obj_if_any(&mut self, key: &str) -> Option<&mut Map> {
        self.setdefault(key, Value::Map(Map::new())).as_map_mut()
    }

    /// The value at a dotted path (`["source", "address"]`), through objects only.
    pub fn at(&self, path: &[String]) -> Option<&Value> {
        let (leaf, parents) = path.split_last()?;
        let mut m = self;
        for p in parents {
            m = m.get(p)?.as_map()?;
        }
        m.get(leaf)
    }

    pub fn at_mut(&mut self, path: &[String]) -> Option<&mut Value> {
        let (leaf, parents) = path.split_last()?;
        let mut m = self;
        for p in parents {
            m = m.get_mut(p)?.as_map_mut()?;
        }
        m.get_mut(leaf)
    }

    /// The string at a path, if it is one.
    pub fn str_at(&self, path: &[String]) -> Option<&str> {
        self.at(path).and_then(Value::as_str)
    }

    /// Writes `v` at the path, making parent objects (a non-object parent is replaced,
    /// as the grok fill does).
    pub fn put(&mut self, path: &[String], v: Value) {
        let (leaf, parents) = path.split_last().expect("a field path is never empty");
        let mut m = self;
        for p in parents {
            m = m.obj(p);
        }
        m.insert(leaf, v);
    }

    /// Removes the value at the path; parents stay (Python's `d["a"].pop("b")`).
    pub fn take(&mut self, path: &[String]) -> Option<Value> {
        let (leaf, parents) = path.split_last()?;
        let mut m = self;
        for p in parents {
            m = m.get_mut(p)?.as_map_mut()?;
        }
        m.remove(leaf)
    }

    /// Appends a tag to the `tags` list (made when missing).
    pub fn tag(&mut self, tag: &str) {
        match self.get_mut("tags") {
            Some(Value::List(tags)) => tags.push(Value::str(tag)),
            _ => self.insert("tags", Value::List(vec![Value::str(tag)])),
        }
    }
}

/// How deep containers nest in `v` (a scalar: 0).
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::List(l) => Box::new(l.iter()),
            Value::Map(m) => Box::new(m.0.iter().map(|(_, x)| x)),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// FNV-1a: the hasher of the core's small caches (program names, time stamps), whose keys
/// come from the lines themselves but are bounded, so SipHash's flooding resistance buys
/// nothing there.
#[derive(Default, Clone, Copy)]
pub struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type Fnv = std::hash::BuildHasherDefault<FnvHasher>;

/// A dotted field name as a path (`a.b.c`); empty parts are refused.
pub fn path(name: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = name.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("bad field name {name:?}"));
    }
    Ok(parts)
}

/// Python's `str()` of a value (containers, which Python would print as their repr, as JSON).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::BigInt(d) => d.clone(),
        Value::Float(f) => py_float(*f),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Null => "None".to_string(),
        other => {
            let mut out = Vec::new();
            write_json(&mut out, other);
            String::from_utf8(out).unwrap_or_default()
        }
    }
}

/// `repr(float)`: the shortest round-trip digits, positional for exponents -4..16.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}"); // "-1.5e16", "5e0"
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp < 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

// -- JSON out (orjson's compact form: non-ASCII as is, `/` unescaped) -------------------

pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => write_int(out, *n),
        Value::BigInt(d) => out.extend_from_slice(d.as_bytes()),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item);
            }
            out.push(b']');
        }
        Value::Map(m) => write_map(out, m),
    }
}

pub fn write_map(out: &mut Vec<u8>, m: &Map) {
    out.push(b'{');
    for (i, (k, v)) in m.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_json(out, v);
    }
    out.push(b'}');
}

/// An integer's decimal digits, without a formatter or an allocation.
fn write_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Shortest round-trip text, as orjson writes it (`1.0`, `1e16`, `null` for NaN and
/// the infinities, which JSON cannot hold).
fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    // straight into the output (a `format!` allocated a String per number)
    let _ = write!(StrOut(out), "{f:?}");
}

/// The bytes a JSON string cannot hold as they are: `"`, `\\` and the controls.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any byte of `x` is a control, `"` or `\\` (eight bytes at a time: most text
/// has none, and is then copied in one piece).
fn any_special(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |y: u64| y.wrapping_sub(LO) & !y & HI != 0;
    x.wrapping_sub(LO * 0x20) & !x & HI != 0 || zero(x ^ (LO * 0x22)) || zero(x ^ (LO * 0x5C))
}

/// Whether the string has nothing to escape (the common case, tested a word at a time:
/// the last word overlaps the one before it, a short string is padded).
fn plain(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 8 {
        let mut word = *b"aaaaaaaa";
        word[..n].copy_from_slice(bytes);
        return !any_special(u64::from_le_bytes(word));
    }
    let word_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 <= n {
        if any_special(word_at(i)) {
            return false;
        }
        i += 8;
    }
    i == n || !any_special(word_at(n - 8))
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if bytes.len() < 16 && plain(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    loop {
        let at = next_special(bytes, start);
        out.extend_from_slice(&bytes[start..at]);
        let Some(&b) = bytes.get(at) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                let _ = write!(StrOut(out), "\\u{b:04x}");
            }
        }
        start = at + 1;
    }
    out.push(b'"');
}

/// The position of the first byte from `from` that JSON must escape (`len` when none):
/// sixteen bytes a compare on x86-64 (SSE2 is part of its baseline), a JSON line's raw text
/// in `event.original` holding a quote every few bytes.
fn next_special(bytes: &[u8], from: usize) -> usize {
    let n = bytes.len();
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always there on x86-64; every load reads bytes[i..i + 16], in bounds
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctrl = _mm_set1_epi8(0x1F);
            while i + 16 <= n {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i) as *const __m128i);
                // a control byte is one whose unsigned max with 0x1F is 0x1F
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(v, ctrl), ctrl),
                );
                let mask = _mm_movemask_epi8(hit);
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while i + 8 <= n {
        if any_special(u64::from_le_bytes(
            bytes[i..i + 8].try_into().expect("8 bytes"),
        )) {
            break;
        }
        i += 8;
    }
    while i < n && !NEEDS_ESCAPE[bytes[i] as usize] {
        i += 1;
    }
    i
}

struct StrOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON string escaping, byte by byte: what the fast writer must give.
    fn escaped(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn floats_print_as_python_repr() {
        for (f, s) in [
            (5.0, "5.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e300, "1e+300"),
        ] {
            assert_eq!(py_float(f), s);
        }
    }

    #[test]
    fn strings_escape_as_byte_by_byte_at_every_length_and_position() {
        let pieces = [
            "a", "é", "\"", "\\", "\n", "\u{1}", "\u{1f}", " ", "\u{7f}", "€", "\t", "z",
        ];
        let mut seed: u64 = 7;
        for len in 0..70 {
            for _ in 0..40 {
                let mut s = String::new();
                for _ in 0..len {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // mostly plain text, a special now and then
                    let k = (seed >> 33) as usize % (pieces.len() * 4);
                    s.push_str(if k < pieces.len() { pieces[k] } else { "x" });
                }
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(out, escaped(&s), "{s:?}");
            }
        }
    }

    fn p(s: &str) -> Vec<String> {
        path(s).unwrap()
    }

    #[test]
    fn paths_put_and_take() {
        let mut m = Map::new();
        m.put(&p("source.address"), Value::str("1.2.3.4"));
        m.put(&p("source.port"), Value::Int(22));
        assert_eq!(m.str_at(&p("source.address")), Some("1.2.3.4"));
        // a value where an object is needed is replaced, as the grok fill does
        m.put(&p("source.address.x"), Value::Int(1));
        assert_eq!(m.at(&p("source.address.x")), Some(&Value::Int(1)));
        assert_eq!(m.take(&p("source.port")), Some(Value::Int(22)));
        assert!(path("a..b").is_err());
    }

    #[test]
    fn depth_of_nesting() {
        assert_eq!(depth(&Value::Int(1)), 0);
        let mut v = Value::List(vec![]);
        for _ in 0..5 {
            let mut m = Map::new();
            m.insert("k", v);
            v = Value::Map(m);
        }
        assert_eq!(depth(&v), 6);
    }

    #[test]
    fn json_as_orjson_writes_it() {
        let mut m = Map::new();
        m.insert("s", Value::str("a\"b\\c\n\u{1}é/"));
        m.insert("f", Value::Float(1.0));
        m.insert("g", Value::Float(1e16));
        m.insert("n", Value::Float(f64::NAN));
        m.insert(
            "l",
            Value::List(vec![Value::Int(-3), Value::Null, Value::Bool(true)]),
        );
        m.insert("b", Value::BigInt("123456789012345678901234567890".into()));
        let mut out = Vec::new();
        write_map(&mut out, &m);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"s":"a\"b\\c\n\u0001é/","f":1.0,"g":1e16,"n":null,"l":[-3,null,true],"b":123456789012345678901234567890}"#
        );
    }
}

#[cfg(test)]
mod string_tests {
    use super::*;

    #[test]
    fn escapes_at_every_offset_of_a_word() {
        for (c, esc) in [
            ('"', "\\\""),
            ('\\', "\\\\"),
            ('\n', "\\n"),
            ('\u{1f}', "\\u001f"),
        ] {
            for at in 0..20 {
                let mut text: String = "abcdefghijklmnopqrst".into();
                text.insert(at, c);
                let mut out = Vec::new();
                write_str(&mut out, &text);
                let want = format!("\"{}{esc}{}\"", &text[..at], &text[at + 1..]);
                assert_eq!(String::from_utf8(out).unwrap(), want);
            }
        }
        let mut out = Vec::new();
        write_str(&mut out, "héllo wörld ~\u{7f} ok");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"héllo wörld ~\u{7f} ok\""
        );
    }
}
