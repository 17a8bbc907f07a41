//! Grok compilation and matching: a port of `streams/parse/grok.py` (the definitions,
//! `%{SYNTAX:field.path:type}` expansion, `(?<name>...)` captures, the int/float
//! conversions, and `compile_alternation`: the first item of an ordered alternation that
//! matches the whole text wins, its captures and its `set:` constants written as nested
//! fields, no empty sub-objects).
//!
//! The patterns are Python `re` syntax; PCRE2 (UTF + UCP + DOTALL) reads every construct
//! the project's patterns use the same way (`(?P<name>`, possessive `++`, atomic groups,
//! lookarounds, `\d \w \s \b` as Unicode classes). An alternation too large for PCRE2 in
//! one piece ("regular expression is too large") is split into consecutive chunks tried
//! in order, which keeps the priority of its items.

use crate::pcre::{first_bytes, CompileError, Groups, Limits, MatchError, Regex, ERROR_TOO_LARGE};
use crate::pyunicode;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A pattern that does not compile or refers to an unknown name (Python's PatternError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrokError(pub String);

impl std::fmt::Display for GrokError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, GrokError> {
    Err(GrokError(msg.into()))
}

// -- conversions ------------------------------------------------------------------------

/// A typed capture's conversion (`:int`/`:integer`, `:float`; `:string` is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    Int,
    Float,
}

/// A field's value. Strings borrow from the matched text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'t> {
    Str(&'t str),
    Int(i64),
    /// An integer beyond i64, as its ASCII decimal digits with an optional `-`.
    BigInt(String),
    Float(f64),
    /// The `n`th constant (`set:`) of the matcher, see [`Matcher::statics`].
    Static(usize),
}

/// What CPython does first in `int(str)` and `float(str)`: decimal digits become ASCII,
/// whitespace a space; any other non-ASCII character makes the text invalid. Then the
/// ASCII whitespace around it is dropped.
fn to_ascii(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if pyunicode::is_space(c) {
            out.push(' ');
        } else {
            out.push(char::from_digit(pyunicode::digit(c)?, 10)?);
        }
    }
    let trimmed = out.trim_matches(|c: char| " \t\n\r\x0b\x0c".contains(c));
    Some(trimmed.to_string())
}

/// Underscores only between two digits (PEP 515); the text without them.
fn without_underscores(s: &str) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_'
            && !(i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            return None;
        }
    }
    Some(s.replace('_', ""))
}

/// Python's `int(text)` (base 10), or None where it raises ValueError.
pub(crate) fn py_int(text: &str) -> Option<Value<'static>> {
    let s = to_ascii(text)?;
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    if !digits.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    let digits = without_underscores(digits)?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) || digits.len() > 4300 {
        return None; // 4300: CPython's limit on the digits int() converts
    }
    let signed = if neg { format!("-{digits}") } else { digits };
    Some(match signed.parse::<i64>() {
        Ok(v) => Value::Int(v),
        Err(_) => {
            let t = signed.trim_start_matches(['-', '0']);
            Value::BigInt(if neg { format!("-{t}") } else { t.to_string() })
        }
    })
}

/// Python's `float(text)`, or None where it raises ValueError.
pub(crate) fn py_float(text: &str) -> Option<f64> {
    let s = to_ascii(text)?;
    let s = without_underscores(&s)?;
    // Rust's parser takes what Python's does (sign, digits with `.`, exponent, inf,
    // infinity, nan in any case) and nothing else but these spellings of inf/nan
    let body = s.trim_start_matches(['+', '-']);
    if s.len() - body.len() > 1 {
        return None;
    }
    s.parse::<f64>().ok()
}

/// `_to_int` / `_to_float`: the converted value, or the text itself when it does not
/// convert (Python keeps the string).
pub fn convert(text: &str, conv: Option<Conv>) -> Value<'_> {
    match conv {
        None => Value::Str(text),
        Some(Conv::Int) => py_int(text).unwrap_or(Value::Str(text)),
        Some(Conv::Float) => py_float(text).map_or(Value::Str(text), Value::Float),
    }
}

// -- field paths ------------------------------------------------------------------------

/// `[source][ip]` or `source.ip` -> ["source", "ip"] (Python's `field_path`).
pub fn field_path(name: &str) -> Result<Vec<String>, GrokError> {
    let parts: Vec<String> = if name.starts_with('[') {
        // re.split(r"\]\[|\[|\]", name), empty parts dropped
        name.split(['[', ']'])
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    } else {
        name.split('.').map(str::to_string).collect()
    };
    if parts.is_empty() || parts.iter().any(String::is_empty) {
        return err(format!("bad field name '{name}'"));
    }
    Ok(parts)
}

// -- expansion --------------------------------------------------------------------------

fn word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn field_char(c: char) -> bool {
    word(c) || "@.[]-".contains(c)
}

/// The longest run of `ok` characters at the start of `s`, in bytes.
fn run(s: &str, ok: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !ok(c))
        .map_or(s.len(), |(i, _)| i)
}

/// A `%{NAME[:field][:type]}` reference at the start of `s`, as Python's `_REF` reads it:
/// (name, field, type, length).
fn parse_ref(s: &str) -> Option<(&str, Option<&str>, Option<&str>, usize)> {
    let rest = s.strip_prefix("%{")?;
    let n = run(rest, word);
    if n == 0 {
        return None;
    }
    let (name, mut rest) = rest.split_at(n);
    let mut field = None;
    if let Some(r) = rest.strip_prefix(':') {
        let f = run(r, field_char);
        if f > 0 {
            field = Some(&r[..f]);
            rest = &r[f..];
        }
    }
    let mut typ = None;
    if let Some(r) = rest.strip_prefix(':') {
        for t in ["int", "float", "integer", "string"] {
            if r.strip_prefix(t).is_some_and(|x| x.starts_with('}')) {
                typ = Some(t);
                rest = &r[t.len()..];
                break;
            }
        }
    }
    let rest = rest.strip_prefix('}')?;
    Some((name, field, typ, s.len() - rest.len()))
}

/// A `(?<name>` named group at the start of `s` (not `(?<=`, `(?<!`): (name, length).
fn parse_named(s: &str) -> Option<(&str, usize)> {
    let rest = s.strip_prefix("(?<")?;
    let n = run(rest, field_char);
    if n == 0 || !rest[n..].starts_with('>') {
        return None;
    }
    Some((&rest[..n], 3 + n + 1))
}

/// One capture of an expanded expression: its group name, field path and conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    group: String,
    path: Vec<String>,
    conv: Option<Conv>,
}

/// Expands expressions, numbering their captures `_g1`, `_g2`, … (Python's `_Builder`).
struct Builder<'l> {
    defs: &'l HashMap<String, String>,
    fields: Vec<Field>,
}

impl Builder<'_> {
    fn group(&mut self, path: Vec<String>, conv: Option<Conv>) -> String {
        let group = format!("_g{}", self.fields.len() + 1);
        self.fields.push(Field {
            group: group.clone(),
            path,
            conv,
        });
        group
    }

    fn expand(&mut self, text: &str, stack: &mut Vec<String>) -> Result<String, GrokError> {
        // first the `(?<name>` groups of this text, then its references, as Python does
        let mut named = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if let Some((name, len)) = parse_named(&text[i..]) {
                let g = self.group(field_path(name)?, None);
                named.push_str(&format!("(?P<{g}>"));
                i += len;
            } else {
                let c = text[i..].chars().next().unwrap();
                named.push(c);
                i += c.len_utf8();
            }
        }
        let text = named;
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            let Some((name, fld, typ, len)) = parse_ref(&text[i..]) else {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
                continue;
            };
            if stack.iter().any(|s| s == name) {
                return err(format!(
                    "recursive pattern %{{{name}}} ({} -> {name})",
                    stack.join(" -> ")
                ));
            }
            let Some(defn) = self.defs.get(name) else {
                return err(format!("unknown pattern %{{{name}}}"));
            };
            stack.push(name.to_string());
            let inner = self.expand(defn, stack)?;
            stack.pop();
            match fld {
                None => out.push_str(&format!("(?:{inner})")),
                Some(f) => {
                    let conv = match typ {
                        Some("int") | Some("integer") => Some(Conv::Int),
                        Some("float") => Some(Conv::Float),
                        _ => None,
                    };
                    let g = self.group(field_path(f)?, conv);
                    out.push_str(&format!("(?P<{g}>{inner})"));
                }
            }
            i += len;
        }
        Ok(out)
    }
}

// -- Python `re` -> PCRE2 ---------------------------------------------------------------

/// Python's `\s` for str patterns: `str.isspace()`, which has U+001C..U+001F and not
/// U+180E, unlike PCRE2's UCP `\s`.
const PY_SPACE: &str =
    r"\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}";
/// Python's `\w` for str patterns: `str.isalnum()` or `_` (PCRE2's UCP `\w` also takes
/// combining marks and connector punctuation).
const PY_WORD: &str = r"\p{L}\p{N}_";

/// A regex in Python `re` syntax as PCRE2 (UTF + UCP) reads it with the same meaning:
/// `\w \W \s \S \b \B` spelled out with Python's classes, `\Z` as `\z`, `\uXXXX` and
/// `\UXXXXXXXX` as `\x{…}`, a `[` inside a class escaped (PCRE2 would read `[:…:]` as a
/// POSIX class). Left as they are: `\d` (the same Nd class, though PCRE2's Unicode
/// tables are newer than Python 3.11's), and `\W`, `\S` inside a class (no pattern has
/// them).
pub fn to_pcre(regex: &str) -> String {
    let word = format!("[{PY_WORD}]");
    let mut out = String::with_capacity(regex.len() + 16);
    let mut chars = regex.chars().peekable();
    let mut in_class = false;
    let mut class_start = false; // just after `[` or `[^`: a `]` here is a literal
    while let Some(c) = chars.next() {
        let at_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match (e, in_class) {
                    ('w', false) => out.push_str(&word),
                    ('w', true) => out.push_str(PY_WORD),
                    ('W', false) => out.push_str(&format!("[^{PY_WORD}]")),
                    ('s', false) => out.push_str(&format!("[{PY_SPACE}]")),
                    ('s', true) => out.push_str(PY_SPACE),
                    ('S', false) => out.push_str(&format!("[^{PY_SPACE}]")),
                    ('b', false) => {
                        out.push_str(&format!("(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"))
                    }
                    ('B', false) => {
                        out.push_str(&format!("(?:(?<={word})(?={word})|(?<!{word})(?!{word}))"))
                    }
                    ('Z', false) => out.push_str(r"\z"),
                    ('u', _) | ('U', _) => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let hex: String = chars.by_ref().take(n).collect();
                        out.push_str(&format!("\\x{{{hex}}}"));
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if in_class => out.push_str(r"\["),
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap());
                }
            }
            ']' if in_class && !at_start => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

// -- filling ----------------------------------------------------------------------------

/// Where one leaf's value comes from: a group (converted) or a constant.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Cap(usize, Option<Conv>),
    Const(usize),
}

/// The fields one item writes, as a tree in first-mention order (Python's
/// `compile_filler`): captures first, then constants.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Obj(Vec<(Key, Plan)>),
    Leaf(Vec<Entry>),
}

/// A field name; `id` numbers the distinct names of a matcher (see [`Matcher::keys`]), so
/// a caller can keep one ready-made string per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub id: usize,
}

/// The distinct field names of a matcher, numbered in first-seen order.
#[derive(Default, Clone)]
struct Keys {
    ids: HashMap<String, usize>,
    names: Vec<String>,
}

impl Keys {
    fn key(&mut self, name: &str) -> Key {
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                self.names.push(name.to_string());
                self.ids.insert(name.to_string(), self.names.len() - 1);
                self.names.len() - 1
            }
        };
        Key {
            name: name.to_string(),
            id,
        }
    }
}

/// A written field: a value or a nested object (key order as Python writes them).
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'p, 't> {
    Obj(Fields<'p, 't>),
    Val(Value<'t>),
}

/// The fields of a match, in the order Python inserts them.
pub type Fields<'p, 't> = Vec<(&'p Key, Node<'p, 't>)>;

impl Plan {
    fn add(&mut self, path: &[String], entry: Entry, keys: &mut Keys) -> Result<(), GrokError> {
        let both = || {
            err(format!(
                "field {} is both a value and an object",
                path.join(".")
            ))
        };
        let mut node = self;
        let (leaf, parents) = path.split_last().expect("a field path is never empty");
        for p in parents {
            let Plan::Obj(children) = node else {
                return both();
            };
            let at = match children.iter().position(|(k, _)| k.name == *p) {
                Some(at) => at,
                None => {
                    children.push((keys.key(p), Plan::Obj(Vec::new())));
                    children.len() - 1
                }
            };
            node = &mut children[at].1;
        }
        let Plan::Obj(children) = node else {
            return both();
        };
        match children.iter_mut().find(|(k, _)| k.name == *leaf) {
            Some((_, Plan::Leaf(entries))) => entries.push(entry),
            Some(_) => return both(),
            None => children.push((keys.key(leaf), Plan::Leaf(vec![entry]))),
        }
        Ok(())
    }

    fn fill<'p, 't>(children: &'p [(Key, Plan)], groups: &Groups, text: &'t str) -> Fields<'p, 't> {
        let mut out = Vec::new();
        for (key, child) in children {
            match child {
                Plan::Obj(sub) => {
                    let doc = Plan::fill(sub, groups, text);
                    if !doc.is_empty() {
                        out.push((key, Node::Obj(doc)));
                    }
                }
                Plan::Leaf(entries) => {
                    // each entry in turn: the last one that has a value wins
                    let value = entries.iter().rev().find_map(|e| match *e {
                        Entry::Const(i) => Some(Value::Static(i)),
                        Entry::Cap(g, conv) => {
                            groups.get(g).map(|(s, e)| convert(&text[s..e], conv))
                        }
                    });
                    if let Some(v) = value {
                        out.push((key, Node::Val(v)));
                    }
                }
            }
        }
        out
    }
}

// -- the library and alternations -------------------------------------------------------

/// One item of an alternation: its name, expression and constant fields (parents, leaf).
pub struct Item {
    pub name: String,
    pub expr: String,
    pub statics: Vec<Vec<String>>,
}

/// A part of an alternation compiled as one regex.
struct Chunk {
    regex: Regex,
    /// (wrapper group, item index, fill plan), in priority order
    branches: Vec<(usize, usize, Plan)>,
}

/// `by_byte` entries: no item can match / all items are candidates.
const NONE: u16 = u16::MAX;
const ALL: u16 = u16::MAX - 1;

/// The alternation of the items a first byte leaves (compiled on first use).
struct Narrowed {
    items: Vec<usize>,
    /// None: it did not compile (not expected: the full one did), the full one runs
    chunks: OnceLock<Option<Vec<Chunk>>>,
}

/// A compiled alternation: `matches(text)` gives the index of the first item that matches
/// the whole text, and its fields.
///
/// Like Python's `KeyedAlternation`, it first narrows the items by the start of the text:
/// here its first byte, against the bytes PCRE2 finds each item can start with (an item
/// starting with a Unicode class or able to match empty is a candidate for every text).
/// The candidates keep their priority order, so the first match is the full
/// alternation's.
pub struct Matcher {
    pub names: Vec<String>,
    /// Number of constants per item (their global numbering is in item order).
    pub statics: Vec<usize>,
    /// The distinct field names, by [`Key::id`].
    pub keys: Vec<String>,
    chunks: Vec<Chunk>,
    by_byte: [u16; 256],
    /// for the empty text
    empty: u16,
    sets: Vec<Narrowed>,
    parts: Vec<Part>,
    key_table: Keys,
    limits: Limits,
}

impl Matcher {
    /// The first item that matches all of `text`, with its fields; `Err` when a regex
    /// limit was hit before an item matched.
    pub fn matches<'p, 't>(
        &'p self,
        text: &'t str,
    ) -> Result<Option<(usize, Fields<'p, 't>)>, MatchError> {
        let Some(chunks) = self.narrow(text) else {
            return Ok(None);
        };
        for chunk in chunks {
            if let Some(groups) = chunk.regex.full_match(text)? {
                let (_, item, plan) = chunk
                    .branches
                    .iter()
                    .find(|(w, _, _)| groups.get(*w).is_some())
                    .expect("a match is inside one branch");
                let Plan::Obj(children) = plan else {
                    unreachable!()
                };
                return Ok(Some((*item, Plan::fill(children, &groups, text))));
            }
        }
        Ok(None)
    }

    /// The regexes to try on `text` (None: no item can match it).
    fn narrow(&self, text: &str) -> Option<&[Chunk]> {
        let set = text
            .as_bytes()
            .first()
            .map_or(self.empty, |&b| self.by_byte[b as usize]);
        match set {
            NONE => None,
            ALL => Some(&self.chunks),
            i => {
                let n = &self.sets[i as usize];
                let built = n.chunks.get_or_init(|| {
                    let mut keys = self.key_table.clone();
                    build_chunks(self.limits, &self.names, &self.parts, &n.items, &mut keys).ok()
                });
                Some(built.as_deref().unwrap_or(&self.chunks))
            }
        }
    }

    /// The number of items a text starting like `text` is tried against.
    pub fn candidates(&self, text: &str) -> usize {
        let set = text
            .as_bytes()
            .first()
            .map_or(self.empty, |&b| self.by_byte[b as usize]);
        match set {
            NONE => 0,
            ALL => self.names.len(),
            i => self.sets[i as usize].items.len(),
        }
    }

    /// Whether every regex of the full alternation runs on the JIT.
    pub fn is_jit(&self) -> bool {
        self.chunks.iter().all(|c| c.regex.is_jit())
    }

    /// How many regexes the full alternation was split into (PCRE2's size limit).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

/// The grok definitions (`NAME regex`), read by Python from the `.grok` files.
pub struct Library {
    defs: HashMap<String, String>,
    limits: Limits,
}

struct Part {
    body: String,
    fields: Vec<Field>,
    statics: Vec<(Vec<String>, usize)>,
}

impl Library {
    pub fn new(defs: HashMap<String, String>, limits: Limits) -> Library {
        Library { defs, limits }
    }

    /// The expansion of one expression (for tests and error messages).
    pub fn expand(&self, expr: &str) -> Result<String, GrokError> {
        Builder {
            defs: &self.defs,
            fields: Vec::new(),
        }
        .expand(expr, &mut Vec::new())
    }

    /// Compiles every definition alone: the errors, by name.
    pub fn validate(&self) -> Vec<(String, GrokError)> {
        let mut names: Vec<&String> = self.defs.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let item = Item {
                    name: n.clone(),
                    expr: format!("%{{{n}}}"),
                    statics: Vec::new(),
                };
                self.compile_alternation(vec![item])
                    .err()
                    .map(|e| (n.clone(), e))
            })
            .collect()
    }

    /// Python's `compile_alternation`: the items in priority order.
    pub fn compile_alternation(&self, items: Vec<Item>) -> Result<Matcher, GrokError> {
        let mut b = Builder {
            defs: &self.defs,
            fields: Vec::new(),
        };
        let mut parts = Vec::with_capacity(items.len());
        let mut next_static = 0;
        for item in &items {
            let start = b.fields.len();
            let body = b
                .expand(&item.expr, &mut Vec::new())
                .map(|python| to_pcre(&python))
                .map_err(|e| GrokError(format!("rule {}: {e}", item.name)))?;
            let statics = item
                .statics
                .iter()
                .map(|p| {
                    next_static += 1;
                    (p.clone(), next_static - 1)
                })
                .collect();
            parts.push(Part {
                body,
                fields: b.fields[start..].to_vec(),
                statics,
            });
        }
        let names: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
        let all: Vec<usize> = (0..parts.len()).collect();
        let mut keys = Keys::default();
        let chunks = build_chunks(self.limits, &names, &parts, &all, &mut keys)?;

        // the items each first byte leaves, in order; one narrowed alternation per set
        let firsts: Vec<Option<[bool; 256]>> = parts
            .iter()
            .map(|p| first_bytes(&p.body).ok().flatten())
            .collect();
        let mut sets: Vec<Narrowed> = Vec::new();
        let mut ids: HashMap<Vec<usize>, u16> = HashMap::new();
        let mut pick = |byte: Option<usize>| -> u16 {
            let chosen: Vec<usize> = (0..parts.len())
                .filter(|&i| match (&firsts[i], byte) {
                    (None, _) => true,
                    (Some(set), Some(b)) => set[b],
                    (Some(_), None) => false, // a first byte: never empty
                })
                .collect();
            if chosen.is_empty() {
                return NONE;
            }
            if chosen.len() == parts.len() {
                return ALL;
            }
            *ids.entry(chosen.clone()).or_insert_with(|| {
                sets.push(Narrowed {
                    items: chosen,
                    chunks: OnceLock::new(),
                });
                (sets.len() - 1) as u16
            })
        };
        let mut by_byte = [NONE; 256];
        for (b, slot) in by_byte.iter_mut().enumerate() {
            *slot = pick(Some(b));
        }
        let empty = pick(None);
        Ok(Matcher {
            names,
            statics: items.iter().map(|i| i.statics.len()).collect(),
            keys: keys.names.clone(),
            chunks,
            by_byte,
            empty,
            sets,
            parts,
            key_table: keys,
            limits: self.limits,
        })
    }
}

fn assemble(limits: Limits, parts: &[Part], chosen: &[usize]) -> Result<Regex, CompileError> {
    let alts: Vec<String> = chosen
        .iter()
        .map(|&i| format!("(?P<_w{i}>{})", parts[i].body))
        .collect();
    Regex::new(&format!("(?:{})", alts.join("|")), limits)
}

/// The alternation of the `chosen` items, split in consecutive chunks where PCRE2 finds it
/// too large.
fn build_chunks(
    limits: Limits,
    names: &[String],
    parts: &[Part],
    chosen: &[usize],
    keys: &mut Keys,
) -> Result<Vec<Chunk>, GrokError> {
    let regex = match assemble(limits, parts, chosen) {
        Ok(r) => r,
        Err(e) if e.code == ERROR_TOO_LARGE && chosen.len() > 1 => {
            let (a, b) = chosen.split_at(chosen.len() / 2);
            let mut out = build_chunks(limits, names, parts, a, keys)?;
            out.extend(build_chunks(limits, names, parts, b, keys)?);
            return Ok(out);
        }
        Err(e) => {
            // name the item at fault
            for &i in chosen {
                if let Err(e) = assemble(limits, parts, &[i]) {
                    return err(format!("rule {}: does not compile: {e}", names[i]));
                }
            }
            return err(format!("does not compile: {e}"));
        }
    };
    let mut branches = Vec::with_capacity(chosen.len());
    for &i in chosen {
        let part = &parts[i];
        let mut plan = Plan::Obj(Vec::new());
        let wrapper = regex
            .group_number(&format!("_w{i}"))
            .expect("wrapper group");
        let fail = |e: GrokError| GrokError(format!("rule {}: {e}", names[i]));
        for f in &part.fields {
            let g = regex.group_number(&f.group).expect("capture group");
            plan.add(&f.path, Entry::Cap(g, f.conv), keys)
                .map_err(fail)?;
        }
        for (path, n) in &part.statics {
            plan.add(path, Entry::Const(*n), keys).map_err(fail)?;
        }
        branches.push((wrapper, i, plan));
    }
    Ok(vec![Chunk { regex, branches }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(defs: &[(&str, &str)]) -> Library {
        Library::new(
            defs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Limits::default(),
        )
    }

    fn item(name: &str, expr: &str, statics: &[&str]) -> Item {
        Item {
            name: name.into(),
            expr: expr.into(),
            statics: statics.iter().map(|s| field_path(s).unwrap()).collect(),
        }
    }

    const BASE: &[(&str, &str)] = &[
        ("INT", r"[+-]?\d++"),
        ("NUMBER", r"[+-]?\d+(?:\.\d+)?"),
        ("WORD", r"\b\w+\b"),
        ("DATA", r".*?"),
        ("GREEDYDATA", r".*"),
        ("IP", r"(?<![0-9])\d{1,3}(?:\.\d{1,3}){3}(?![0-9])"),
    ];

    #[test]
    fn python_classes_spelled_out() {
        let w = r"[\p{L}\p{N}_]";
        assert_eq!(to_pcre(r"\w+"), format!("{w}+"));
        assert_eq!(to_pcre(r"[^\w.\]-]\d"), r"[^\p{L}\p{N}_.\]-]\d");
        assert_eq!(to_pcre(r"[]\s]"), format!("[]{PY_SPACE}]"));
        assert_eq!(to_pcre(r"[^]a][[:x:]]"), r"[^]a][\[:x:]]");
        assert_eq!(to_pcre(r"\\s\Z\u00e9"), r"\\s\z\x{00e9}");
        assert!(to_pcre(r"\b").starts_with("(?:(?<="));
        let lib = Library::new(HashMap::new(), Limits::default());
        let m = |expr: &str, text: &str| {
            let item = Item {
                name: "r".into(),
                expr: expr.into(),
                statics: Vec::new(),
            };
            lib.compile_alternation(vec![item])
                .unwrap()
                .matches(text)
                .unwrap()
                .is_some()
        };
        assert!(m(r"a\sb", "a\u{1c}b")); // Python: a space; PCRE2's \s: not
        assert!(!m(r"a\sb", "a\u{180e}b")); // the reverse
        assert!(!m(r"\w+", "e\u{301}")); // a combining mark is no word character in Python
        assert!(m(r"e\b\W", "e\u{301}"));
        assert!(m(r"\w+\b", "naïve"));
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path("source.ip").unwrap(), ["source", "ip"]);
        assert_eq!(field_path("[source][ip]").unwrap(), ["source", "ip"]);
        assert_eq!(field_path("[a]").unwrap(), ["a"]);
        assert_eq!(field_path("@timestamp").unwrap(), ["@timestamp"]);
        assert!(field_path("a..b").is_err());
        assert!(field_path("[]").is_err());
        assert!(field_path("a.").is_err());
    }

    #[test]
    fn expansion() {
        let l = lib(&[("A", "x%{B:b.c:int}"), ("B", r"\d+"), ("R", "%{R}")]);
        assert_eq!(l.expand("%{A}").unwrap(), r"(?:x(?P<_g1>\d+))");
        assert_eq!(l.expand("%{A:a}").unwrap(), r"(?P<_g2>x(?P<_g1>\d+))");
        // named groups of a text are numbered before its references
        assert_eq!(
            l.expand("%{B:n}(?<m>y)(?<=z)(?<!w)").unwrap(),
            r"(?P<_g2>\d+)(?P<_g1>y)(?<=z)(?<!w)"
        );
        // a reference of an unknown type is left as text, as Python's sub leaves it
        assert_eq!(l.expand("%{B:n:bool}").unwrap(), "%{B:n:bool}");
        assert_eq!(l.expand("%{B:int}").unwrap(), r"(?P<_g1>\d+)");
        assert_eq!(l.expand("%{B:n:integer}").unwrap(), r"(?P<_g1>\d+)");
        assert!(l
            .expand("%{NOPE}")
            .unwrap_err()
            .0
            .contains("unknown pattern %{NOPE}"));
        assert!(l.expand("%{R}").unwrap_err().0.contains("recursive"));
    }

    #[test]
    fn conversions_as_python() {
        let i = |s| convert(s, Some(Conv::Int));
        let f = |s| convert(s, Some(Conv::Float));
        assert_eq!(i("42"), Value::Int(42));
        assert_eq!(i(" -7\n"), Value::Int(-7));
        assert_eq!(i("+1_000"), Value::Int(1000));
        assert_eq!(i("007"), Value::Int(7));
        assert_eq!(i("٣٤"), Value::Int(34));
        assert_eq!(
            i("99999999999999999999"),
            Value::BigInt("99999999999999999999".into())
        );
        assert_eq!(i("-0"), Value::Int(0));
        for bad in ["", "1_", "_1", "1__0", "1.5", "0x1f", "--1", "1 2", "abc"] {
            assert_eq!(i(bad), Value::Str(bad), "{bad:?}");
        }
        assert_eq!(f("1.5"), Value::Float(1.5));
        assert_eq!(f("2"), Value::Float(2.0));
        assert_eq!(f(" .5e1 "), Value::Float(5.0));
        assert_eq!(f("1_0.2_5"), Value::Float(10.25));
        assert_eq!(f("-Infinity"), Value::Float(f64::NEG_INFINITY));
        for bad in ["", "1._5", "1e", ".", "+-1", "0x10", "1,5", "n/a"] {
            assert_eq!(f(bad), Value::Str(bad), "{bad:?}");
        }
        assert_eq!(convert("x", None), Value::Str("x"));
    }

    /// The fields with plain string keys, to compare.
    fn plain<'t>(f: &Fields<'_, 't>) -> Vec<(String, Value<'t>)> {
        f.iter()
            .map(|(k, n)| match n {
                Node::Val(v) => (k.name.clone(), v.clone()),
                Node::Obj(_) => panic!("flat fields expected"),
            })
            .collect()
    }

    fn kv<'t>(k: &str, v: Value<'t>) -> Vec<(String, Value<'t>)> {
        vec![(k.to_string(), v)]
    }

    fn val<'p, 't>(fields: &'p Fields<'p, 't>, path: &str) -> Option<&'p Node<'p, 't>> {
        let mut node = fields;
        let parts: Vec<&str> = path.split('.').collect();
        for (n, p) in parts.iter().enumerate() {
            let (_, child) = node.iter().find(|(k, _)| k.name == *p)?;
            if n + 1 == parts.len() {
                return Some(child);
            }
            let Node::Obj(sub) = child else { return None };
            node = sub;
        }
        None
    }

    #[test]
    fn alternation_priority_and_fields() {
        let l = lib(BASE);
        let m = l
            .compile_alternation(vec![
                item(
                    "first",
                    "%{WORD:a.w} %{INT:a.n:int}",
                    &["event.kind", "a.k"],
                ),
                item("second", "%{WORD:b} %{GREEDYDATA:rest}", &[]),
                item("third", "%{GREEDYDATA:all}", &["x"]),
            ])
            .unwrap();
        let (i, f) = m.matches("hello 42").unwrap().unwrap();
        assert_eq!(m.names[i], "first");
        assert_eq!(val(&f, "a.w"), Some(&Node::Val(Value::Str("hello"))));
        assert_eq!(val(&f, "a.n"), Some(&Node::Val(Value::Int(42))));
        assert_eq!(val(&f, "event.kind"), Some(&Node::Val(Value::Static(0))));
        assert_eq!(val(&f, "a.k"), Some(&Node::Val(Value::Static(1))));
        // key order: captures' first mention, then constants
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(keys, ["a", "event"]);
        let (i, f) = m.matches("hello world").unwrap().unwrap();
        assert_eq!((m.names[i].as_str(), f.len()), ("second", 2));
        let (i, f) = m.matches("!").unwrap().unwrap();
        assert_eq!(m.names[i], "third");
        assert_eq!(val(&f, "x"), Some(&Node::Val(Value::Static(2))));
    }

    #[test]
    fn optional_capture_writes_nothing_and_no_empty_objects() {
        let l = lib(BASE);
        let m = l
            .compile_alternation(vec![item(
                "r",
                "%{WORD:a}(?: %{INT:s.p.n:int})?(?: (?<s.q>x))?",
                &[],
            )])
            .unwrap();
        let (_, f) = m.matches("w").unwrap().unwrap();
        assert_eq!(plain(&f), kv("a", Value::Str("w")));
        let (_, f) = m.matches("w x").unwrap().unwrap();
        assert_eq!(val(&f, "s.q"), Some(&Node::Val(Value::Str("x"))));
        assert_eq!(val(&f, "s.p"), None);
        assert!(m.matches("w 1 y").unwrap().is_none());
    }

    #[test]
    fn same_field_twice_last_value_wins() {
        let l = lib(BASE);
        let m = l
            .compile_alternation(vec![item(
                "r",
                "(?:%{IP:ip}|%{WORD:ip})(?: %{INT:ip:int})?",
                &[],
            )])
            .unwrap();
        assert_eq!(
            plain(&m.matches("1.2.3.4").unwrap().unwrap().1),
            kv("ip", Value::Str("1.2.3.4"))
        );
        assert_eq!(
            plain(&m.matches("abc 5").unwrap().unwrap().1),
            kv("ip", Value::Int(5))
        );
    }

    #[test]
    fn value_and_object_conflict() {
        let l = lib(BASE);
        let e = l
            .compile_alternation(vec![item("r", "%{INT:a} %{INT:a.b}", &[])])
            .err()
            .unwrap();
        assert!(
            e.0.contains("field a.b is both a value and an object"),
            "{e}"
        );
        let e = l
            .compile_alternation(vec![item("r", "%{INT:a.b}", &["a"])])
            .err()
            .unwrap();
        assert!(e.0.contains("both a value and an object"), "{e}");
    }

    #[test]
    fn bad_item_is_named() {
        let l = lib(&[("OK", "a"), ("BAD", "(b")]);
        let e = l
            .compile_alternation(vec![item("ok", "%{OK}", &[]), item("bad", "%{BAD}", &[])])
            .err()
            .unwrap();
        assert!(e.0.starts_with("rule bad: does not compile"), "{e}");
        assert_eq!(l.validate().len(), 1);
    }

    #[test]
    fn too_large_alternation_is_split_keeping_priority() {
        // each item alone compiles; all together exceed PCRE2's compiled size
        let big = format!(
            "(?:{})",
            (0..400)
                .map(|i| format!("w{i}x\\d+y"))
                .collect::<Vec<_>>()
                .join("|")
        );
        let l = lib(&[("BIG", &big), ("INT", r"\d+")]);
        let mut items: Vec<Item> = (0..40)
            .map(|i| {
                item(
                    &format!("r{i}"),
                    &format!("%{{BIG}} %{{INT:n{i}:int}}"),
                    &[],
                )
            })
            .collect();
        items.push(item("last", "z", &[]));
        let m = l.compile_alternation(items).unwrap();
        assert!(m.chunk_count() > 1);
        let (i, f) = m.matches("w7x1y 3").unwrap().unwrap();
        assert_eq!(
            (m.names[i].as_str(), plain(&f)),
            ("r0", kv("n0", Value::Int(3)))
        );
        assert_eq!(m.names[m.matches("z").unwrap().unwrap().0], "last");
    }

    #[test]
    fn narrowing_by_first_byte_keeps_priority() {
        let l = lib(BASE);
        let m = l
            .compile_alternation(vec![
                item("failed", "Failed %{WORD:user}", &[]),
                item("any", "%{WORD:w} %{WORD:v}", &[]),
                item("fallback", "F%{GREEDYDATA:rest}", &[]),
                item("digits", "[0-9]%{GREEDYDATA:rest}", &[]),
            ])
            .unwrap();
        assert_eq!(m.candidates("Failed x"), 3); // failed, any (\w: anything), fallback
        assert_eq!(m.candidates("7"), 2);
        assert_eq!(m.candidates("x"), 1);
        assert_eq!(m.candidates(""), 1);
        let name = |t| m.matches(t).unwrap().map(|(i, _)| m.names[i].clone());
        assert_eq!(name("Failed bob").as_deref(), Some("failed"));
        assert_eq!(name("Failure bob").as_deref(), Some("any"));
        assert_eq!(name("Failure").as_deref(), Some("fallback"));
        assert_eq!(name("7 up").as_deref(), Some("any"));
        assert_eq!(name("7").as_deref(), Some("digits"));
        assert_eq!(name("x"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn limit_is_reported() {
        let l = Library::new(
            [("BAD".to_string(), "(?:a+)+b".to_string())].into(),
            Limits {
                match_limit: 10_000,
                ..Limits::default()
            },
        );
        let m = l
            .compile_alternation(vec![item("r", "%{BAD}", &[])])
            .unwrap();
        let text = format!("{}!b", "a".repeat(40));
        assert!(matches!(m.matches(&text), Err(MatchError::Limit(_))));
    }
}
