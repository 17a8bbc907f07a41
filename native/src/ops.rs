//! Declarative operations of the product YAML (`ops:` of a rule or a parser): what ran
//! as Python hooks, as data (design in `native/OPS.md`). An op list is compiled once from
//! the YAML's data (a [`Value`]) and run on each matched line's document.
//!
//! A field is named by a reference: `a.b.c` (the document), `$table.field` (the current
//! row of a correlation table, see `row`), `$value` / `$key` (inside a `kv` handler),
//! `@message` (the event's message). Ops never fail on a missing field: they do nothing.

use std::collections::{BTreeMap, HashMap};

use crate::doc::{path, py_str, Map, Value};
use crate::grok::{py_float, py_int, to_pcre, Value as GValue};
use crate::ip::as_ip;
use crate::pcre::{Limits, MatchError, Regex};
use crate::timestamps::TimeParser;

pub type Path = Vec<String>;

#[derive(Debug, Clone)]
pub enum Ref {
    Doc(Path),
    Row(usize, String),
    Var(String),
    /// a field inside a variable's object (`$json.rule.level`)
    VarPath(String, Path),
    Message,
}

pub enum Cond {
    Present(Ref),
    Truthy(Ref),
    Equals(Ref, Value),
    In(Ref, Vec<Value>),
    StartsWith(Ref, Vec<String>),
    EndsWith(Ref, Vec<String>),
    Contains(Ref, String),
    Is(Ref, Kind),
    Row(usize),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    /// two fields hold equal values (both present)
    Same(Ref, Ref),
    /// a text that is an IP address (`as_ip`)
    Ip(Ref),
    /// the value of a field (null when missing) is an item of the list in another field
    Member(Ref, Ref),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Str,
    Int,
    Map,
    List,
    /// a string of decimal digits (`str.isdigit()`)
    Digits,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum How {
    Set,
    Default,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conv {
    /// Python's `int()`, the text kept when it is not a number
    Int,
    /// Python's `float()`, the text kept when it is not a number
    Float,
    /// an int only when the text is `-`? and digits (`lstrip("-").isdigit()`), else the text
    Digits,
    /// an int when the text is digits, else nothing is written
    DigitsOnly,
    /// a float when Python's `float()` takes it, else nothing is written
    FloatOnly,
    /// Python's `str()` of any value (`None` -> "None")
    Str,
    /// an int when the text is `-`? and digits, else Python's `float()` (the text kept)
    Number,
}

pub struct Target {
    pub to: Ref,
    pub how: How,
    pub conv: Option<Conv>,
    pub nonempty: bool,
}

pub struct TableDecl {
    pub name: String,
    pub key: Vec<Path>,
    pub require: Vec<Path>,
    pub max: usize,
    pub row: Map,
}

pub enum Op {
    Set(Vec<(Ref, Value)>),
    Default(Vec<(Ref, Value)>),
    Copy {
        from: Ref,
        to: Target,
        list: bool,
        truthy: bool,
        trim: String,
        remove: bool,
    },
    Remove(Vec<Ref>),
    /// removes the object at the path when it is empty
    Prune(Path),
    Tag(String),
    When {
        cond: Cond,
        then: Vec<Op>,
        otherwise: Vec<Op>,
    },
    Map {
        from: Ref,
        to: Ref,
        values: Vec<(Value, Value)>,
        default: Option<Value>,
    },
    Slug {
        from: Vec<Ref>,
        to: Ref,
        prefix: String,
        dash_only: bool,
    },
    Convert(Vec<Ref>, Conv),
    Regex {
        from: Ref,
        rx: Regex,
        full: bool,
        into: Vec<(usize, Target)>,
        then: Vec<Op>,
    },
    Kv {
        from: Ref,
        into: Path,
        rx: Regex,
        /// (value group, type): a value found in that group is converted
        group_types: Vec<(usize, Conv)>,
        key_group: usize,
        value_groups: Vec<usize>,
        first_wins: bool,
        strip: bool,
        lower: bool,
        dash: Option<String>,
        convs: Vec<(String, Conv)>,
        handlers: Vec<(String, Vec<Op>)>,
        /// the field name is `prefix + key + suffix` (handlers and `int:`.. name the key)
        affix: Option<Box<(String, String)>>,
        /// the conversion of the keys `int:`.. do not name
        all: Option<Conv>,
    },
    Findall {
        from: Ref,
        rx: Regex,
        each: Vec<Op>,
    },
    HostPort {
        from: Ref,
        into: Path,
        prefix: String,
    },
    Endpoint {
        into: Path,
        address: Ref,
        domain: Ref,
        port: Ref,
    },
    Address(Path),
    Ip {
        from: Ref,
        to: Target,
    },
    Split {
        from: Ref,
        to: Ref,
        sep: String,
        drop: Vec<String>,
        trim: String,
        remove: bool,
    },
    Time {
        from: Ref,
        to: Ref,
        digit_first: bool,
    },
    Duration {
        from: Ref,
        to: Ref,
    },
    Row {
        table: usize,
        create: bool,
        pop: bool,
        fresh: bool,
    },
    Forget(usize),
    Append {
        to: Ref,
        from: Ref,
    },
    /// the text parsed by another parser's rules (`fail2ban`'s syslog-wrapped body)
    Reparse {
        from: Ref,
        parser: String,
    },
    /// a JSON text read (see `crate::parser`), its ops run with the object as `$json`
    Json(Box<JsonOp>),
    /// a variable's object deep-merged into the document (its values win)
    Merge(Ref),
    /// ops run with a variable's object as the document (written back to the variable)
    With {
        var: String,
        ops: Vec<Op>,
    },
    /// only these top-level fields are kept
    Keep(Vec<String>),
    /// a group of ops (a YAML anchor's list used as one op)
    Do(Vec<Op>),
}

pub struct JsonOp {
    pub from: Ref,
    pub ops: Vec<Op>,
    /// tagged when the text needed the lenient reader ("" = none)
    pub recovered_tag: String,
    /// ops run when the text is no JSON object (the text as `$line`)
    pub damaged: Vec<Op>,
}

// -- compiling ----------------------------------------------------------------------------

pub struct Compiler<'a> {
    pub tables: &'a mut Vec<TableDecl>,
    pub limits: Limits,
}

fn e<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::List(l) => l.iter().collect(),
        other => vec![other],
    }
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what} must be a string, not {v:?}"))
}

fn texts(v: &Value, what: &str) -> Result<Vec<String>, String> {
    as_list(v).into_iter().map(|x| text(x, what)).collect()
}

/// An optional text argument, `default` when absent.
fn opt_text(m: &Map, key: &str, default: &str) -> Result<String, String> {
    m.get(key).map_or(Ok(default.to_string()), |v| text(v, key))
}

fn need<'v>(m: &'v Map, key: &str, op: &str) -> Result<&'v Value, String> {
    m.get(key).ok_or_else(|| format!("{op}: missing {key:?}"))
}

fn flag(m: &Map, key: &str) -> bool {
    matches!(m.get(key), Some(Value::Bool(true)))
}

impl Compiler<'_> {
    pub fn ops(&mut self, spec: &Value) -> Result<Vec<Op>, String> {
        let Value::List(items) = spec else {
            return e(format!("ops must be a list, not {spec:?}"));
        };
        items.iter().map(|i| self.op(i)).collect()
    }

    fn table(&self, name: &str) -> Result<usize, String> {
        self.tables
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| format!("unknown table {name:?}"))
    }

    pub fn reference(&self, s: &str) -> Result<Ref, String> {
        if s == "@message" {
            return Ok(Ref::Message);
        }
        if let Some(rest) = s.strip_prefix('$') {
            return Ok(match rest.split_once('.') {
                Some((t, f)) if self.tables.iter().any(|x| x.name == t) => {
                    Ref::Row(self.table(t)?, f.to_string())
                }
                Some((v, f)) => Ref::VarPath(v.to_string(), path(f)?),
                None => Ref::Var(rest.to_string()),
            });
        }
        Ok(Ref::Doc(path(s)?))
    }

    /// The reference an op's argument `key` names (required).
    fn field(&self, args: &Map, key: &str, op: &str) -> Result<Ref, String> {
        self.refv(need(args, key, op)?)
    }

    fn refv(&self, v: &Value) -> Result<Ref, String> {
        self.reference(&text(v, "a field")?)
    }

    fn doc_path(&self, v: &Value) -> Result<Path, String> {
        path(&text(v, "a field")?)
    }

    fn regex(&self, pattern: &str, search: bool, prefix: bool) -> Result<Regex, String> {
        let p = to_pcre(pattern);
        let r = if search {
            Regex::new_search(&p, prefix, self.limits)
        } else {
            Regex::new(&p, self.limits)
        };
        r.map_err(|err| format!("pattern {pattern:?}: {err}"))
    }

    fn target(&self, v: &Value) -> Result<Target, String> {
        match v {
            Value::Str(s) => Ok(Target {
                to: self.reference(s)?,
                how: How::Set,
                conv: None,
                nonempty: false,
            }),
            Value::Map(m) => Ok(Target {
                to: self.refv(need(m, "to", "target")?)?,
                how: if flag(m, "default") {
                    How::Default
                } else {
                    How::Set
                },
                conv: match m.get("type") {
                    None => None,
                    Some(t) => Some(conv(&text(t, "type")?)?),
                },
                nonempty: flag(m, "nonempty"),
            }),
            _ => e(format!("a target must be a field or a mapping, not {v:?}")),
        }
    }

    fn pairs(&self, v: &Value, op: &str) -> Result<Vec<(Ref, Value)>, String> {
        let Value::Map(m) = v else {
            return e(format!("{op} must be a mapping"));
        };
        m.0.iter()
            .map(|(k, v)| Ok((self.reference(k)?, v.clone())))
            .collect()
    }

    pub fn cond(&self, v: &Value) -> Result<Cond, String> {
        let Value::Map(m) = v else {
            return e(format!("a condition must be a mapping, not {v:?}"));
        };
        if m.len() != 1 {
            return e(format!("a condition has one key, not {v:?}"));
        }
        let (k, arg) = &m.0[0];
        let two = |arg: &Value| -> Result<(Ref, Value), String> {
            match arg {
                Value::List(l) if l.len() == 2 => Ok((self.refv(&l[0])?, l[1].clone())),
                _ => e(format!("{k}: expects [field, value]")),
            }
        };
        Ok(match k.as_str() {
            "present" => Cond::Present(self.refv(arg)?),
            "missing" => Cond::Not(Box::new(Cond::Present(self.refv(arg)?))),
            "truthy" => Cond::Truthy(self.refv(arg)?),
            "falsy" => Cond::Not(Box::new(Cond::Truthy(self.refv(arg)?))),
            "row" => Cond::Row(self.table(&text(arg, "row")?)?),
            "equals" => {
                let (r, v) = two(arg)?;
                Cond::Equals(r, v)
            }
            "in" => {
                let (r, v) = two(arg)?;
                Cond::In(r, as_list(&v).into_iter().cloned().collect())
            }
            "starts_with" => {
                let (r, v) = two(arg)?;
                Cond::StartsWith(r, texts(&v, "starts_with")?)
            }
            "ends_with" => {
                let (r, v) = two(arg)?;
                Cond::EndsWith(r, texts(&v, "ends_with")?)
            }
            "contains" => {
                let (r, v) = two(arg)?;
                Cond::Contains(r, text(&v, "contains")?)
            }
            "is" => {
                let (r, v) = two(arg)?;
                Cond::Is(
                    r,
                    match text(&v, "is")?.as_str() {
                        "str" => Kind::Str,
                        "int" => Kind::Int,
                        "map" => Kind::Map,
                        "list" => Kind::List,
                        "digits" => Kind::Digits,
                        other => return e(format!("is: unknown kind {other:?}")),
                    },
                )
            }
            "all" | "any" => {
                let Value::List(l) = arg else {
                    return e(format!("{k}: expects a list of conditions"));
                };
                let cs = l.iter().map(|c| self.cond(c)).collect::<Result<_, _>>()?;
                if k == "all" {
                    Cond::All(cs)
                } else {
                    Cond::Any(cs)
                }
            }
            "not" => Cond::Not(Box::new(self.cond(arg)?)),
            "same" => match arg {
                Value::List(l) if l.len() == 2 => Cond::Same(self.refv(&l[0])?, self.refv(&l[1])?),
                _ => return e("same: expects [field, field]"),
            },
            "ip" => Cond::Ip(self.refv(arg)?),
            "member" => match arg {
                Value::List(l) if l.len() == 2 => {
                    Cond::Member(self.refv(&l[0])?, self.refv(&l[1])?)
                }
                _ => return e("member: expects [field, list field]"),
            },
            other => return e(format!("unknown condition {other:?}")),
        })
    }

    fn op(&mut self, spec: &Value) -> Result<Op, String> {
        let Value::Map(m) = spec else {
            return e(format!("an op must be a mapping, not {spec:?}"));
        };
        if let Some(c) = m.get("when") {
            for (k, _) in &m.0 {
                if !matches!(k.as_str(), "when" | "then" | "else") {
                    return e(format!("when: unknown key {k:?}"));
                }
            }
            let cond = self.cond(c)?;
            let then = match m.get("then") {
                Some(v) => self.ops(v)?,
                None => Vec::new(),
            };
            let otherwise = match m.get("else") {
                Some(v) => self.ops(v)?,
                None => Vec::new(),
            };
            return Ok(Op::When {
                cond,
                then,
                otherwise,
            });
        }
        if m.len() != 1 {
            return e(format!("an op has one key (or when/then/else): {spec:?}"));
        }
        let (name, arg) = &m.0[0];
        let name = name.as_str();
        let args = || -> Result<&Map, String> {
            arg.as_map()
                .ok_or_else(|| format!("{name}: expects a mapping, not {arg:?}"))
        };
        Ok(match name {
            "set" => Op::Set(self.pairs(arg, name)?),
            "default" => Op::Default(self.pairs(arg, name)?),
            "copy" | "move" => {
                let a = args()?;
                Op::Copy {
                    from: self.field(a, "from", name)?,
                    to: self.target(need(a, "to", name)?)?,
                    list: flag(a, "list"),
                    truthy: flag(a, "truthy"),
                    trim: opt_text(a, "trim", "")?,
                    remove: name == "move",
                }
            }
            "remove" => Op::Remove(
                as_list(arg)
                    .into_iter()
                    .map(|v| self.refv(v))
                    .collect::<Result<_, _>>()?,
            ),
            "prune" => Op::Prune(self.doc_path(arg)?),
            "tag" => Op::Tag(text(arg, "tag")?),
            "map" => {
                let a = args()?;
                let Some(Value::Map(vals)) = a.get("values") else {
                    return e("map: values must be a mapping");
                };
                Op::Map {
                    from: self.field(a, "from", name)?,
                    to: self.field(a, "to", name)?,
                    values: vals
                        .0
                        .iter()
                        .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                        .collect(),
                    default: a.get("default").cloned(),
                }
            }
            "slug" => {
                let a = args()?;
                Op::Slug {
                    from: as_list(need(a, "from", name)?)
                        .into_iter()
                        .map(|v| self.refv(v))
                        .collect::<Result<_, _>>()?,
                    to: self.field(a, "to", name)?,
                    prefix: opt_text(a, "prefix", "")?,
                    dash_only: flag(a, "dash_only"),
                }
            }
            "int" | "float" | "digits" => Op::Convert(
                as_list(arg)
                    .into_iter()
                    .map(|v| self.refv(v))
                    .collect::<Result<_, _>>()?,
                conv(name)?,
            ),
            "regex" => {
                let a = args()?;
                let mode = opt_text(a, "mode", "full")?;
                let pattern = text(need(a, "pattern", name)?, "pattern")?;
                let rx = match mode.as_str() {
                    "full" => self.regex(&pattern, false, false)?,
                    "match" => self.regex(&pattern, true, true)?,
                    "search" => self.regex(&pattern, true, false)?,
                    other => return e(format!("regex: unknown mode {other:?}")),
                };
                let mut into = Vec::new();
                if let Some(Value::Map(i)) = a.get("into") {
                    for (g, t) in &i.0 {
                        let n = match g.parse::<usize>() {
                            Ok(n) => n,
                            Err(_) => rx
                                .group_number(g)
                                .ok_or_else(|| format!("regex: no group {g:?}"))?,
                        };
                        into.push((n, self.target(t)?));
                    }
                }
                Op::Regex {
                    from: self.field(a, "from", name)?,
                    rx,
                    full: mode == "full",
                    into,
                    then: match a.get("then") {
                        Some(v) => self.ops(v)?,
                        None => Vec::new(),
                    },
                }
            }
            "findall" => {
                let a = args()?;
                let pattern = text(need(a, "pattern", name)?, "pattern")?;
                Op::Findall {
                    from: self.field(a, "from", name)?,
                    rx: self.regex(&pattern, true, false)?,
                    each: self.ops(need(a, "each", name)?)?,
                }
            }
            "kv" => {
                let a = args()?;
                let pattern = text(need(a, "pattern", name)?, "pattern")?;
                let rx = self.regex(&pattern, true, false)?;
                let n = rx.group_count();
                if n < 2 {
                    return e("kv: the pattern needs a key group and value groups");
                }
                let mut convs = Vec::new();
                let mut group_types = Vec::new();
                if let Some(Value::Map(g)) = a.get("group_types") {
                    for (n, c) in &g.0 {
                        let n = n
                            .parse::<usize>()
                            .map_err(|_| format!("kv: group_types: bad group {n:?}"))?;
                        group_types.push((n, conv(&text(c, "group_types")?)?));
                    }
                }
                for c in ["int", "float", "digits", "digits_only", "float_only"] {
                    if let Some(keys) = a.get(c) {
                        for k in texts(keys, c)? {
                            convs.push((k, conv(c)?));
                        }
                    }
                }
                let mut handlers = Vec::new();
                if let Some(Value::Map(h)) = a.get("keys") {
                    for (k, ops) in &h.0 {
                        handlers.push((k.clone(), self.ops(ops)?));
                    }
                }
                Op::Kv {
                    from: self.field(a, "from", name)?,
                    into: match need(a, "into", name)? {
                        Value::Str(s) if s.is_empty() => Vec::new(),
                        v => self.doc_path(v)?,
                    },
                    rx,
                    group_types,
                    key_group: 1,
                    value_groups: (2..=n).collect(),
                    first_wins: flag(a, "first_wins"),
                    strip: flag(a, "strip"),
                    lower: flag(a, "lower"),
                    dash: match a.get("dash") {
                        Some(d) => Some(text(d, "dash")?),
                        None => None,
                    },
                    convs,
                    handlers,
                    affix: match (a.get("prefix"), a.get("suffix")) {
                        (None, None) => None,
                        (p, x) => Some(Box::new((
                            p.map_or(Ok(String::new()), |v| text(v, "prefix"))?,
                            x.map_or(Ok(String::new()), |v| text(v, "suffix"))?,
                        ))),
                    },
                    all: match a.get("type") {
                        Some(t) => Some(conv(&text(t, "type")?)?),
                        None => None,
                    },
                }
            }
            "hostport" => {
                let a = args()?;
                Op::HostPort {
                    from: self.field(a, "from", name)?,
                    into: self.doc_path(need(a, "into", name)?)?,
                    prefix: text(need(a, "prefix", name)?, "prefix")?,
                }
            }
            "endpoint" => {
                let a = args()?;
                Op::Endpoint {
                    into: self.doc_path(need(a, "into", name)?)?,
                    address: self.field(a, "address", name)?,
                    domain: self.field(a, "domain", name)?,
                    port: self.field(a, "port", name)?,
                }
            }
            "address" => Op::Address(self.doc_path(arg)?),
            "ip" => {
                let a = args()?;
                Op::Ip {
                    from: self.field(a, "from", name)?,
                    to: self.target(need(a, "to", name)?)?,
                }
            }
            "split" => {
                let a = args()?;
                Op::Split {
                    from: self.field(a, "from", name)?,
                    to: self.field(a, "to", name)?,
                    sep: opt_text(a, "sep", ",")?,
                    drop: match a.get("drop") {
                        Some(d) => texts(d, "drop")?,
                        None => Vec::new(),
                    },
                    trim: opt_text(a, "trim", "")?,
                    remove: flag(a, "remove"),
                }
            }
            "time" => {
                let a = args()?;
                let from = self.field(a, "from", name)?;
                Op::Time {
                    to: match a.get("to") {
                        Some(t) => self.refv(t)?,
                        None => from.clone(),
                    },
                    from,
                    digit_first: flag(a, "digit_first"),
                }
            }
            "duration" => {
                let a = args()?;
                Op::Duration {
                    from: self.field(a, "from", name)?,
                    to: self.field(a, "to", name)?,
                }
            }
            "row" => {
                let a = args()?;
                Op::Row {
                    table: self.table(&text(need(a, "table", name)?, "table")?)?,
                    create: !matches!(a.get("create"), Some(Value::Bool(false))),
                    pop: flag(a, "pop"),
                    fresh: flag(a, "fresh"),
                }
            }
            "forget" => Op::Forget(self.table(&text(arg, "forget")?)?),
            "append_unique" => {
                let a = args()?;
                Op::Append {
                    to: self.field(a, "to", name)?,
                    from: self.field(a, "from", name)?,
                }
            }
            "reparse" => {
                let a = args()?;
                Op::Reparse {
                    from: self.field(a, "from", name)?,
                    parser: text(need(a, "parser", name)?, "parser")?,
                }
            }
            "json" => {
                let a = args()?;
                Op::Json(Box::new(JsonOp {
                    from: self.field(a, "from", name)?,
                    ops: match a.get("ops") {
                        Some(v) => self.ops(v)?,
                        None => Vec::new(),
                    },
                    recovered_tag: opt_text(a, "recovered_tag", "")?,
                    damaged: match a.get("damaged") {
                        Some(v) => self.ops(v)?,
                        None => Vec::new(),
                    },
                }))
            }
            "merge" => Op::Merge(self.refv(arg)?),
            "with" => {
                let a = args()?;
                Op::With {
                    var: text(need(a, "var", name)?, "var")?,
                    ops: self.ops(need(a, "ops", name)?)?,
                }
            }
            "keep" => Op::Keep(texts(arg, "keep")?),
            "do" => Op::Do(self.ops(arg)?),
            other => return e(format!("unknown op {other:?}")),
        })
    }

    /// `tables:` of a parser: `{name: {key: [fields], require: [fields], max, row: {..}}}`.
    pub fn declare_tables(&mut self, spec: &Value) -> Result<(), String> {
        let Value::Map(m) = spec else {
            return e("tables must be a mapping");
        };
        for (name, t) in &m.0 {
            let Value::Map(t) = t else {
                return e(format!("table {name}: expects a mapping"));
            };
            let paths = |k: &str| -> Result<Vec<Path>, String> {
                match t.get(k) {
                    None => Ok(Vec::new()),
                    Some(v) => texts(v, k)?.iter().map(|s| path(s)).collect(),
                }
            };
            let decl = TableDecl {
                name: name.clone(),
                key: paths("key")?,
                require: paths("require")?,
                max: match t.get("max") {
                    Some(Value::Int(n)) if *n > 0 => *n as usize,
                    None => 4096,
                    Some(v) => {
                        return e(format!(
                            "table {name}: max must be a positive int, not {v:?}"
                        ))
                    }
                },
                row: match t.get("row") {
                    Some(Value::Map(r)) => r.clone(),
                    None => Map::new(),
                    Some(v) => return e(format!("table {name}: row must be a mapping, not {v:?}")),
                },
            };
            if self.tables.iter().any(|x| x.name == *name) {
                return e(format!("table {name} declared twice"));
            }
            self.tables.push(decl);
        }
        Ok(())
    }
}

fn conv(name: &str) -> Result<Conv, String> {
    Ok(match name {
        "int" => Conv::Int,
        "float" => Conv::Float,
        "digits" => Conv::Digits,
        "digits_only" => Conv::DigitsOnly,
        "float_only" => Conv::FloatOnly,
        "str" => Conv::Str,
        "number" => Conv::Number,
        other => return e(format!("unknown type {other:?}")),
    })
}

// -- correlation tables ------------------------------------------------------------------

type Key = Vec<Option<String>>;

/// A bounded table: oldest rows go first when full (Python dict order: an updated row
/// keeps its place).
#[derive(Default)]
pub struct Table {
    rows: HashMap<Key, (u64, Map)>,
    order: BTreeMap<u64, Key>,
    seq: u64,
}

impl Table {
    fn take(&mut self, key: &Key) -> Option<(u64, Map)> {
        let (seq, row) = self.rows.remove(key)?;
        self.order.remove(&seq);
        Some((seq, row))
    }

    fn put(&mut self, key: Key, seq: Option<u64>, row: Map, max: usize) {
        let seq = seq.unwrap_or_else(|| {
            self.seq += 1;
            while self.rows.len() >= max {
                let Some((&old, _)) = self.order.iter().next() else {
                    break;
                };
                let k = self.order.remove(&old).expect("listed");
                self.rows.remove(&k);
            }
            self.seq
        });
        self.order.insert(seq, key.clone());
        self.rows.insert(key, (seq, row));
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The current row of a table while a line's ops run: taken out of its table and put
/// back (in its place) when the line is done, unless it was popped.
pub struct RowAt {
    key: Key,
    seq: Option<u64>,
    pub row: Map,
    popped: bool,
}

pub struct State {
    pub decls: Vec<TableDecl>,
    pub tables: Vec<Table>,
}

impl State {
    pub fn new(decls: Vec<TableDecl>) -> State {
        let tables = decls.iter().map(|_| Table::default()).collect();
        State { decls, tables }
    }
}

/// What the ops of one line see and write.
pub struct Cx<'a> {
    pub doc: &'a mut Map,
    pub message: &'a mut Option<String>,
    pub tags: &'a mut Vec<String>,
    pub times: &'a TimeParser,
    pub state: &'a mut State,
    pub rows: Vec<Option<RowAt>>,
    pub vars: Vec<(String, Value)>,
    /// the Python hooks named by the rule a `reparse` matched
    pub hooks: Vec<String>,
    /// how many `reparse` are running (bounded: a rule file may make a cycle)
    pub depth: u8,
}

/// What ops cannot do alone: parse a text with another parser's rules, read JSON.
pub trait Env {
    fn reparse(&self, cx: &mut Cx, parser: &str, text: &str) -> Result<(), MatchError>;
    fn json(&self, cx: &mut Cx, op: &JsonOp, text: &str) -> Result<(), MatchError>;
}

impl Cx<'_> {
    pub fn get(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Message => self.message.as_ref().map(|m| Value::Str(m.clone())),
            _ => self.get_ref(r).cloned(),
        }
    }

    fn get_ref(&self, r: &Ref) -> Option<&Value> {
        match r {
            Ref::Doc(p) => self.doc.at(p),
            Ref::Row(t, f) => self.rows.get(*t)?.as_ref()?.row.get(f),
            Ref::Var(v) => self.vars.iter().rev().find(|(k, _)| k == v).map(|(_, v)| v),
            Ref::VarPath(v, p) => self
                .vars
                .iter()
                .rev()
                .find(|(k, _)| k == v)
                .and_then(|(_, v)| v.as_map())
                .and_then(|m| m.at(p)),
            Ref::Message => None,
        }
    }

    /// The text at a reference, borrowed (conditions only read it).
    fn str_ref(&self, r: &Ref) -> Option<&str> {
        match r {
            Ref::Message => self.message.as_deref(),
            _ => self.get_ref(r).and_then(|v| v.as_str()),
        }
    }

    fn get_str(&self, r: &Ref) -> Option<String> {
        match r {
            Ref::Message => self.message.clone(),
            _ => self.get_ref(r).and_then(|v| v.as_str()).map(str::to_string),
        }
    }

    fn present(&self, r: &Ref) -> bool {
        match r {
            Ref::Message => self.message.is_some(),
            _ => !matches!(self.get_ref(r), None | Some(Value::Null)),
        }
    }

    pub fn put(&mut self, r: &Ref, v: Value, how: How) {
        match r {
            Ref::Doc(p) => match how {
                How::Set => self.doc.put(p, v),
                How::Default => {
                    if self.doc.at(p).is_none() {
                        self.doc.put(p, v)
                    }
                }
            },
            Ref::Row(t, f) => {
                if let Some(Some(at)) = self.rows.get_mut(*t) {
                    if how == How::Set || !at.row.contains(f) {
                        at.row.insert(f, v);
                    }
                }
            }
            Ref::Var(name) => self.vars.push((name.clone(), v)),
            Ref::VarPath(..) => {}
            Ref::Message => {
                *self.message = match v {
                    Value::Str(s) => Some(s),
                    _ => None,
                }
            }
        }
    }

    fn remove(&mut self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Doc(p) => self.doc.take(p),
            Ref::Row(t, f) => self.rows.get_mut(*t)?.as_mut()?.row.remove(f),
            Ref::Var(_) | Ref::VarPath(..) => None,
            Ref::Message => self.message.take().map(Value::Str),
        }
    }

    fn key(&self, decl: &TableDecl) -> Option<Key> {
        for r in &decl.require {
            if matches!(self.doc.at(r), None | Some(Value::Null)) {
                return None;
            }
        }
        Some(
            decl.key
                .iter()
                .map(|p| match self.doc.at(p) {
                    None | Some(Value::Null) => None,
                    Some(Value::Str(s)) => Some(format!("s{s}")),
                    Some(Value::Int(n)) => Some(format!("i{n}")),
                    Some(v) => Some(format!("{v:?}")),
                })
                .collect(),
        )
    }

    /// Puts the rows taken by `row` back into their tables.
    pub fn finish(&mut self) {
        for (t, at) in std::mem::take(&mut self.rows).into_iter().enumerate() {
            if let Some(at) = at {
                if !at.popped {
                    let max = self.state.decls[t].max;
                    self.state.tables[t].put(at.key, at.seq, at.row, max);
                }
            }
        }
    }
}

fn py_str_int(s: &str) -> Option<Value> {
    py_int(s).map(|v| match v {
        GValue::Int(n) => Value::Int(n),
        GValue::BigInt(b) => Value::BigInt(b),
        _ => unreachable!("py_int gives ints"),
    })
}

/// `str.isdigit()` for the digits the logs hold (ASCII and other decimal digits).
fn is_digits(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| crate::pyunicode::is_digit(c) || c.is_ascii_digit())
}

fn convert(v: Value, c: Conv) -> Option<Value> {
    if c == Conv::Str {
        return Some(Value::Str(py_str(&v)));
    }
    let Value::Str(s) = &v else {
        return Some(v);
    };
    match c {
        Conv::Int => Some(py_str_int(s).unwrap_or(v)),
        Conv::Float => Some(py_float(s).map_or(v, Value::Float)),
        Conv::Digits => {
            if is_digits(s.strip_prefix('-').unwrap_or(s).trim_start_matches('-')) {
                Some(py_str_int(s).unwrap_or(v))
            } else {
                Some(v)
            }
        }
        Conv::DigitsOnly => is_digits(s).then(|| py_str_int(s)).flatten(),
        Conv::FloatOnly => py_float(s).map(Value::Float),
        Conv::Str => unreachable!("converted above"),
        Conv::Number => match convert(v.clone(), Conv::Digits) {
            Some(Value::Str(_)) => Some(py_float(s).map_or(v, Value::Float)),
            other => other,
        },
    }
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// fail2ban's `seconds2str` text (`1y 3w 4d`, `2d 7h 15m`, `permanent`) -> seconds.
fn duration(text: &str) -> Option<Value> {
    if text == "permanent" || text == "-1" {
        return Some(Value::Int(-1));
    }
    let mut total: i64 = 0;
    let mut found = false;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() {
                let unit = match b[i] {
                    b'y' => 365 * 86400,
                    b'w' => 7 * 86400,
                    b'd' => 86400,
                    b'h' => 3600,
                    b'm' => 60,
                    b's' => 1,
                    _ => 0,
                };
                if unit > 0 {
                    let n: i64 = text[s..i].parse().ok()?;
                    total = total.checked_add(n.checked_mul(unit)?)?;
                    found = true;
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    if found {
        return Some(Value::Int(total));
    }
    let v = py_float(text)?;
    if v.fract() == 0.0 && v.abs() < 9.2e18 {
        Some(Value::Int(v as i64))
    } else {
        Some(Value::Float(v))
    }
}

fn matches_cond(cx: &Cx, c: &Cond) -> bool {
    match c {
        Cond::Present(r) => cx.present(r),
        Cond::Truthy(r) => match r {
            Ref::Message => cx.message.as_deref().is_some_and(|m| !m.is_empty()),
            _ => cx.get_ref(r).is_some_and(Value::truthy),
        },
        Cond::Equals(r, v) => match r {
            Ref::Message => cx.get(r).as_ref() == Some(v),
            _ => cx.get_ref(r) == Some(v),
        },
        Cond::In(r, vs) => match r {
            Ref::Message => cx.get(r).is_some_and(|x| vs.contains(&x)),
            _ => cx.get_ref(r).is_some_and(|x| vs.contains(x)),
        },
        Cond::StartsWith(r, ps) => cx
            .str_ref(r)
            .is_some_and(|s| ps.iter().any(|p| s.starts_with(p.as_str()))),
        Cond::EndsWith(r, ps) => cx
            .str_ref(r)
            .is_some_and(|s| ps.iter().any(|p| s.ends_with(p.as_str()))),
        Cond::Contains(r, t) => cx.str_ref(r).is_some_and(|s| s.contains(t.as_str())),
        Cond::Is(r, k) => match (cx.get_ref(r), k) {
            (Some(Value::Str(_)), Kind::Str) => true,
            (Some(Value::Int(_) | Value::BigInt(_)), Kind::Int) => true,
            (Some(Value::Map(_)), Kind::Map) => true,
            (Some(Value::List(_)), Kind::List) => true,
            (Some(Value::Str(s)), Kind::Digits) => is_digits(s),
            _ => false,
        },
        Cond::Row(t) => cx.rows.get(*t).is_some_and(Option::is_some),
        Cond::All(cs) => cs.iter().all(|c| matches_cond(cx, c)),
        Cond::Any(cs) => cs.iter().any(|c| matches_cond(cx, c)),
        Cond::Not(c) => !matches_cond(cx, c),
        Cond::Same(a, b) => match (cx.get(a), cx.get(b)) {
            (Some(x), Some(y)) => !matches!(x, Value::Null) && x == y,
            _ => false,
        },
        Cond::Ip(r) => cx.str_ref(r).and_then(as_ip).is_some(),
        Cond::Member(v, l) => match cx.get_ref(l) {
            Some(Value::List(items)) => items.contains(&cx.get(v).unwrap_or(Value::Null)),
            _ => false,
        },
    }
}

fn write_target(cx: &mut Cx, t: &Target, v: Value) {
    if t.nonempty && !v.truthy() {
        return;
    }
    let v = match t.conv {
        None => v,
        Some(c) => match convert(v, c) {
            Some(v) => v,
            None => return,
        },
    };
    cx.put(&t.to, v, t.how);
}

pub fn run(ops: &[Op], cx: &mut Cx, env: &dyn Env) -> Result<(), MatchError> {
    for op in ops {
        run_one(op, cx, env)?;
    }
    Ok(())
}

fn run_one(op: &Op, cx: &mut Cx, env: &dyn Env) -> Result<(), MatchError> {
    match op {
        Op::Set(pairs) => {
            for (r, v) in pairs {
                cx.put(r, v.clone(), How::Set);
            }
        }
        Op::Default(pairs) => {
            for (r, v) in pairs {
                cx.put(r, v.clone(), How::Default);
            }
        }
        Op::Copy {
            from,
            to,
            list,
            truthy,
            trim,
            remove,
        } => {
            let v = if *remove {
                cx.remove(from)
            } else {
                cx.get(from)
            };
            let Some(mut v) = v else { return Ok(()) };
            if matches!(v, Value::Null) || (*truthy && !v.truthy()) {
                return Ok(());
            }
            if !trim.is_empty() {
                if let Value::Str(s) = &v {
                    v = Value::Str(s.trim_matches(|c| trim.contains(c)).to_string());
                }
            }
            if *list {
                v = Value::List(vec![v]);
            }
            write_target(cx, to, v);
        }
        Op::Remove(refs) => {
            for r in refs {
                cx.remove(r);
            }
        }
        Op::Prune(p) => {
            if cx
                .doc
                .at(p)
                .and_then(Value::as_map)
                .is_some_and(Map::is_empty)
            {
                cx.doc.take(p);
            }
        }
        Op::Tag(t) => cx.tags.push(t.clone()),
        Op::When {
            cond,
            then,
            otherwise,
        } => {
            if matches_cond(cx, cond) {
                run(then, cx, env)?;
            } else {
                run(otherwise, cx, env)?;
            }
        }
        Op::Map {
            from,
            to,
            values,
            default,
        } => {
            if let Some(v) = cx.get(from) {
                match values.iter().find(|(k, _)| *k == v) {
                    Some((_, out)) => cx.put(to, out.clone(), How::Set),
                    None => {
                        if let Some(d) = default {
                            cx.put(to, d.clone(), How::Set)
                        }
                    }
                }
            }
        }
        Op::Slug {
            from,
            to,
            prefix,
            dash_only,
        } => {
            let Some(s) = from
                .iter()
                .filter_map(|r| cx.get_str(r))
                .find(|s| !s.is_empty())
            else {
                return Ok(());
            };
            let out = if *dash_only {
                format!("{prefix}{s}").replace('-', "_")
            } else {
                format!("{prefix}{}", slug(&s))
            };
            cx.put(to, Value::Str(out), How::Set);
        }
        Op::Convert(refs, c) => {
            for r in refs {
                if let Some(v) = cx.get(r) {
                    if let Some(v) = convert(v, *c) {
                        cx.put(r, v, How::Set);
                    }
                }
            }
        }
        Op::Regex {
            from,
            rx,
            full,
            into,
            then,
        } => {
            let Some(s) = cx.get_str(from) else {
                return Ok(());
            };
            let g = if *full {
                rx.full_match(&s)?
            } else {
                rx.find_at(&s, 0)?
            };
            if let Some(g) = g {
                for (n, t) in into {
                    if let Some((a, b)) = g.get(*n) {
                        write_target(cx, t, Value::str(&s[a..b]));
                    }
                }
                run(then, cx, env)?;
            }
        }
        Op::Findall { from, rx, each } => {
            let Some(s) = cx.get_str(from) else {
                return Ok(());
            };
            let mut at = 0;
            let n = rx.group_count();
            while at <= s.len() {
                let Some(g) = rx.find_at(&s, at)? else { break };
                let (a, b) = g.get(0).expect("group 0");
                let mark = cx.vars.len();
                for i in 1..=n {
                    let v = g.get(i).map_or(String::new(), |(x, y)| s[x..y].to_string());
                    cx.vars.push((format!("{i}"), Value::Str(v)));
                }
                run(each, cx, env)?;
                cx.vars.truncate(mark);
                at = if b > a { b } else { next_char(&s, b) };
            }
        }
        Op::Kv {
            from,
            into,
            rx,
            group_types,
            key_group,
            value_groups,
            first_wins,
            strip,
            lower,
            dash,
            convs,
            handlers,
            affix,
            all,
        } => {
            let Some(s) = cx.get_str(from) else {
                return Ok(());
            };
            let mut at = 0;
            while at <= s.len() {
                let Some(g) = rx.find_at(&s, at)? else { break };
                let (a, b) = g.get(0).expect("group 0");
                at = if b > a { b } else { next_char(&s, b) };
                let Some((ka, kb)) = g.get(*key_group) else {
                    continue;
                };
                let mut key = s[ka..kb].to_string();
                if *lower {
                    key = key.to_lowercase();
                }
                if let Some(d) = dash {
                    key = key.replace('-', d);
                }
                let found = value_groups
                    .iter()
                    .filter_map(|&i| g.get(i).map(|at| (i, at)))
                    .map(|(i, (x, y))| (i, &s[x..y]))
                    .find(|(_, v)| !v.is_empty());
                let typed = found.and_then(|(i, _)| group_types.iter().find(|(n, _)| *n == i));
                let mut value = found.map_or("", |(_, v)| v).to_string();
                if *strip {
                    value = value.trim_matches(crate::pyunicode::is_space).to_string();
                }
                if let Some((_, ops)) = handlers.iter().find(|(k, _)| *k == key) {
                    let mark = cx.vars.len();
                    cx.vars.push(("key".into(), Value::Str(key)));
                    cx.vars.push(("value".into(), Value::Str(value)));
                    run(ops, cx, env)?;
                    cx.vars.truncate(mark);
                    continue;
                }
                let name = match affix.as_deref() {
                    Some((pre, suf)) => format!("{pre}{key}{suf}"),
                    None => key.clone(),
                };
                let target = cx.doc.obj_at(into);
                if *first_wins && target.contains(&name) {
                    continue;
                }
                let conv = convs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, c)| *c)
                    .or(typed.map(|(_, c)| *c))
                    .or(*all);
                let v = match conv {
                    Some(c) => convert(Value::Str(value), c),
                    None => Some(Value::Str(value)),
                };
                if let Some(v) = v {
                    cx.doc.obj_at(into).insert(&name, v);
                }
            }
        }
        Op::HostPort { from, into, prefix } => {
            if let Some(s) = cx.get_str(from) {
                hostport(cx.doc, into, prefix, &s);
            }
        }
        Op::Endpoint {
            into,
            address,
            domain,
            port,
        } => {
            let Some(addr) = cx.get(address) else {
                return Ok(());
            };
            if matches!(addr, Value::Null) {
                return Ok(());
            }
            let mut out = Map::new();
            let addr_s = addr.as_str().map(str::to_string);
            out.insert("address", addr);
            if let Some(ip) = addr_s.as_deref().and_then(as_ip) {
                out.insert("ip", Value::Str(ip));
            }
            if let Some(Value::Str(host)) = cx.get(domain) {
                if !host.is_empty() && host != "unknown" && Some(&host) != addr_s.as_ref() {
                    out.insert("domain", Value::Str(host));
                }
            }
            if let Some(Value::Int(p)) = cx.get(port) {
                out.insert("port", Value::Int(p));
            }
            cx.doc.put(into, Value::Map(out));
        }
        Op::Address(p) => address(cx.doc, p),
        Op::Ip { from, to } => {
            if let Some(ip) = cx.get_str(from).as_deref().and_then(as_ip) {
                write_target(cx, to, Value::Str(ip));
            }
        }
        Op::Split {
            from,
            to,
            sep,
            drop,
            trim,
            remove,
        } => {
            let v = if *remove {
                cx.remove(from)
            } else {
                cx.get(from)
            };
            if let Some(Value::Str(s)) = v {
                let items = s
                    .split(sep.as_str())
                    .map(|x| x.trim_matches(|c| trim.contains(c)))
                    .filter(|x| !drop.iter().any(|d| d == x))
                    .map(Value::str)
                    .collect();
                cx.put(to, Value::List(items), How::Set);
            }
        }
        Op::Time {
            from,
            to,
            digit_first,
        } => {
            if let Some(s) = cx.get_str(from) {
                if *digit_first && !s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    return Ok(());
                }
                if let Some((_, iso)) = cx.times.iso(&s) {
                    cx.put(to, Value::Str(iso), How::Set);
                }
            }
        }
        Op::Duration { from, to } => {
            if let Some(Value::Str(s)) = cx.remove(from) {
                if let Some(v) = duration(s.trim_matches(crate::pyunicode::is_space)) {
                    cx.put(to, v, How::Set);
                }
            }
        }
        Op::Row {
            table,
            create,
            pop,
            fresh,
        } => {
            let t = *table;
            if cx.rows.len() <= t {
                cx.rows.resize_with(t + 1, || None);
            }
            if let Some(at) = cx.rows[t].as_mut() {
                // already taken by an earlier op of this line
                if *pop {
                    at.popped = true;
                }
                if *fresh {
                    at.row = cx.state.decls[t].row.clone();
                }
                return Ok(());
            }
            let Some(key) = cx.key(&cx.state.decls[t]) else {
                return Ok(());
            };
            let found = cx.state.tables[t].take(&key);
            cx.rows[t] = match found {
                Some((seq, row)) => Some(RowAt {
                    key,
                    seq: Some(seq),
                    row: if *fresh {
                        cx.state.decls[t].row.clone()
                    } else {
                        row
                    },
                    popped: *pop,
                }),
                None if *create => Some(RowAt {
                    key,
                    seq: None,
                    row: cx.state.decls[t].row.clone(),
                    popped: *pop,
                }),
                None => None,
            };
        }
        Op::Forget(t) => {
            if let Some(Some(at)) = cx.rows.get_mut(*t) {
                at.popped = true;
            } else if let Some(key) = cx.key(&cx.state.decls[*t]) {
                cx.state.tables[*t].take(&key);
            }
        }
        Op::Append { to, from } => {
            let v = cx.get(from).unwrap_or(Value::Null);
            let mut list = match cx.get(to) {
                Some(Value::List(l)) => l,
                _ => Vec::new(),
            };
            if !list.contains(&v) {
                list.push(v);
            }
            cx.put(to, Value::List(list), How::Set);
        }
        Op::Reparse { from, parser } => {
            if let Some(s) = cx.get_str(from) {
                env.reparse(cx, parser, &s)?;
            }
        }
        Op::Json(j) => {
            if let Some(s) = cx.get_str(&j.from) {
                env.json(cx, j, &s)?;
            }
        }
        Op::Merge(r) => {
            if let Some(Value::Map(m)) = cx.get(r) {
                crate::parser::merge(cx.doc, m);
            }
        }
        Op::With { var, ops } => with_var(cx, env, var, ops)?,
        Op::Keep(keys) => cx.doc.0.retain(|(k, _)| keys.contains(k)),
        Op::Do(ops) => run(ops, cx, env)?,
    }
    Ok(())
}

/// `with`: the variable's object is the document while `ops` run.
fn with_var(cx: &mut Cx, env: &dyn Env, var: &str, ops: &[Op]) -> Result<(), MatchError> {
    let Some(i) = cx.vars.iter().rposition(|(k, _)| k == var) else {
        return Ok(());
    };
    if !matches!(cx.vars[i].1, Value::Map(_)) {
        return Ok(());
    }
    let Value::Map(mut obj) = std::mem::replace(&mut cx.vars[i].1, Value::Null) else {
        unreachable!("a map")
    };
    std::mem::swap(cx.doc, &mut obj);
    let r = run(ops, cx, env);
    std::mem::swap(cx.doc, &mut obj);
    cx.vars[i].1 = Value::Map(obj);
    r
}

fn next_char(s: &str, at: usize) -> usize {
    s[at..].chars().next().map_or(at + 1, |c| at + c.len_utf8())
}

/// `host[1.2.3.4]:25` -> {prefix}_hostname/_ip/_port; `host[private/x]` -> _service;
/// a bare word (`none`, `local`) is the transport -> _service.
fn hostport(doc: &mut Map, into: &Path, prefix: &str, value: &str) {
    let mut put = |suffix: &str, v: Value| {
        doc.obj_at(into).insert(&format!("{prefix}_{suffix}"), v);
    };
    // (?P<host>[^\s\[\]]+)?\[(?P<inner>[^\]]*)\](?::(?P<port>\d+))?$
    let parsed = (|| {
        let open = value.find('[')?;
        let host = &value[..open];
        if host
            .chars()
            .any(|c| crate::pyunicode::is_space(c) || c == ']')
        {
            return None;
        }
        let rest = &value[open + 1..];
        let close = rest.find(']')?;
        let inner = &rest[..close];
        let tail = &rest[close + 1..];
        let tail = tail.strip_suffix('\n').unwrap_or(tail);
        let port = if tail.is_empty() {
            None
        } else {
            let d = tail.strip_prefix(':')?;
            if d.is_empty() || !d.chars().all(crate::pyunicode::is_digit) {
                return None;
            }
            Some(d)
        };
        Some((host, inner, port))
    })();
    let Some((host, inner, port)) = parsed else {
        put("service", Value::str(value));
        return;
    };
    if !host.is_empty() {
        put("hostname", Value::str(host));
    }
    if inner == "unknown" {
        put("ip_unknown", Value::str(inner));
    } else if iplike(inner) {
        put("ip", Value::str(inner));
    } else {
        put("service", Value::str(inner));
    }
    if let Some(p) = port {
        if let Some(v) = py_str_int(p) {
            put("port", v);
        }
    }
}

/// `[0-9A-Fa-f]*[.:][0-9A-Fa-f:.]*$`
fn iplike(s: &str) -> bool {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let hex = |c: char| c.is_ascii_hexdigit();
    let Some(at) = s.find(|c: char| !hex(c)) else {
        return false;
    };
    let rest = &s[at..];
    rest.starts_with(['.', ':']) && rest[1..].chars().all(|c| hex(c) || c == ':' || c == '.')
}

/// `source.address` is the host as logged; `.ip` only when it is an address. Daemons'
/// decorations of an address are taken off: `[1.2.3.4]`, `IPv6:2001:db8::1`, and an
/// IPv4-mapped `::ffff:1.2.3.4` is the IPv4 client it stands for.
fn address(doc: &mut Map, p: &Path) {
    let Some(Value::Map(src)) = doc.at_mut(p) else {
        return;
    };
    let addr = match src.get("address") {
        None | Some(Value::Null) => {
            if let Some(ip) = src.get("ip").cloned() {
                if !matches!(ip, Value::Null) {
                    src.insert("address", ip);
                }
            }
            return;
        }
        Some(Value::Str(a)) => a.clone(),
        Some(_) => return,
    };
    let mut a = addr.as_str();
    if a.len() >= 2 && a.starts_with('[') && a.ends_with(']') {
        a = &a[1..a.len() - 1];
    }
    let plain = crate::ip::unmapped(a);
    if plain.len() != a.len() {
        a = plain;
    } else if let Some(r) = a.strip_prefix("IPv6:") {
        a = r;
    }
    let a = a.to_string();
    if a != addr {
        src.insert("address", Value::Str(a.clone()));
    }
    if !src.contains("ip") {
        if let Some(ip) = as_ip(&a) {
            src.insert("ip", Value::Str(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamps::Zone;

    struct NoEnv;
    impl Env for NoEnv {
        fn reparse(&self, _: &mut Cx, _: &str, _: &str) -> Result<(), MatchError> {
            Ok(())
        }
        fn json(&self, _: &mut Cx, _: &JsonOp, _: &str) -> Result<(), MatchError> {
            Ok(())
        }
    }

    fn yaml_ops(spec: Value, tables: &mut Vec<TableDecl>) -> Vec<Op> {
        Compiler {
            tables,
            limits: Limits::default(),
        }
        .ops(&spec)
        .unwrap()
    }

    fn m(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(Map(entries
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect()))
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn run_on(ops: &[Op], doc: &mut Map, state: &mut State) {
        let times = TimeParser::new(Some(2024), Zone::parse("UTC").unwrap(), 0.0);
        let mut message = None;
        let mut tags = Vec::new();
        let mut cx = Cx {
            doc,
            message: &mut message,
            tags: &mut tags,
            times: &times,
            state,
            rows: Vec::new(),
            vars: Vec::new(),
            hooks: Vec::new(),
            depth: 0,
        };
        run(ops, &mut cx, &NoEnv).unwrap();
        cx.finish();
    }

    fn p(x: &str) -> Path {
        path(x).unwrap()
    }

    #[test]
    fn kv_hostport_endpoint_as_postfix() {
        let mut tables = Vec::new();
        let ops = yaml_ops(
            Value::List(vec![
                m(vec![(
                    "kv",
                    m(vec![
                        ("from", s("postfix.keyvalue_data")),
                        ("into", s("postfix")),
                        ("pattern", s(r"([\w-]+)=(?:<([^<>]*)>|([^\s,<>]*))")),
                        ("first_wins", Value::Bool(true)),
                        ("int", Value::List(vec![s("size")])),
                        (
                            "keys",
                            m(vec![(
                                "relay",
                                Value::List(vec![
                                    m(vec![(
                                        "copy",
                                        m(vec![("from", s("$value")), ("to", s("postfix.relay"))]),
                                    )]),
                                    m(vec![(
                                        "hostport",
                                        m(vec![
                                            ("from", s("$value")),
                                            ("into", s("postfix")),
                                            ("prefix", s("relay")),
                                        ]),
                                    )]),
                                ]),
                            )]),
                        ),
                    ]),
                )]),
                m(vec![(
                    "endpoint",
                    m(vec![
                        ("into", s("destination")),
                        ("address", s("postfix.relay_ip")),
                        ("domain", s("postfix.relay_hostname")),
                        ("port", s("postfix.relay_port")),
                    ]),
                )]),
            ]),
            &mut tables,
        );
        let mut doc = Map::new();
        doc.put(
            &p("postfix.keyvalue_data"),
            s("to=<a@b>, relay=mx.example[192.0.2.1]:25, size=12, from=<>, size=13"),
        );
        let mut st = State::new(tables);
        run_on(&ops, &mut doc, &mut st);
        assert_eq!(doc.at(&p("postfix.to")), Some(&s("a@b")));
        assert_eq!(doc.at(&p("postfix.from")), Some(&s("")));
        assert_eq!(doc.at(&p("postfix.size")), Some(&Value::Int(12)));
        assert_eq!(doc.at(&p("postfix.relay_port")), Some(&Value::Int(25)));
        assert_eq!(doc.at(&p("destination.ip")), Some(&s("192.0.2.1")));
        assert_eq!(doc.at(&p("destination.domain")), Some(&s("mx.example")));
    }

    #[test]
    fn tables_correlate_and_stay_bounded() {
        let mut tables = Vec::new();
        let mut c = Compiler {
            tables: &mut tables,
            limits: Limits::default(),
        };
        c.declare_tables(&m(vec![(
            "conn",
            m(vec![
                (
                    "key",
                    Value::List(vec![s("host.hostname"), s("process.pid")]),
                ),
                ("require", Value::List(vec![s("process.pid")])),
                ("max", Value::Int(2)),
                ("row", m(vec![("addr", Value::Null)])),
            ]),
        )]))
        .unwrap();
        let seen = c
            .ops(&Value::List(vec![
                m(vec![("row", m(vec![("table", s("conn"))]))]),
                m(vec![(
                    "copy",
                    m(vec![("from", s("source.address")), ("to", s("$conn.addr"))]),
                )]),
            ]))
            .unwrap();
        let recall = c
            .ops(&Value::List(vec![
                m(vec![(
                    "row",
                    m(vec![("table", s("conn")), ("create", Value::Bool(false))]),
                )]),
                m(vec![
                    ("when", m(vec![("present", s("$conn.addr"))])),
                    (
                        "then",
                        Value::List(vec![m(vec![(
                            "copy",
                            m(vec![("from", s("$conn.addr")), ("to", s("source.address"))]),
                        )])]),
                    ),
                    (
                        "else",
                        Value::List(vec![m(vec![(
                            "set",
                            m(vec![("event.outcome", s("unknown"))]),
                        )])]),
                    ),
                ]),
            ]))
            .unwrap();
        let mut st = State::new(tables);
        let line = |pid: i64, addr: Option<&str>| {
            let mut d = Map::new();
            d.put(&p("host.hostname"), s("h"));
            d.put(&p("process.pid"), Value::Int(pid));
            if let Some(a) = addr {
                d.put(&p("source.address"), s(a));
            }
            d
        };
        for (pid, a) in [(1, "192.0.2.1"), (2, "192.0.2.2"), (3, "192.0.2.3")] {
            run_on(&seen, &mut line(pid, Some(a)), &mut st);
        }
        assert_eq!(st.tables[0].len(), 2);
        let mut d = line(3, None);
        run_on(&recall, &mut d, &mut st);
        assert_eq!(d.str_at(&p("source.address")), Some("192.0.2.3"));
        let mut d = line(1, None); // evicted: the oldest went first
        run_on(&recall, &mut d, &mut st);
        assert_eq!(d.str_at(&p("event.outcome")), Some("unknown"));
    }

    #[test]
    fn slugs_durations_and_addresses() {
        assert_eq!(
            slug("Lost connection after CONNECT"),
            "lost_connection_after_connect"
        );
        assert_eq!(slug("  PASS NEW "), "pass_new");
        assert_eq!(
            duration("2d 7h 15m"),
            Some(Value::Int(2 * 86400 + 7 * 3600 + 900))
        );
        assert_eq!(duration("permanent"), Some(Value::Int(-1)));
        assert_eq!(duration("600"), Some(Value::Int(600)));
        assert_eq!(duration("0.5"), Some(Value::Float(0.5)));
        assert_eq!(duration("soon"), None);
        let mut d = Map::new();
        d.put(&p("source.address"), s("abcdefé.org")); // é across the 7th byte
        address(&mut d, &p("source"));
        assert_eq!(d.at(&p("source.ip")), None);
        let mut d = Map::new();
        d.put(&p("source.address"), s("[::ffff:192.0.2.7]"));
        address(&mut d, &p("source"));
        assert_eq!(d.str_at(&p("source.address")), Some("192.0.2.7"));
        assert_eq!(d.str_at(&p("source.ip")), Some("192.0.2.7"));
        assert!(iplike("192.0.2.1") && iplike("2001:db8::1") && !iplike("private/smtp"));
    }

    #[test]
    fn kv_prefix_suffix_and_type() {
        let mut tables = Vec::new();
        let kv = |pattern: &str, suffix: &str| {
            m(vec![(
                "kv",
                m(vec![
                    ("from", s("counters")),
                    ("into", s("out")),
                    ("pattern", s(pattern)),
                    ("prefix", s("cmd_")),
                    ("suffix", s(suffix)),
                    ("type", s("int")),
                    ("float", Value::List(vec![s("rate")])),
                    (
                        "keys",
                        m(vec![(
                            "commands",
                            Value::List(vec![m(vec![(
                                "copy",
                                m(vec![("from", s("$value")), ("to", s("out.total"))]),
                            )])]),
                        )]),
                    ),
                ]),
            )])
        };
        let ops = yaml_ops(
            Value::List(vec![
                kv(r"([a-z]+)=(?:\d+/)?(\d+)", ""),
                kv(r"([a-z]+)=(\d+)/\d+", "_accepted"),
            ]),
            &mut tables,
        );
        let mut doc = Map::new();
        doc.put(&p("counters"), s("ehlo=2 rcpt=0/1 rate=3 commands=5/7"));
        let mut st = State::new(tables);
        run_on(&ops, &mut doc, &mut st);
        assert_eq!(doc.at(&p("out.cmd_ehlo")), Some(&Value::Int(2)));
        assert_eq!(doc.at(&p("out.cmd_rcpt")), Some(&Value::Int(1)));
        assert_eq!(doc.at(&p("out.cmd_rcpt_accepted")), Some(&Value::Int(0)));
        assert_eq!(doc.at(&p("out.cmd_rate")), Some(&Value::Float(3.0)));
        // both passes ran the handler: the accepted count came last
        assert_eq!(doc.at(&p("out.total")), Some(&s("5")));
        assert_eq!(doc.at(&p("out.cmd_commands")), None);
        assert_eq!(doc.at(&p("out.cmd_ehlo_accepted")), None);
    }

    #[test]
    fn same_fields_and_str_type() {
        let mut tables = Vec::new();
        let ops = yaml_ops(
            Value::List(vec![
                m(vec![
                    (
                        "when",
                        m(vec![(
                            "not",
                            m(vec![("same", Value::List(vec![s("a.host"), s("a.addr")]))]),
                        )]),
                    ),
                    (
                        "then",
                        Value::List(vec![m(vec![(
                            "copy",
                            m(vec![("from", s("a.host")), ("to", s("source.domain"))]),
                        )])]),
                    ),
                ]),
                m(vec![(
                    "copy",
                    m(vec![
                        ("from", s("a.uid")),
                        ("to", m(vec![("to", s("user.id")), ("type", s("str"))])),
                    ]),
                )]),
            ]),
            &mut tables,
        );
        let mut st = State::new(tables);
        let mut d = Map::new();
        d.put(&p("a.host"), s("192.0.2.1"));
        d.put(&p("a.addr"), s("192.0.2.1"));
        d.put(&p("a.uid"), Value::Int(12));
        run_on(&ops, &mut d, &mut st);
        assert_eq!(d.at(&p("source.domain")), None);
        assert_eq!(d.str_at(&p("user.id")), Some("12"));
        let mut d = Map::new();
        d.put(&p("a.host"), s("mx.example"));
        d.put(&p("a.addr"), s("192.0.2.1"));
        d.put(&p("a.uid"), s("0012"));
        run_on(&ops, &mut d, &mut st);
        assert_eq!(d.str_at(&p("source.domain")), Some("mx.example"));
        assert_eq!(d.str_at(&p("user.id")), Some("0012"));
        // a missing field is never the same as another
        let mut d = Map::new();
        d.put(&p("a.host"), s("mx.example"));
        run_on(&ops, &mut d, &mut st);
        assert_eq!(d.str_at(&p("source.domain")), Some("mx.example"));
    }

    #[test]
    fn with_merge_keep_ip_and_typed_kv_groups() {
        let mut tables = Vec::new();
        let ops = yaml_ops(
            Value::List(vec![
                m(vec![(
                    "set",
                    m(vec![(
                        "$j",
                        m(vec![
                            ("a", m(vec![("b", Value::Int(1))])),
                            ("n", Value::Int(5)),
                        ]),
                    )]),
                )]),
                m(vec![(
                    "with",
                    m(vec![
                        ("var", s("j")),
                        (
                            "ops",
                            Value::List(vec![
                                m(vec![(
                                    "copy",
                                    m(vec![
                                        ("from", s("n")),
                                        ("to", m(vec![("to", s("id")), ("type", s("str"))])),
                                    ]),
                                )]),
                                m(vec![("keep", Value::List(vec![s("id"), s("a")]))]),
                            ]),
                        ),
                    ]),
                )]),
                m(vec![("merge", s("$j"))]),
                m(vec![
                    ("when", m(vec![("ip", s("x"))])),
                    (
                        "then",
                        Value::List(vec![m(vec![(
                            "do",
                            Value::List(vec![m(vec![("set", m(vec![("ok", Value::Bool(true))]))])]),
                        )])]),
                    ),
                ]),
                m(vec![(
                    "kv",
                    m(vec![
                        ("from", s("line")),
                        ("into", s("")),
                        ("first_wins", Value::Bool(true)),
                        ("group_types", m(vec![("3", s("number"))])),
                        ("pattern", s(r#""(\w+)":(?:"([^"]*)"|(-?\d+(?:\.\d+)?))"#)),
                    ]),
                )]),
            ]),
            &mut tables,
        );
        let mut d = Map::new();
        d.put(&p("a.c"), Value::Int(2));
        d.put(&p("x"), s("10.0.0.1"));
        d.put(&p("line"), s(r#""k":"v","n":-3,"f":1.5,"k":"w""#));
        run_on(&ops, &mut d, &mut State::new(Vec::new()));
        assert_eq!(d.at(&p("a.b")), Some(&Value::Int(1)));
        assert_eq!(d.at(&p("a.c")), Some(&Value::Int(2)));
        assert_eq!(d.str_at(&p("id")), Some("5"));
        assert_eq!(d.at(&p("ok")), Some(&Value::Bool(true)));
        assert_eq!(d.str_at(&p("k")), Some("v"));
        assert_eq!(d.at(&p("n")), Some(&Value::Int(-3)));
        assert_eq!(d.at(&p("f")), Some(&Value::Float(1.5)));
        assert_eq!(py_str(&Value::Null), "None");
        assert_eq!(convert(Value::Bool(true), Conv::Str), Some(s("True")));
    }

    #[test]
    fn member_tests_a_field_against_a_list_field() {
        let mut tables = Vec::new();
        let ops = yaml_ops(
            Value::List(vec![m(vec![
                (
                    "when",
                    m(vec![(
                        "member",
                        Value::List(vec![s("user.name"), s("seen")]),
                    )]),
                ),
                (
                    "then",
                    Value::List(vec![m(vec![("set", m(vec![("hit", Value::Bool(true))]))])]),
                ),
                (
                    "else",
                    Value::List(vec![m(vec![("set", m(vec![("hit", Value::Bool(false))]))])]),
                ),
            ])]),
            &mut tables,
        );
        let mut st = State::new(tables);
        let run_with = |user: Option<&str>, seen: Value, st: &mut State| {
            let mut d = Map::new();
            if let Some(u) = user {
                d.put(&p("user.name"), s(u));
            }
            d.put(&p("seen"), seen);
            run_on(&ops, &mut d, st);
            d.get("hit").cloned()
        };
        let seen = Value::List(vec![s("root"), Value::Null]);
        assert_eq!(
            run_with(Some("root"), seen.clone(), &mut st),
            Some(Value::Bool(true))
        );
        assert_eq!(
            run_with(Some("bob"), seen.clone(), &mut st),
            Some(Value::Bool(false))
        );
        // a missing value is null, an item of the list
        assert_eq!(run_with(None, seen, &mut st), Some(Value::Bool(true)));
        // not a list: no member
        assert_eq!(
            run_with(Some("root"), s("root"), &mut st),
            Some(Value::Bool(false))
        );
    }
}
