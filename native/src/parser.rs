//! Line -> document: recognise the line's shape, split its header, dispatch on the
//! program, match the product's rules, run their ops. The port of
//! `streams/parse/dispatch.py`; it knows no product: a product declares the line forms
//! of its own files (`forms:`) and its JSON documents (`json:`) in its YAML.
//!
//! Shapes, by the first characters: `{` a JSON line; a line a product's form takes; else
//! syslog (RFC 5424, RFC 3164 and variants, see `header.rs`). A line nobody understands
//! is still a document: `_grokparsefailure`, `event.original` kept.

use std::collections::HashMap;

use crate::doc::{path, Map, Value};
use crate::grok::{Fields, Item, Library, Matcher, Node, Value as GValue};
use crate::header::parse_syslog;
use crate::ops::{self, Compiler, Cx, Env, JsonOp, Op, State, TableDecl};
use crate::pcre::{Limits, MatchError};
use crate::timestamps::{TimeParser, MONTHS};

pub const LINE_TRUNCATED: &str = "_line_truncated";
pub const LIMIT_TAG: &str = "_grok_limit";

pub struct Rule {
    pub name: String,
    pub ops: Vec<Op>,
    /// Python hooks (`module:function`) of the rule then of its parser: the escape hatch
    /// for what ops cannot say; the caller runs them on the document (a counted slow path)
    pub hooks: Vec<String>,
}

pub struct Product {
    pub name: String,
    pub dataset: String,
    pub programs: Vec<String>,
    matcher: Matcher,
    rules: Vec<Rule>,
    ops: Vec<Op>,
    /// the `set:` constants of every rule, numbered as the matcher numbers them
    statics: Vec<Value>,
}

impl Product {
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

/// A line form a product declares (`forms:`): a grok pattern for the whole line whose
/// `_time` (+ `_zone`) or `_year`/`_month`/`_day`/`_clock` captures become `@timestamp`,
/// `_message` the message the product's rules read; its other captures are fields.
struct Form {
    product: usize,
    matcher: Matcher,
    /// taken only when a rule of the product matches the message (else: syslog)
    conditional: bool,
    /// header-less lines after one of this form continue it: these fields are kept
    continuation: Option<Continuation>,
    set: Vec<(Vec<String>, Value)>,
}

struct Continuation {
    keep: Vec<Vec<String>>,
    tag: String,
}

/// A product's JSON documents (`json:`): a `{` line whose object has `key` as an object.
struct JsonForm {
    product: usize,
    key: String,
    op: JsonOp,
    /// words that make a damaged JSON line worth a lenient read
    mentions: Vec<String>,
    recovered_tag: String,
    damaged: Vec<Op>,
}

/// What one line becomes: the Event's fields, message and tags, and the rule that matched.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub doc: Map,
    pub message: Option<String>,
    pub tags: Vec<String>,
    pub rule: Option<String>,
    /// Python hooks the caller must still run (see [`Rule::hooks`])
    pub hooks: Vec<String>,
}

#[derive(Default, Debug, Clone)]
pub struct Stats(pub Vec<(&'static str, u64)>);

impl Stats {
    pub fn add(&mut self, k: &'static str) {
        match self.0.iter_mut().find(|(n, _)| *n == k) {
            Some((_, v)) => *v += 1,
            None => self.0.push((k, 1)),
        }
    }
}

pub struct Parser {
    products: Vec<Product>,
    by_program: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    fallback: Option<usize>,
    forms: Vec<Form>,
    json: Vec<JsonForm>,
    pub times: TimeParser,
    pub max_line: usize,
    state: State,
    resolved: HashMap<String, Option<usize>, crate::doc::Fnv>,
    /// (form, kept fields) of the last line when it was a form with continuations
    context: Option<(usize, Map)>,
    pub stats: Stats,
}

fn err<T>(origin: &str, msg: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("{origin}: {msg}"))
}

fn strings(v: Option<&Value>, what: &str, origin: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::List(l)) => l
            .iter()
            .map(|x| match x {
                Value::Str(s) => Ok(s.clone()),
                _ => err(
                    origin,
                    format!("an item of {what} must be a string, not {x:?}"),
                ),
            })
            .collect(),
        Some(x) => err(origin, format!("{what} must be a list, not {x:?}")),
    }
}

fn sets(v: Option<&Value>, origin: &str) -> Result<Vec<(Vec<String>, Value)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Map(m)) => {
            m.0.iter()
                .map(|(k, v)| Ok((path(k).or_else(|e| err(origin, e))?, v.clone())))
                .collect()
        }
        Some(x) => err(origin, format!("set must be a mapping, not {x:?}")),
    }
}

impl Parser {
    /// `definitions`: the grok definitions; `parsers`: the rule files' parsers in load
    /// order (later ones of the same name replace earlier ones), each a mapping as the
    /// YAML has it, plus `origin`.
    pub fn new(
        definitions: HashMap<String, String>,
        parsers: &[Value],
        times: TimeParser,
        max_line: usize,
        limits: Limits,
    ) -> Result<Parser, String> {
        let lib = Library::new(definitions, limits);
        let mut tables: Vec<TableDecl> = Vec::new();
        // tables first: any parser's ops may name any table
        let mut specs: Vec<(&Map, String)> = Vec::new();
        for (i, p) in parsers.iter().enumerate() {
            let Value::Map(m) = p else {
                return err(&format!("parsers[{i}]"), "a parser must be a mapping");
            };
            let origin = m
                .get("origin")
                .and_then(Value::as_str)
                .unwrap_or("<parser>")
                .to_string();
            // a later parser of the same name (a user's --patterns-dir) takes its place
            let name = m.get("name").and_then(Value::as_str).unwrap_or("");
            match specs
                .iter()
                .position(|(s, _)| s.get("name").and_then(Value::as_str) == Some(name))
            {
                Some(at) => specs[at] = (m, origin),
                None => specs.push((m, origin)),
            }
        }
        for (m, origin) in &specs {
            if let Some(t) = m.get("tables") {
                Compiler {
                    tables: &mut tables,
                    limits,
                }
                .declare_tables(t)
                .or_else(|e| err(origin, e))?;
            }
        }
        let mut products = Vec::new();
        let mut forms_spec = Vec::new();
        for (m, origin) in &specs {
            let mut c = Compiler {
                tables: &mut tables,
                limits,
            };
            let name = match m.get("name") {
                Some(Value::Str(s)) => s.clone(),
                _ => return err(origin, "missing 'name'"),
            };
            let dataset = match m.get("dataset") {
                Some(Value::Str(s)) => s.clone(),
                _ => return err(origin, "missing 'dataset'"),
            };
            let psets = sets(m.get("set"), origin)?;
            let mut items = Vec::new();
            let mut rules = Vec::new();
            let mut statics = Vec::new();
            let Some(Value::List(rs)) = m.get("rules") else {
                return err(origin, "missing 'rules'");
            };
            for (j, r) in rs.iter().enumerate() {
                let rorigin = format!("{origin}.rules[{j}]");
                let Value::Map(r) = r else {
                    return err(&rorigin, "a rule must be a mapping");
                };
                let Some(Value::Str(pattern)) = r.get("pattern") else {
                    return err(&rorigin, "a rule names a pattern");
                };
                let mut paths = Vec::new();
                for (p, v) in psets.iter().chain(sets(r.get("set"), &rorigin)?.iter()) {
                    paths.push(p.clone());
                    statics.push(v.clone());
                }
                items.push(Item {
                    name: pattern.clone(),
                    expr: format!("%{{{pattern}}}"),
                    statics: paths,
                });
                let mut hooks = strings(r.get("hooks"), "hooks", &rorigin)?;
                hooks.extend(strings(m.get("hooks"), "hooks", origin)?);
                rules.push(Rule {
                    name: pattern.clone(),
                    ops: match r.get("ops") {
                        Some(o) => c.ops(o).or_else(|e| err(&rorigin, e))?,
                        None => Vec::new(),
                    },
                    hooks,
                });
            }
            let matcher = lib.compile_alternation(items).or_else(|e| err(origin, e))?;
            let ops = match m.get("ops") {
                Some(o) => c.ops(o).or_else(|e| err(origin, e))?,
                None => Vec::new(),
            };
            if let Some(f) = m.get("forms") {
                forms_spec.push((products.len(), f.clone(), origin.clone()));
            }
            products.push(Product {
                name,
                dataset,
                programs: strings(m.get("programs"), "programs", origin)?,
                matcher,
                rules,
                ops,
                statics,
            });
        }
        let mut by_program = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, p) in products.iter().enumerate() {
            by_name.insert(p.name.clone(), i);
            for prog in &p.programs {
                by_program.insert(prog.clone(), i);
            }
        }
        for (m, origin) in &specs {
            if let Some(target) = reparse_targets(&Value::Map((*m).clone()))
                .into_iter()
                .find(|t| !by_name.contains_key(t))
            {
                return err(origin, format!("reparse: no parser named {target:?}"));
            }
        }
        let mut forms = Vec::new();
        let mut json = Vec::new();
        for (product, spec, origin) in forms_spec {
            let Value::List(list) = spec else {
                return err(&origin, "forms must be a list");
            };
            for f in list {
                let Value::Map(f) = f else {
                    return err(&origin, "a form must be a mapping");
                };
                let mut c = Compiler {
                    tables: &mut tables,
                    limits,
                };
                if let Some(Value::Map(j)) = f.get("json") {
                    let key = match j.get("key") {
                        Some(Value::Str(k)) => k.clone(),
                        _ => return err(&origin, "json form: missing 'key'"),
                    };
                    json.push(JsonForm {
                        product,
                        key,
                        op: JsonOp {
                            from: ops::Ref::Message,
                            ops: match j.get("ops") {
                                Some(o) => c.ops(o).or_else(|e| err(&origin, e))?,
                                None => Vec::new(),
                            },
                            recovered_tag: String::new(),
                            damaged: Vec::new(),
                        },
                        mentions: strings(j.get("mentions"), "mentions", &origin)?,
                        recovered_tag: j
                            .get("recovered_tag")
                            .and_then(Value::as_str)
                            .unwrap_or("_json_recovered")
                            .to_string(),
                        damaged: match j.get("damaged") {
                            Some(o) => c.ops(o).or_else(|e| err(&origin, e))?,
                            None => Vec::new(),
                        },
                    });
                    continue;
                }
                let Some(Value::Str(header)) = f.get("header") else {
                    return err(&origin, "a form names a header pattern or json");
                };
                let matcher = lib
                    .compile_alternation(vec![Item {
                        name: header.clone(),
                        expr: format!("%{{{header}}}"),
                        statics: Vec::new(),
                    }])
                    .or_else(|e| err(&origin, e))?;
                let continuation = match f.get("continuation") {
                    None | Some(Value::Null) => None,
                    Some(Value::Map(c)) => Some(Continuation {
                        keep: strings(c.get("keep"), "keep", &origin)?
                            .iter()
                            .map(|k| path(k))
                            .collect::<Result<_, _>>()
                            .or_else(|e| err(&origin, e))?,
                        tag: c
                            .get("tag")
                            .and_then(Value::as_str)
                            .unwrap_or("multiline_continuation")
                            .to_string(),
                    }),
                    Some(x) => return err(&origin, format!("continuation: a mapping, not {x:?}")),
                };
                forms.push(Form {
                    product,
                    matcher,
                    conditional: matches!(f.get("only_if_rule_matches"), Some(Value::Bool(true))),
                    continuation,
                    set: sets(f.get("set"), &origin)?,
                });
            }
        }
        // a form taken for sure is tried before one that may hand the line on
        forms.sort_by_key(|f| f.conditional);
        let fallback = by_program.get("*").copied();
        Ok(Parser {
            products,
            by_program,
            by_name,
            fallback,
            forms,
            json,
            times,
            max_line,
            state: State::new(tables),
            resolved: HashMap::default(),
            context: None,
            stats: Stats::default(),
        })
    }

    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.iter()
    }

    /// (name, rows) of each correlation table.
    pub fn table_sizes(&self) -> Vec<(String, usize)> {
        self.state
            .decls
            .iter()
            .zip(&self.state.tables)
            .map(|(d, t)| (d.name.clone(), t.len()))
            .collect()
    }

    pub fn hook_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .products
            .iter()
            .flat_map(|p| p.rules.iter().flat_map(|r| r.hooks.iter().cloned()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether a rule names a Python hook (then lines must be parsed one by one, with
    /// the GIL, for the caller to run them).
    pub fn has_hooks(&self) -> bool {
        self.products
            .iter()
            .any(|p| p.rules.iter().any(|r| !r.hooks.is_empty()))
    }

    /// The next line starts another file or stream: a header-less line there does not
    /// continue the last entry of the previous one.
    pub fn new_input(&mut self) {
        self.context = None;
    }

    /// Program name -> product; normalised names are cached (bounded).
    fn resolve(&mut self, program: Option<&str>) -> Option<usize> {
        let prog = program?;
        if let Some(&p) = self.resolved.get(prog) {
            return p;
        }
        let mut p = None;
        if !prog.is_empty() {
            p = self.by_program.get(prog).copied();
            if p.is_none() {
                if let Some((head, tail)) = prog.split_once('/') {
                    // postfix multi-instance / service names: postfix-out/smtp
                    let head = head.split('-').next().unwrap_or(head);
                    let last = tail.rsplit('/').next().unwrap_or(tail);
                    p = self.by_program.get(&format!("{head}/{last}")).copied();
                }
            }
            if p.is_none() {
                let base = prog.split(['.', '-', '(']).next().unwrap_or(prog);
                p = self.by_program.get(&format!("{base}*")).copied();
            }
        }
        // bounded: 4,096 names of at most 64 bytes
        if self.resolved.len() < 4096 && prog.len() <= 64 {
            self.resolved.insert(prog.to_string(), p);
        }
        p
    }

    /// One line -> one document, always.
    pub fn parse(&mut self, line: &str) -> Parsed {
        let mut line = line;
        let cut = cut_at(line, self.max_line);
        if let Some(end) = cut {
            line = &line[..end];
            self.stats.add("truncated");
        }
        let cut = cut.is_some();
        let mut out = Parsed {
            doc: Map(Vec::with_capacity(12)),
            ..Parsed::default()
        };
        out.doc.obj("event").insert("original", Value::str(line));
        if cut {
            out.tags.push(LINE_TRUNCATED.into());
        }
        self.guarded(line, cut, out, Parser::shapes)
    }

    /// Runs `shapes` on the line: a regex limit keeps what was found, tagged; a panic (a
    /// bug) keeps the line whole, tagged `_parser_error`; the parser goes on either way.
    fn guarded(
        &mut self,
        line: &str,
        cut: bool,
        mut out: Parsed,
        shapes: impl FnOnce(&mut Parser, &str, &mut Parsed) -> Result<(), MatchError>,
    ) -> Parsed {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let r = shapes(self, line, &mut out);
            (r, out)
        }));
        match run {
            Ok((Ok(()), out)) => out,
            Ok((Err(_), mut out)) => {
                // a regex limit: the line is kept with what was found so far
                self.stats.add("grok_limit");
                out.tags.push(LIMIT_TAG.into());
                out
            }
            Err(_) => {
                // a bug must not lose the line nor the batch: kept whole, tagged
                self.stats.add("parser_error");
                self.context = None;
                let mut out = Parsed::default();
                out.doc.obj("event").insert("original", Value::str(line));
                out.message = Some(line.to_string());
                out.tags.push("_parser_error".into());
                if cut {
                    out.tags.push(LINE_TRUNCATED.into());
                }
                out
            }
        }
    }

    fn shapes(&mut self, line: &str, out: &mut Parsed) -> Result<(), MatchError> {
        if line.starts_with('{') {
            self.context = None;
            return self.json_line(line, out);
        }
        for f in 0..self.forms.len() {
            if self.form(f, line, out)? {
                return Ok(());
            }
        }
        let Some(h) = parse_syslog(line, &self.times) else {
            out.message = Some(line.to_string());
            if let Some((f, kept)) = &self.context {
                // a line of a multi-line entry (command output, a traceback)
                let form = &self.forms[*f];
                for (k, v) in &kept.0 {
                    out.doc.insert(k, v.clone());
                }
                let ds = self.products[form.product].dataset.clone();
                out.doc.obj("event").insert("dataset", Value::Str(ds));
                if let Some(c) = &form.continuation {
                    out.tags.push(c.tag.clone());
                }
                self.stats.add("continuation");
                return Ok(());
            }
            out.tags.push("_grokparsefailure".into());
            self.stats.add("unrecognised");
            return Ok(());
        };
        self.context = None;
        merge_header(&mut out.doc, h.fields);
        out.message = Some(h.message.clone());
        let msg = h.message;
        if let Some(p) = self.resolve(h.program.as_deref()) {
            return self.apply(p, &msg, out).map(|_| ());
        }
        if msg.chars().next().is_some_and(char::is_alphanumeric) && self.unwrap(&msg, out)? {
            return Ok(());
        }
        if let Some(fb) = self.fallback {
            if let Some((rule, fields)) = self.products[fb].matcher.matches(&msg)? {
                fill(&mut out.doc, &fields, &self.products[fb].statics);
                self.matched(fb, rule, out)?;
                return Ok(());
            }
        }
        out.doc.obj("event").insert("dataset", Value::str("syslog"));
        out.tags.push("_grokparsefailure".into());
        self.stats.add("no_parser");
        Ok(())
    }

    /// A product's own line form; false: not this form (or, for a conditional one, no
    /// rule matched), the line goes on.
    fn form(&mut self, f: usize, line: &str, out: &mut Parsed) -> Result<bool, MatchError> {
        let form = &self.forms[f];
        let Some((_, fields)) = form.matcher.matches(line)? else {
            return Ok(false);
        };
        let mut caps = Map::new();
        fill(&mut caps, &fields, &[]);
        let msg = caps
            .remove("_message")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let product = form.product;
        let stamp = match form_time(&mut caps) {
            Ok(t) => t,
            Err(()) => return Ok(false), // not a date (an unknown month name)
        };
        let rule = if form.conditional {
            match self.products[product].matcher.matches(&msg)? {
                None => return Ok(false),
                some => some,
            }
        } else {
            None
        };
        if let Some(t) = stamp {
            if let Some((_, iso)) = self.times.iso(&t) {
                out.doc.insert("@timestamp", Value::Str(iso));
            }
        }
        for (k, v) in caps.0 {
            out.doc.insert(&k, v);
        }
        for (p, v) in &form.set {
            out.doc.put(p, v.clone());
        }
        self.context = form.continuation.as_ref().map(|c| {
            let mut kept = Map::new();
            for p in &c.keep {
                if let Some(v) = out.doc.at(p) {
                    kept.put(p, v.clone());
                }
            }
            (f, kept)
        });
        out.message = Some(msg.clone());
        match rule {
            Some((r, fields)) => {
                fill(&mut out.doc, &fields, &self.products[product].statics);
                self.matched(product, r, out)?;
            }
            None => {
                self.apply(product, &msg, out)?;
            }
        }
        Ok(true)
    }

    /// The product's rules on `msg`: the first that matches writes its fields, then its
    /// ops run; none: `_grokparsefailure` with the product's dataset.
    pub fn apply(&mut self, p: usize, msg: &str, out: &mut Parsed) -> Result<bool, MatchError> {
        let product = &self.products[p];
        match product.matcher.matches(msg)? {
            None => {
                let ds = product.dataset.clone();
                out.doc.obj("event").insert("dataset", Value::Str(ds));
                out.tags.push("_grokparsefailure".into());
                self.stats.add("grok_failure");
                Ok(false)
            }
            Some((r, fields)) => {
                fill(&mut out.doc, &fields, &product.statics);
                self.matched(p, r, out)?;
                Ok(true)
            }
        }
    }

    fn matched(&mut self, p: usize, r: usize, out: &mut Parsed) -> Result<(), MatchError> {
        let ds = self.products[p].dataset.clone();
        out.doc.obj("event").setdefault("dataset", Value::Str(ds));
        out.rule = Some(self.products[p].rules[r].name.clone());
        if !self.products[p].rules[r].hooks.is_empty() {
            out.hooks
                .extend(self.products[p].rules[r].hooks.iter().cloned());
            self.stats.add("python_hook");
        }
        self.with_ops(out, Vec::new(), |env, cx| {
            let product = &env.parser.products[p];
            ops::run(&product.rules[r].ops, cx, env)?;
            ops::run(&product.ops, cx, env)
        })
    }

    /// Runs `f` with the ops' context of a line: the ops borrow the parser (`reparse`
    /// reads other products) while the correlation tables change, so the state is taken
    /// out meanwhile; rows taken by `row` go back into their tables at the end.
    fn with_ops(
        &mut self,
        out: &mut Parsed,
        vars: Vec<(String, Value)>,
        f: impl FnOnce(&ParserEnv, &mut Cx) -> Result<(), MatchError>,
    ) -> Result<(), MatchError> {
        let mut state = std::mem::replace(&mut self.state, State::new(Vec::new()));
        let mut reparsed = Vec::new();
        // the state goes back even when `f` panics (the panic is the line's, see guarded())
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let env = ParserEnv { parser: &*self };
            let mut cx = Cx {
                doc: &mut out.doc,
                message: &mut out.message,
                tags: &mut out.tags,
                times: &env.parser.times,
                state: &mut state,
                rows: Vec::new(),
                vars,
                hooks: Vec::new(),
                depth: 0,
            };
            let result = f(&env, &mut cx);
            cx.finish();
            reparsed = std::mem::take(&mut cx.hooks);
            result
        }));
        self.state = state;
        let result = run.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if !reparsed.is_empty() {
            out.hooks.extend(reparsed);
            self.stats.add("python_hook");
        }
        result
    }

    /// A relay's header around a whole syslog line: when the message is itself a syslog
    /// line whose program has a parser, that inner line is the event (the relay's header
    /// kept under `log.syslog`).
    fn unwrap(&mut self, msg: &str, out: &mut Parsed) -> Result<bool, MatchError> {
        let Some(inner) = parse_syslog(msg, &self.times) else {
            return Ok(false);
        };
        let Some(p) = self.resolve(inner.program.as_deref()) else {
            return Ok(false);
        };
        let doc = &mut out.doc;
        let mut syslog = match doc.at(&["log".into(), "syslog".into()]) {
            Some(Value::Map(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Map(h)) = doc.get("host") {
            if let Some(v) = h.get("hostname") {
                syslog.insert("hostname", v.clone());
            }
        }
        if let Some(Value::Map(pr)) = doc.get("process") {
            if let Some(v) = pr.get("name") {
                syslog.insert("appname", v.clone());
            }
        }
        for k in ["@timestamp", "host", "process", "log"] {
            doc.remove(k);
        }
        let mut inner_doc = Map::new();
        merge_header(&mut inner_doc, inner.fields);
        let inner_syslog = match inner_doc.at(&["log".into(), "syslog".into()]) {
            Some(Value::Map(m)) => Some(m.clone()),
            _ => None,
        };
        for (k, v) in inner_doc.0 {
            doc.insert(&k, v);
        }
        if !syslog.is_empty() {
            if let Some(m) = inner_syslog {
                for (k, v) in m.0 {
                    syslog.insert(&k, v);
                }
            }
            doc.obj("log").insert("syslog", Value::Map(syslog));
        }
        out.message = Some(inner.message.clone());
        self.apply(p, &inner.message, out)?;
        Ok(true)
    }

    fn json_line(&mut self, line: &str, out: &mut Parsed) -> Result<(), MatchError> {
        out.message = Some(line.to_string());
        // a text that fails the strict reading is read leniently only when it mentions
        // what a product's JSON documents hold (that product's, if damaged)
        let mut mentioned = None;
        let lenient = || {
            mentioned = self
                .json
                .iter()
                .position(|j| j.mentions.iter().any(|m| line.contains(m.as_str())));
            mentioned.is_some()
        };
        let obj = match read_object(line, lenient, &mut out.tags) {
            Some((obj, recovered)) => {
                if let (true, Some(jf)) = (recovered, mentioned) {
                    out.tags.push(self.json[jf].recovered_tag.clone());
                }
                obj
            }
            None => {
                out.tags.push("_jsonparsefailure".into());
                self.stats.add("json_failure");
                let Some(jf) = mentioned else {
                    return Ok(());
                };
                // a damaged document of this product: kept, tagged, salvaged
                let ds = self.products[self.json[jf].product].dataset.clone();
                out.doc.obj("event").insert("dataset", Value::Str(ds));
                let vars = vec![("line".into(), Value::str(line))];
                return self.with_ops(out, vars, |env, cx| {
                    ops::run(&env.parser.json[jf].damaged, cx, env)
                });
            }
        };
        let form = self
            .json
            .iter()
            .position(|j| matches!(obj.get(&j.key), Some(Value::Map(_))));
        let Some(jf) = form else {
            out.doc.obj("event").insert("dataset", Value::str("json"));
            out.doc.insert("json", Value::Map(obj));
            return Ok(());
        };
        self.with_ops(out, Vec::new(), |env, cx| {
            env.run_json(cx, &env.parser.json[jf].op.ops, obj)
        })
    }
}

/// The Env the ops of a line run with.
struct ParserEnv<'p> {
    parser: &'p Parser,
}

impl ParserEnv<'_> {
    /// The ops of a JSON object, the object bound as `$json` (`merge: $json` puts it
    /// into the document).
    fn run_json(&self, cx: &mut Cx, ops: &[Op], obj: Map) -> Result<(), MatchError> {
        let mark = cx.vars.len();
        cx.vars.push(("json".into(), Value::Map(obj)));
        let r = ops::run(ops, cx, self);
        cx.vars.truncate(mark);
        r
    }
}

impl Env for ParserEnv<'_> {
    /// The text parsed by another product's rules, into the same document (a
    /// syslog-wrapped body); no rule matches: that product's dataset, tagged.
    fn reparse(&self, cx: &mut Cx, parser: &str, text: &str) -> Result<(), MatchError> {
        // the target exists (checked at start); a cycle of reparses stops here, tagged
        let Some(&p) = self.parser.by_name.get(parser) else {
            return Ok(());
        };
        if cx.depth >= MAX_REPARSE {
            cx.tags.push("_reparse_depth".into());
            return Ok(());
        }
        let product = &self.parser.products[p];
        match product.matcher.matches(text)? {
            None => {
                let event = cx.doc.obj("event");
                event.insert("dataset", Value::Str(product.dataset.clone()));
                cx.tags.push("_grokparsefailure".into());
            }
            Some((r, fields)) => {
                fill(cx.doc, &fields, &product.statics);
                cx.doc
                    .obj("event")
                    .setdefault("dataset", Value::Str(product.dataset.clone()));
                // the Python hooks of the rule that matched the text run too
                cx.hooks.extend(product.rules[r].hooks.iter().cloned());
                cx.depth += 1;
                let result = ops::run(&product.rules[r].ops, cx, self)
                    .and_then(|_| ops::run(&product.ops, cx, self));
                cx.depth -= 1;
                result?;
            }
        }
        Ok(())
    }

    /// A JSON text (strict, else lenient: `recovered_tag`); no object: the `damaged`
    /// ops with the text as `$line`.
    fn json(&self, cx: &mut Cx, op: &JsonOp, text: &str) -> Result<(), MatchError> {
        match read_object(text, || true, cx.tags) {
            Some((obj, recovered)) => {
                if recovered && !op.recovered_tag.is_empty() {
                    cx.tags.push(op.recovered_tag.clone());
                }
                self.run_json(cx, &op.ops, obj)
            }
            None => {
                let mark = cx.vars.len();
                cx.vars.push(("line".into(), Value::str(text)));
                let r = ops::run(&op.damaged, cx, self);
                cx.vars.truncate(mark);
                r
            }
        }
    }
}

/// The parsers the `reparse` ops of a spec name.
fn reparse_targets(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![spec];
    while let Some(v) = stack.pop() {
        match v {
            Value::Map(m) => {
                if let Some(Value::Map(r)) = m.get("reparse") {
                    if let Some(Value::Str(t)) = r.get("parser") {
                        out.push(t.clone());
                    }
                }
                stack.extend(m.0.iter().map(|(_, x)| x));
            }
            Value::List(l) => stack.extend(l.iter()),
            _ => {}
        }
    }
    out
}

/// The byte offset at which a text longer than `max` characters is cut, else None.
pub fn cut_at(text: &str, max: usize) -> Option<usize> {
    if text.len() <= max {
        return None; // bytes >= chars
    }
    text.char_indices().nth(max).map(|(i, _)| i)
}

/// Reparses within reparses (a rule file may name its own parser).
const MAX_REPARSE: u8 = 4;

/// Nesting past this is not adopted from a JSON text (the line is kept as text, tagged
/// `_json_too_deep`): the outputs' JSON writers stop at 254 levels (orjson) and
/// Elasticsearch's mapping depth far sooner; the readers take 1,024.
pub const MAX_JSON_DEPTH: usize = 200;

/// A JSON text read by `read`, or None: unreadable, or nested deeper than
/// [`MAX_JSON_DEPTH`] (then tagged once).
fn read_json(
    text: &str,
    read: fn(&str) -> Result<Value, crate::json::JsonError>,
    tags: &mut Vec<String>,
) -> Option<Value> {
    let v = read(text).ok()?;
    if crate::doc::depth(&v) > MAX_JSON_DEPTH {
        if !tags.iter().any(|t| t == "_json_too_deep") {
            tags.push("_json_too_deep".into());
        }
        return None;
    }
    Some(v)
}

/// A JSON object read strictly (orjson's rules), else, when `lenient()` allows it, as
/// Python's `json.loads(strict=False)` does: (the object, whether it took the lenient
/// reading); None: no object.
fn read_object(
    text: &str,
    lenient: impl FnOnce() -> bool,
    tags: &mut Vec<String>,
) -> Option<(Map, bool)> {
    match read_json(text, crate::json::parse_strict, tags) {
        Some(Value::Map(m)) => Some((m, false)),
        Some(_) => None,
        None if lenient() => match read_json(text, crate::json::parse_lenient, tags) {
            Some(Value::Map(m)) => Some((m, true)),
            _ => None,
        },
        None => None,
    }
}

/// Their values win; objects merge key by key.
pub fn merge(dst: &mut Map, src: Map) {
    for (k, v) in src.0 {
        match (dst.get_mut(&k), v) {
            (Some(Value::Map(cur)), Value::Map(v)) => merge(cur, v),
            (_, v) => dst.insert(&k, v),
        }
    }
}

/// `@timestamp` text of a form's captures (removed from them): `_time` + `_zone`, or
/// `_year`-`_month`-`_day` `_clock` + `_zone` (a month by its English name); Err: the
/// month is no month.
fn form_time(caps: &mut Map) -> Result<Option<String>, ()> {
    let mut take = |k: &str| caps.remove(k).and_then(|v| v.as_str().map(str::to_string));
    let zone = take("_zone").unwrap_or_default();
    if let Some(t) = take("_time") {
        return Ok(Some(format!("{t}{zone}")));
    }
    let (Some(y), Some(mo), Some(d), Some(c)) =
        (take("_year"), take("_month"), take("_day"), take("_clock"))
    else {
        return Ok(None);
    };
    let month = match mo.parse::<u32>() {
        Ok(n) => n,
        Err(_) => MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(&mo))
            .map(|i| i as u32 + 1)
            .ok_or(())?,
    };
    let day: u32 = d.parse().map_err(|_| ())?;
    Ok(Some(format!("{y}-{month:02}-{day:02} {c}{zone}")))
}

/// The grok captures written into the document, as the Python fill does.
pub fn fill(doc: &mut Map, fields: &Fields<'_, '_>, statics: &[Value]) {
    for (key, node) in fields {
        match node {
            Node::Obj(sub) => fill(doc.obj(&key.name), sub, statics),
            Node::Val(v) => {
                let v = match v {
                    GValue::Str(s) => Value::str(s),
                    GValue::Int(n) => Value::Int(*n),
                    GValue::BigInt(b) => Value::BigInt(b.clone()),
                    GValue::Float(f) => Value::Float(*f),
                    GValue::Static(i) => statics[*i].clone(),
                };
                doc.insert(&key.name, v);
            }
        }
    }
}

/// The header's fields into the document.
fn merge_header(doc: &mut Map, h: Map) {
    for (k, v) in h.0 {
        doc.insert(&k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamps::Zone;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn m(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(Map(entries
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect()))
    }

    fn parser(limits: Limits) -> Parser {
        let defs: HashMap<String, String> = [
            (
                "FAIL",
                r"Failed password for (?<user.name>\S+) from (?<source.address>\S+)",
            ),
            ("SLOW", r"(?:a+)+b"),
            (
                "OWN",
                r"(?<_time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) own: (?<_message>.*)",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let specs = vec![
            m(vec![
                ("name", s("sshd")),
                ("dataset", s("sshd.log")),
                ("programs", Value::List(vec![s("sshd")])),
                (
                    "rules",
                    Value::List(vec![
                        m(vec![
                            ("pattern", s("FAIL")),
                            ("set", m(vec![("event.outcome", s("failure"))])),
                        ]),
                        m(vec![("pattern", s("SLOW"))]),
                    ]),
                ),
                ("ops", Value::List(vec![m(vec![("address", s("source"))])])),
            ]),
            m(vec![
                ("name", s("own")),
                ("dataset", s("own.log")),
                ("rules", Value::List(vec![m(vec![("pattern", s("FAIL"))])])),
                (
                    "forms",
                    Value::List(vec![m(vec![
                        ("header", s("OWN")),
                        (
                            "continuation",
                            m(vec![("keep", Value::List(vec![s("@timestamp")]))]),
                        ),
                    ])]),
                ),
            ]),
        ];
        let times = TimeParser::new(Some(2024), Zone::parse("UTC").unwrap(), 0.0);
        Parser::new(defs, &specs, times, 80, limits).unwrap()
    }

    fn at<'a>(p: &'a Parsed, f: &str) -> Option<&'a Value> {
        p.doc.at(&path(f).unwrap())
    }

    #[test]
    fn syslog_rule_set_and_ops() {
        let mut p = parser(Limits::default());
        let r = p.parse("Mar  1 10:00:00 h sshd[7]: Failed password for root from [192.0.2.1]");
        assert_eq!(r.rule.as_deref(), Some("FAIL"));
        assert_eq!(at(&r, "event.outcome"), Some(&s("failure")));
        assert_eq!(at(&r, "event.dataset"), Some(&s("sshd.log")));
        assert_eq!(at(&r, "source.ip"), Some(&s("192.0.2.1")));
        assert_eq!(at(&r, "process.pid"), Some(&Value::Int(7)));
        let r = p.parse("Mar  1 10:00:00 h sshd[7]: something else");
        assert_eq!(r.tags, vec!["_grokparsefailure".to_string()]);
        let r = p.parse("Mar  1 10:00:00 h nobody[7]: x");
        assert_eq!(at(&r, "event.dataset"), Some(&s("syslog")));
    }

    #[test]
    fn forms_and_continuations() {
        let mut p = parser(Limits::default());
        let r = p.parse("2024-05-01 10:00:00 own: Failed password for a from b");
        assert_eq!(at(&r, "@timestamp"), Some(&s("2024-05-01T10:00:00.000Z")));
        assert_eq!(at(&r, "event.dataset"), Some(&s("own.log")));
        assert_eq!(r.message.as_deref(), Some("Failed password for a from b"));
        let r = p.parse("  a traceback line");
        assert_eq!(r.tags, vec!["multiline_continuation".to_string()]);
        assert_eq!(at(&r, "@timestamp"), Some(&s("2024-05-01T10:00:00.000Z")));
        p.new_input();
        let r = p.parse("  a traceback line");
        assert_eq!(r.tags, vec!["_grokparsefailure".to_string()]);
    }

    #[test]
    fn a_panic_keeps_the_line_and_the_parser() {
        let mut p = parser(Limits::default());
        let line = "Mar  1 10:00:00 h sshd[7]: Failed password for root from 192.0.2.1";
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {})); // the expected panic is not printed
        let r = p.guarded(line, false, Parsed::default(), |_, _, out| {
            out.doc.insert("half", Value::str("written"));
            panic!("a bug");
        });
        std::panic::set_hook(hook);
        assert_eq!(r.tags, vec!["_parser_error".to_string()]);
        assert_eq!(at(&r, "event.original"), Some(&s(line)));
        assert_eq!(at(&r, "half"), None);
        assert_eq!(r.message.as_deref(), Some(line));
        assert_eq!(p.stats.0, vec![("parser_error", 1)]);
        assert_eq!(p.parse(line).rule.as_deref(), Some("FAIL"));
    }

    fn with_table_and_reparse(target: &str) -> Result<Parser, String> {
        let defs: HashMap<String, String> = [("ANY", r"(?<x>.*)")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let specs = vec![m(vec![
            ("name", s("loop")),
            ("dataset", s("loop.log")),
            ("programs", Value::List(vec![s("loop")])),
            (
                "tables",
                m(vec![(
                    "conn",
                    m(vec![("key", Value::List(vec![s("process.pid")]))]),
                )]),
            ),
            ("rules", Value::List(vec![m(vec![("pattern", s("ANY"))])])),
            (
                "ops",
                Value::List(vec![
                    m(vec![("row", m(vec![("table", s("conn"))]))]),
                    m(vec![(
                        "reparse",
                        m(vec![("from", s("@message")), ("parser", s(target))]),
                    )]),
                ]),
            ),
        ])];
        let times = TimeParser::new(Some(2024), Zone::parse("UTC").unwrap(), 0.0);
        Parser::new(defs, &specs, times, 1000, Limits::default())
    }

    #[test]
    fn a_reparse_cycle_stops_and_an_unknown_target_is_refused() {
        let mut p = with_table_and_reparse("loop").unwrap();
        let r = p.parse("Mar  1 10:00:00 h loop[7]: again");
        assert!(
            r.tags.contains(&"_reparse_depth".to_string()),
            "{:?}",
            r.tags
        );
        assert_eq!(p.table_sizes(), vec![("conn".to_string(), 1)]);
        let e = with_table_and_reparse("nope").err().unwrap();
        assert!(e.contains("no parser named \"nope\""), "{e}");
    }

    #[test]
    fn a_panic_in_the_ops_keeps_the_tables() {
        let mut p = with_table_and_reparse("loop").unwrap();
        p.parse("Mar  1 10:00:00 h loop[7]: a");
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = p.guarded("x", false, Parsed::default(), |p, _, out| {
            p.with_ops(out, Vec::new(), |_, _| panic!("a bug in an op"))
        });
        std::panic::set_hook(hook);
        assert_eq!(r.tags, vec!["_parser_error".to_string()]);
        assert_eq!(p.table_sizes(), vec![("conn".to_string(), 1)]);
        p.parse("Mar  1 10:00:00 h loop[8]: b");
        assert_eq!(p.table_sizes(), vec![("conn".to_string(), 2)]);
    }

    #[test]
    fn limits_and_long_lines_keep_the_line() {
        let mut p = parser(Limits {
            match_limit: 1000,
            ..Limits::default()
        });
        let line = format!("Mar  1 10:00:00 h sshd[7]: {}!b", "a".repeat(40));
        let r = p.parse(&line);
        assert!(r.tags.contains(&LIMIT_TAG.to_string()), "{:?}", r.tags);
        assert_eq!(at(&r, "event.original"), Some(&s(&line)));
        let long = "x".repeat(200);
        let r = p.parse(&long);
        assert_eq!(at(&r, "event.original"), Some(&s(&long[..80])));
        assert!(r.tags.contains(&LINE_TRUNCATED.to_string()));
    }
}
