//! The syslog header (sans-IO), written into the core's document (`crate::doc`): the port
//! of the Python parser's `streams/parse/syslog.py` (`parse_syslog`, `parse_rfc5424`,
//! `structured_data`, the PRI handling with `_syslog_bad_priority`), its oracle until it was
//! deleted.
//!
//! Each pattern of the Python module is matched by hand. They were read for where Python's
//! `re` could backtrack: none of them can choose between two ways of matching (every
//! quantified run stops at a character the next piece needs), so a greedy scan that fails
//! where the pattern fails gives the same groups. Character classes are Python's
//! (`crate::pyunicode`): `\d`, `\s`, `\S`, `\w` on Unicode text.

use std::collections::HashMap;

use crate::doc::{Map, Value};
use crate::pyunicode::{digit, int_of_digits, is_decimal, is_digit, is_space, is_word, Int};
use crate::syslog::priority;
use crate::timestamps::{TimeParser, MONTHS};

/// An object of the document made of its entries in order.
fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(Map(entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()))
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn small(n: i64) -> Value {
    Value::Int(n)
}

/// What `parse_syslog` gives: the fields it wrote, the program, the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub fields: Map,
    pub program: Option<String>,
    pub message: String,
}

// ---- scanning helpers (byte offsets into the line, always on char boundaries) ----

fn ch(line: &str, i: usize) -> Option<char> {
    line.get(i..).and_then(|t| t.chars().next())
}

/// The end of the longest run (at most `max` chars) of chars matching `pred`, and its length.
fn run(line: &str, i: usize, max: usize, pred: impl Fn(char) -> bool) -> (usize, usize) {
    let mut end = i;
    let mut n = 0;
    for c in line[i..].chars() {
        if n == max || !pred(c) {
            break;
        }
        end += c.len_utf8();
        n += 1;
    }
    (end, n)
}

/// Exactly `n` chars matching `pred` from `i` (a `\d{n}`), or None.
fn exact(line: &str, i: usize, n: usize, pred: impl Fn(char) -> bool) -> Option<usize> {
    let (end, got) = run(line, i, n, pred);
    (got == n).then_some(end)
}

/// `n_min..=n_max` chars matching `pred`, greedy.
fn between(
    line: &str,
    i: usize,
    lo: usize,
    hi: usize,
    pred: impl Fn(char) -> bool,
) -> Option<usize> {
    let (end, got) = run(line, i, hi, pred);
    (got >= lo).then_some(end)
}

fn lit(line: &str, i: usize, c: char) -> Option<usize> {
    (ch(line, i) == Some(c)).then(|| i + c.len_utf8())
}

fn not_space(c: char) -> bool {
    !is_space(c)
}

/// `(?:<(\d{1,3})>)?` at `i`: (the digits, the offset after `>`), or None.
fn pri_at(line: &str, i: usize) -> Option<(&str, usize)> {
    let a = lit(line, i, '<')?;
    let b = between(line, a, 1, 3, is_digit)?;
    let e = lit(line, b, '>')?;
    Some((&line[a..b], e))
}

/// `(?:\[(\d+)\])?: ` after a tag (the common shapes): (pid, offset after `: `).
fn pid_colon_space(line: &str, i: usize) -> Option<(Option<&str>, usize)> {
    let mut pid = None;
    let mut j = i;
    if let Some(a) = lit(line, i, '[') {
        if let Some(b) = between(line, a, 1, usize::MAX, is_digit) {
            if let Some(e) = lit(line, b, ']') {
                pid = Some(&line[a..b]);
                j = e;
            }
        }
    }
    let j = lit(line, j, ':')?;
    let j = lit(line, j, ' ')?;
    Some((pid, j))
}

/// The common shapes' tail after the time: ` host tag[pid]: ` -> (host, tag, pid, where
/// the message starts); `host_stop`: what else a host name may not hold.
fn host_tag(
    line: &str,
    i: usize,
    host_stop: impl Fn(char) -> bool,
) -> Option<(&str, &str, Option<&str>, usize)> {
    let h0 = lit(line, i, ' ')?;
    let (h1, n) = run(line, h0, usize::MAX, |c| !is_space(c) && !host_stop(c));
    if n == 0 {
        return None;
    }
    let t0 = lit(line, h1, ' ')?;
    let (t1, n) = run(line, t0, usize::MAX, tag_char);
    if n == 0 {
        return None;
    }
    let (pid, m) = pid_colon_space(line, t1)?;
    Some((&line[h0..h1], &line[t0..t1], pid, m))
}

fn tag_char(c: char) -> bool {
    !is_space(c) && c != '[' && c != ':'
}

fn process(tag: &str, pid: Option<Value>) -> Value {
    match pid {
        Some(p) => obj(vec![("name", s(tag)), ("pid", p)]),
        None => obj(vec![("name", s(tag))]),
    }
}

fn host(h: &str) -> Value {
    obj(vec![("hostname", s(h)), ("name", s(h))])
}

fn int_value(digits: &str) -> Value {
    match int_of_digits(digits) {
        Int::Small(n) => Value::Int(n),
        Int::Big(d) => Value::BigInt(d),
    }
}

/// `int(v) if v.isdecimal() else v`
fn int_or_text(v: &str) -> Value {
    if is_decimal(v) {
        int_value(v)
    } else {
        s(v)
    }
}

/// `_set_pri`: the syslog dict's priority keys, and the tag of a PRI past 191.
fn set_pri(fields: &mut Map, syslog: &mut Map, pri: &str) {
    let n: u32 = pri.chars().fold(0, |n, c| n * 10 + digit(c).unwrap_or(0));
    match priority(n) {
        Some((f, fname, sev, sname)) => {
            syslog.push("priority", small(n as i64));
            syslog.push(
                "facility",
                obj(vec![("code", small(f as i64)), ("name", s(fname))]),
            );
            syslog.push(
                "severity",
                obj(vec![("code", small(sev as i64)), ("name", s(sname))]),
            );
        }
        None => {
            fields.tag("_syslog_bad_priority");
            syslog.push("priority", small(n as i64));
        }
    }
}

// ---- RFC 5424 ----

/// One `[...]` of the SD group of `_RFC5424`: `\[(?:[^\]\\"]|\\.|"(?:[^"\\]|\\.)*")*\]`.
fn sd_group_element(line: &str, i: usize) -> Option<usize> {
    let mut j = lit(line, i, '[')?;
    loop {
        let c = ch(line, j)?;
        j += c.len_utf8();
        match c {
            ']' => return Some(j),
            '\\' => j += ch(line, j)?.len_utf8(),
            '"' => loop {
                let q = ch(line, j)?;
                j += q.len_utf8();
                match q {
                    '"' => break,
                    '\\' => j += ch(line, j)?.len_utf8(),
                    _ => {}
                }
            },
            _ => {}
        }
    }
}

/// `(?:[^"\\]|\\.)*"` from `i` (after an opening quote): the value's end, after the quote.
fn quoted_value(t: &str, i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    loop {
        let c = ch(t, j)?;
        match c {
            '"' => return Some((j, j + 1)),
            '\\' => {
                let n = ch(t, j + 1)?;
                j += 1 + n.len_utf8();
            }
            _ => j += c.len_utf8(),
        }
    }
}

fn sd_name_char(c: char) -> bool {
    !is_space(c) && c != '=' && c != ']' && c != '"'
}

/// `_SD_PARAM` at `i`: `([^\s=\]"]+)="((?:[^"\\]|\\.)*)"` -> (name, value, end).
fn sd_param_at(t: &str, i: usize) -> Option<(&str, &str, usize)> {
    let (n_end, n) = run(t, i, usize::MAX, sd_name_char);
    if n == 0 {
        return None;
    }
    let j = lit(t, n_end, '=')?;
    let j = lit(t, j, '"')?;
    let (v_end, end) = quoted_value(t, j)?;
    Some((&t[i..n_end], &t[j..v_end], end))
}

/// `_SD_ELEMENT` at `i`: (id, params text, end).
fn sd_element_at(t: &str, i: usize) -> Option<(&str, &str, usize)> {
    let a = lit(t, i, '[')?;
    let (id_end, n) = run(t, a, usize::MAX, |c| {
        !is_space(c) && c != ']' && c != '=' && c != '"'
    });
    if n == 0 {
        return None;
    }
    let mut j = id_end;
    loop {
        let (sp, n) = run(t, j, usize::MAX, is_space);
        if n == 0 {
            break;
        }
        match sd_param_at(t, sp) {
            Some((_, _, end)) => j = end,
            None => break,
        }
    }
    let params = &t[id_end..j];
    let (sp, _) = run(t, j, usize::MAX, is_space);
    let end = lit(t, sp, ']')?;
    Some((&t[a..id_end], params, end))
}

/// `_SD_UNESCAPE.sub(r"\1", v)`: `\"`, `\\`, `\]` lose their backslash.
fn sd_unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(&n) = it.peek() {
                if matches!(n, '"' | '\\' | ']') {
                    out.push(n);
                    it.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Inserts into an ordered map as a Python dict does (a key seen again keeps its place).
fn dict_set(map: &mut Map, index: &mut HashMap<String, usize>, k: &str, v: Value) {
    match index.get(k) {
        Some(&at) => map.0[at].1 = v,
        None => {
            index.insert(k.to_string(), map.0.len());
            map.0.push((k.to_string(), v));
        }
    }
}

/// `structured_data`: every `_SD_ELEMENT` found in the text (finditer), its params (findall).
pub fn structured_data(sd: &str) -> Map {
    let mut out = Map::default();
    let mut index = HashMap::new();
    let mut i = 0;
    while i < sd.len() {
        if let Some((id, params, end)) = sd_element_at(sd, i) {
            let mut el = Map::default();
            let mut el_index = HashMap::new();
            let mut j = 0;
            while j < params.len() {
                if let Some((k, v, e)) = sd_param_at(params, j) {
                    dict_set(&mut el, &mut el_index, k, s(&sd_unescape(v)));
                    j = e;
                } else {
                    j += ch(params, j).map_or(1, char::len_utf8);
                }
            }
            dict_set(&mut out, &mut index, id, Value::Map(el));
            i = end;
        } else {
            i += ch(sd, i).map_or(1, char::len_utf8);
        }
    }
    out
}

/// `_RFC5424` and `parse_rfc5424`.
fn rfc5424(line: &str, times: &TimeParser) -> Option<Header> {
    let (pri, i) = pri_at(line, 0)?;
    let v_end = between(line, i, 1, 2, is_digit)?;
    let ver = &line[i..v_end];
    let mut j = lit(line, v_end, ' ')?;
    let mut parts = [""; 5];
    for part in parts.iter_mut() {
        let (end, n) = run(line, j, usize::MAX, not_space);
        if n == 0 {
            return None;
        }
        *part = &line[j..end];
        j = lit(line, end, ' ')?;
    }
    let [ts, hostname, app, procid, msgid] = parts;
    let (sd, msg) = if ch(line, j) == Some('-') {
        let k = j + 1;
        let msg = lit(line, k, ' ').map_or("", |m| &line[m..]);
        ("-", msg)
    } else {
        let mut k = sd_group_element(line, j)?;
        while let Some(e) = sd_group_element(line, k) {
            k = e;
        }
        let msg = match lit(line, k, ' ') {
            Some(m) => &line[m..],
            None => &line[k..],
        };
        (&line[j..k], msg)
    };

    let mut fields = Map::default();
    let mut syslog = Map::default();
    syslog.push("version", int_value(ver));
    set_pri(&mut fields, &mut syslog, pri);
    if ts != "-" {
        if let Some((_, text)) = times.iso(ts) {
            fields.push("@timestamp", Value::Str(text));
        }
    }
    if hostname != "-" {
        syslog.push("hostname", s(hostname));
        fields.push("host", host(hostname));
    }
    let program = (app != "-").then(|| app.to_string());
    if let Some(p) = &program {
        syslog.push("appname", s(p));
    }
    if procid != "-" {
        syslog.push("procid", int_or_text(procid));
    }
    if msgid != "-" {
        syslog.push("msgid", s(msgid));
    }
    if sd != "-" {
        syslog.push("structured_data", Value::Map(structured_data(sd)));
    }
    let mut proc = Map::default();
    if let Some(p) = &program {
        proc.push("name", s(p));
    }
    if procid != "-" {
        proc.push("pid", int_or_text(procid));
    }
    if !proc.0.is_empty() {
        fields.push("process", Value::Map(proc));
    }
    fields.push("log", obj(vec![("syslog", Value::Map(syslog))]));
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Header {
        fields,
        program,
        message: msg.to_string(),
    })
}

// ---- daemontools / multilog ----

/// `_TAI64N`: `@(4[0-9a-f]{15})[0-9a-f]{8} ([^\s\[:]+)(?:\[(\d+)\])?: (.*)`
fn tai64n(line: &str) -> Option<Header> {
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    let a = lit(line, 0, '@')?;
    let b = lit(line, a, '4')?;
    let label_end = exact(line, b, 15, hex)?;
    let e = exact(line, label_end, 8, hex)?;
    let t0 = lit(line, e, ' ')?;
    let (t1, n) = run(line, t0, usize::MAX, tag_char);
    if n == 0 {
        return None;
    }
    let (pid, m) = pid_colon_space(line, t1)?;
    let tag = &line[t0..t1];
    let label = u64::from_str_radix(&line[a..label_end], 16).ok()?;
    let mut fields = Map::default();
    if let Some((_, text)) = crate::timestamps::epoch_seconds(label as i128 - (1i128 << 62)) {
        fields.push("@timestamp", Value::Str(text));
    }
    fields.push("process", process(tag, pid.map(int_value)));
    Some(Header {
        fields,
        program: Some(tag.to_string()),
        message: line[m..].to_string(),
    })
}

// ---- the common shapes, matched first ----

/// Three runs of exactly `widths` digits with `sep` between them.
fn digit_triple(line: &str, i: usize, widths: [usize; 3], sep: char) -> Option<usize> {
    let j = exact(line, i, widths[0], is_digit)?;
    let j = exact(line, lit(line, j, sep)?, widths[1], is_digit)?;
    exact(line, lit(line, j, sep)?, widths[2], is_digit)
}

/// `\d\d:\d\d:\d\d`
fn hh_mm_ss(line: &str, i: usize) -> Option<usize> {
    digit_triple(line, i, [2, 2, 2], ':')
}

/// `\d{4}-\d\d-\d\d`
fn ymd(line: &str, i: usize) -> Option<usize> {
    digit_triple(line, i, [4, 2, 2], '-')
}

/// `[+-]\d\d` then `:` if `colon` is Some(true), `:?` if None, then `\d\d`.
fn offset(line: &str, i: usize, colon: Option<bool>) -> Option<usize> {
    let c = ch(line, i)?;
    if c != '+' && c != '-' {
        return None;
    }
    let j = exact(line, i + 1, 2, is_digit)?;
    let j = match (colon, lit(line, j, ':')) {
        (Some(true), Some(k)) => k,
        (Some(true), None) => return None,
        (None, Some(k)) => match exact(line, k, 2, is_digit) {
            Some(_) => k,
            None => j,
        },
        _ => j,
    };
    exact(line, j, 2, is_digit)
}

/// `_COMMON_ISO`: `2024-08-26T01:33:38.572449+00:00 host tag[pid]: msg`.
fn common_iso(line: &str, times: &TimeParser) -> Option<Header> {
    let mut j = ymd(line, 0)?;
    j = lit(line, j, 'T')?;
    j = hh_mm_ss(line, j)?;
    if let Some(k) = lit(line, j, '.').and_then(|k| between(line, k, 1, 9, is_digit)) {
        j = k;
    }
    j = lit(line, j, 'Z').or_else(|| offset(line, j, Some(true)))?;
    let iso = &line[..j];
    let (hostname, tag, pid, m) = host_tag(line, j, |c| matches!(c, ':' | '[' | ']' | '<'))?;
    let mut fields = Map::default();
    if let Some((_, text)) = times.iso(iso) {
        fields.push("@timestamp", Value::Str(text));
    }
    fields.push("host", host(hostname));
    fields.push("process", process(tag, pid.map(int_value)));
    let msg = &line[m..];
    Some(Header {
        fields,
        program: Some(tag.to_string()),
        message: msg.strip_prefix(' ').unwrap_or(msg).to_string(),
    })
}

/// `_COMMON`: `Mmm dd hh:mm:ss host tag[pid]: msg`; None also when the date is not one
/// (then the general pattern has its go).
fn common(line: &str, times: &TimeParser) -> Option<Header> {
    let c0 = ch(line, 0)?;
    if !c0.is_ascii_uppercase() {
        return None;
    }
    let mon_end = exact(line, 1, 2, |c| c.is_ascii_lowercase())?;
    let d0 = lit(line, mon_end, ' ')?;
    // `[ \d]?\d ` : two characters, else one
    let a = ch(line, d0)?;
    let two = (a == ' ' || is_digit(a))
        && ch(line, d0 + a.len_utf8()).is_some_and(|b| {
            is_digit(b) && ch(line, d0 + a.len_utf8() + b.len_utf8()) == Some(' ')
        });
    let d1 = if two {
        d0 + a.len_utf8() + ch(line, d0 + a.len_utf8())?.len_utf8()
    } else if is_digit(a) && ch(line, d0 + a.len_utf8()) == Some(' ') {
        d0 + a.len_utf8()
    } else {
        return None;
    };
    let c0 = lit(line, d1, ' ')?;
    let c1 = hh_mm_ss(line, c0)?;
    let (hostname, tag, pid, m) = host_tag(line, c1, |c| matches!(c, ':' | '[' | ']'))?;
    let (_, text) = times.syslog(&line[..mon_end], &line[d0..d1], &line[c0..c1], None)?;
    let mut fields = Map::default();
    fields.push("@timestamp", Value::Str(text));
    fields.push("host", host(hostname));
    fields.push("process", process(tag, pid.map(int_value)));
    Some(Header {
        fields,
        program: Some(tag.to_string()),
        message: line[m..].to_string(),
    })
}

// ---- the general BSD pattern and the one without a time ----

struct Bsd<'a> {
    pri: Option<&'a str>,
    // (month, day, year, clock) or the ISO text
    stamp: Result<(&'a str, &'a str, Option<&'a str>, &'a str), &'a str>,
    host: Option<(usize, &'a str)>,
    tag: Option<&'a str>,
    pid: Option<&'a str>,
    msg: &'a str,
}

/// `(?:[.,]\d{1,9})?`
fn fraction(line: &str, j: usize, marks: &[char]) -> usize {
    match ch(line, j) {
        Some(c) if marks.contains(&c) => between(line, j + 1, 1, 9, is_digit).unwrap_or(j),
        _ => j,
    }
}

/// `_BSD`
fn bsd_match(line: &str) -> Option<Bsd<'_>> {
    let (pri, mut i) = match pri_at(line, 0) {
        Some((p, e)) => (Some(p), e),
        None => (None, 0),
    };
    if let Some(k) = lit(line, i, ' ') {
        i = k;
    }
    let mut stamp = None;
    let mut j = i;
    // `Mmm +d{1,2} +(?:yyyy +)?h{1,2}:mm:ss(?:[.,]f{1,9})?` then `:?`
    if let Some(m_end) = exact(line, i, 3, |c| c.is_ascii_alphabetic()) {
        let alt = (|| {
            let (d0, n) = run(line, m_end, usize::MAX, |c| c == ' ');
            if n == 0 {
                return None;
            }
            let d1 = between(line, d0, 1, 2, is_digit)?;
            let (mut k, n) = run(line, d1, usize::MAX, |c| c == ' ');
            if n == 0 {
                return None;
            }
            let mut year = None;
            if let Some(y1) = exact(line, k, 4, is_digit) {
                let (after, n) = run(line, y1, usize::MAX, |c| c == ' ');
                if n > 0 {
                    year = Some(&line[k..y1]);
                    k = after;
                }
            }
            let t0 = k;
            let h = between(line, t0, 1, 2, is_digit)?;
            let h = lit(line, h, ':')?;
            let m = exact(line, h, 2, is_digit)?;
            let m = lit(line, m, ':')?;
            let sec = exact(line, m, 2, is_digit)?;
            let t1 = fraction(line, sec, &['.', ',']);
            let stamp = (&line[i..m_end], &line[d0..d1], year, &line[t0..t1]);
            Some((stamp, lit(line, t1, ':').unwrap_or(t1)))
        })();
        if let Some((st, end)) = alt {
            stamp = Some(Ok(st));
            j = end;
        }
    }
    if stamp.is_none() {
        // `\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?`
        let mut k = ymd(line, i)?;
        k = lit(line, k, 'T').or_else(|| lit(line, k, ' '))?;
        k = hh_mm_ss(line, k)?;
        k = fraction(line, k, &['.', ',']);
        if let Some(z) = lit(line, k, 'Z').or_else(|| offset(line, k, None)) {
            k = z;
        }
        stamp = Some(Err(&line[i..k]));
        j = k;
    }
    // `(?: <[a-z]+\d?\.[a-z]+>)?` (FreeBSD `syslogd -v`)
    let freebsd = (|| {
        let k = lit(line, j, ' ')?;
        let k = lit(line, k, '<')?;
        let (k, n) = run(line, k, usize::MAX, |c| c.is_ascii_lowercase());
        if n == 0 {
            return None;
        }
        let k = match ch(line, k) {
            Some(c) if is_digit(c) => k + c.len_utf8(),
            _ => k,
        };
        let k = lit(line, k, '.')?;
        let (k, n) = run(line, k, usize::MAX, |c| c.is_ascii_lowercase());
        if n == 0 {
            return None;
        }
        lit(line, k, '>')
    })();
    if let Some(k) = freebsd {
        j = k;
    }
    // `(?: +(\S+)(?: ([^\s\[:]+)(?:\[([^\]\s]*)\])?:?)? ?)? ?(.*)`
    let (mut hostv, mut tag, mut pid) = (None, None, None);
    let (sp, n) = run(line, j, usize::MAX, |c| c == ' ');
    let (h1, hn) = run(line, sp, usize::MAX, not_space);
    if n > 0 && hn > 0 {
        hostv = Some((sp, &line[sp..h1]));
        j = h1;
        if let Some(t0) = lit(line, j, ' ') {
            let (t1, tn) = run(line, t0, usize::MAX, tag_char);
            if tn > 0 {
                tag = Some(&line[t0..t1]);
                j = t1;
                if let Some(p0) = lit(line, j, '[') {
                    let (p1, _) = run(line, p0, usize::MAX, |c| c != ']' && !is_space(c));
                    if let Some(e) = lit(line, p1, ']') {
                        pid = Some(&line[p0..p1]);
                        j = e;
                    }
                }
                if let Some(k) = lit(line, j, ':') {
                    j = k;
                }
            }
        }
        if let Some(k) = lit(line, j, ' ') {
            j = k;
        }
    }
    if let Some(k) = lit(line, j, ' ') {
        j = k;
    }
    Some(Bsd {
        pri,
        stamp: stamp?,
        host: hostv,
        tag,
        pid,
        msg: &line[j..],
    })
}

/// `_TAG_ONLY` on a host that is a tag: `\[?([^\s\[\]:]+)\]?(?:\[([^\]\s]*)\])?:?$`.
fn tag_only(h: &str) -> Option<(&str, Option<&str>)> {
    let mut i = lit(h, 0, '[').unwrap_or(0);
    let (t1, n) = run(h, i, usize::MAX, |c| {
        !is_space(c) && !matches!(c, '[' | ']' | ':')
    });
    if n == 0 {
        return None;
    }
    let tag = &h[i..t1];
    i = lit(h, t1, ']').unwrap_or(t1);
    let mut pid = None;
    if let Some(p0) = lit(h, i, '[') {
        let (p1, _) = run(h, p0, usize::MAX, |c| c != ']' && !is_space(c));
        if let Some(e) = lit(h, p1, ']') {
            pid = Some(&h[p0..p1]);
            i = e;
        }
    }
    i = lit(h, i, ':').unwrap_or(i);
    // `$`: the end (or before a final newline, which a `\S+` host never has)
    (i == h.len()).then_some((tag, pid))
}

/// `_TAG_CTX`: `(\w[\w-]*\([^\s()]*\)(?:<[^\s<>]*>)?)():$` (Dovecot's `auth(user,ip)<id>:`).
fn tag_ctx(h: &str) -> Option<&str> {
    let c = ch(h, 0)?;
    if !is_word(c) {
        return None;
    }
    let (k, _) = run(h, c.len_utf8(), usize::MAX, |c| is_word(c) || c == '-');
    let k = lit(h, k, '(')?;
    let (k, _) = run(h, k, usize::MAX, |c| !is_space(c) && c != '(' && c != ')');
    let mut k = lit(h, k, ')')?;
    if let Some(a) = lit(h, k, '<') {
        let (b, _) = run(h, a, usize::MAX, |c| !is_space(c) && c != '<' && c != '>');
        if let Some(e) = lit(h, b, '>') {
            k = e;
        }
    }
    let end = lit(h, k, ':')?;
    (end == h.len()).then_some(&h[..k])
}

/// `_NO_TIME`: `(?:<(\d{1,3})>)?([\w.-]+) ([\w./-]+)\[(\d+)\]: (.*)`
fn no_time(line: &str) -> Option<Bsd<'_>> {
    let (pri, i) = match pri_at(line, 0) {
        Some((p, e)) => (Some(p), e),
        None => (None, 0),
    };
    let (h1, n) = run(line, i, usize::MAX, |c| is_word(c) || c == '.' || c == '-');
    if n == 0 {
        return None;
    }
    let t0 = lit(line, h1, ' ')?;
    let (t1, n) = run(line, t0, usize::MAX, |c| {
        is_word(c) || matches!(c, '.' | '/' | '-')
    });
    if n == 0 {
        return None;
    }
    let p0 = lit(line, t1, '[')?;
    let p1 = between(line, p0, 1, usize::MAX, is_digit)?;
    let m = lit(line, p1, ']')?;
    let m = lit(line, m, ':')?;
    let m = lit(line, m, ' ')?;
    Some(Bsd {
        pri,
        stamp: Err(""),
        host: Some((i, &line[i..h1])),
        tag: Some(&line[t0..t1]),
        pid: Some(&line[p0..p1]),
        msg: &line[m..],
    })
}

/// `parse_syslog`: the fields, program and message of a syslog line, or None when the line
/// is not syslog-shaped.
pub fn parse_syslog(line: &str, times: &TimeParser) -> Option<Header> {
    match line.chars().next() {
        Some('<') => {
            if let Some(h) = rfc5424(line, times) {
                return Some(h);
            }
        }
        Some('@') => {
            if let Some(h) = tai64n(line) {
                return Some(h);
            }
        }
        _ => {}
    }
    if let Some(h) = common_iso(line, times) {
        return Some(h);
    }
    if let Some(h) = common(line, times) {
        return Some(h);
    }
    let mut bad_time = false;
    let (m, stamp) = match bsd_match(line) {
        Some(m) => {
            let stamp = match m.stamp {
                Err(iso) => times.iso(iso),
                Ok((mon, day, year, clock)) => {
                    let stamp = times.syslog(mon, day, clock, year);
                    if stamp.is_none() {
                        // not a month name: not a syslog line after all; a date that is
                        // none (`23:59:60`, `Apr 31`): the header all the same, tagged
                        if !MONTHS.contains(&mon.to_ascii_lowercase().as_str()) {
                            return None;
                        }
                        bad_time = true;
                    }
                    stamp
                }
            };
            (m, stamp)
        }
        None => (no_time(line)?, None),
    };
    let Bsd {
        pri,
        host: mut hostv,
        mut tag,
        mut pid,
        mut msg,
        ..
    } = m;
    if let Some((at, h)) = hostv {
        if h.ends_with(':') || h.contains('[') {
            // no hostname: what we took for it is the tag (`Feb 1 10:00:00 sshd[12]: msg`)
            let tm = tag_only(h).or_else(|| tag_ctx(h).map(|t| (t, Some(""))));
            let rest = &line[at + h.len()..];
            hostv = None;
            if let Some((t, p)) = tm {
                tag = Some(t);
                pid = p;
                msg = rest.strip_prefix(' ').unwrap_or(rest);
            }
        }
    }
    let mut fields = Map::default();
    if bad_time {
        fields.tag("_syslog_bad_timestamp");
    }
    if let Some((_, text)) = stamp {
        fields.push("@timestamp", Value::Str(text));
    }
    if let Some((_, h)) = hostv {
        fields.push("host", host(h));
    }
    if let Some(t) = tag {
        let pid = pid.filter(|p| !p.is_empty()).map(int_or_text);
        fields.push("process", process(t, pid));
    }
    if let Some(p) = pri {
        let mut syslog = Map::default();
        set_pri(&mut fields, &mut syslog, p);
        fields.push("log", obj(vec![("syslog", Value::Map(syslog))]));
    }
    Some(Header {
        fields,
        program: tag.map(str::to_string),
        message: msg.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamps::Zone;

    /// The fields as the oracle's generator prints them (json.dumps for the strings).
    fn render(v: &Value) -> String {
        match v {
            Value::Str(s) => json(s),
            Value::Int(n) => n.to_string(),
            Value::BigInt(d) => d.clone(),
            Value::List(items) => {
                let parts: Vec<String> = items.iter().map(render).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Map(m) => {
                let parts: Vec<String> =
                    m.0.iter()
                        .map(|(k, v)| format!("{k}: {}", render(v)))
                        .collect();
                format!("{{{}}}", parts.join(", "))
            }
            other => unreachable!("the header writes no {other:?}"),
        }
    }

    fn json(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// One line against what the Python parser gave for it (fields | program | message).
    fn case(what: &str, line: &str, year: Option<i64>, tz: &str, now: f64, want: &str) {
        let times = TimeParser::new(year, Zone::parse(tz).unwrap(), now);
        let got = match parse_syslog(line, &times) {
            None => "None".to_string(),
            Some(h) => format!(
                "{} | {} | {}",
                render(&Value::Map(h.fields)),
                h.program.as_deref().map_or("null".to_string(), json),
                json(&h.message)
            ),
        };
        assert_eq!(got, want, "{what}: {line}");
    }

    #[test]
    fn each_header_shape_as_python_parses_it() {
        case("bsd common", "Feb  5 14:34:10 host sshd[123]: Accepted publickey", None, "UTC", 1767225600.0, "{@timestamp: \"2025-02-05T14:34:10.000Z\", host: {hostname: \"host\", name: \"host\"}, process: {name: \"sshd\", pid: 123}} | \"sshd\" | \"Accepted publickey\"");
        case("bsd common, year from new year", "Dec 31 23:59:59 host cron: job", None, "Europe/Paris", 1767229200.0, "{@timestamp: \"2025-12-31T22:59:59.000Z\", host: {hostname: \"host\", name: \"host\"}, process: {name: \"cron\"}} | \"cron\" | \"job\"");
        case("rfc3339 common", "2024-08-26T01:33:38.572449+02:00 machine postfix/smtpd[60203]:  NOQUEUE: x", None, "UTC", 0.0, "{@timestamp: \"2024-08-25T23:33:38.572Z\", host: {hostname: \"machine\", name: \"machine\"}, process: {name: \"postfix/smtpd\", pid: 60203}} | \"postfix/smtpd\" | \"NOQUEUE: x\"");
        case("bsd with pri, year and fraction", "<38>Mar  7 2008 19:06:53,123: example tag: testmessage", None, "UTC", 0.0, "{@timestamp: \"2008-03-07T19:06:53.123Z\", host: {hostname: \"example\", name: \"example\"}, process: {name: \"tag\"}, log: {syslog: {priority: 38, facility: {code: 4, name: \"auth\"}, severity: {code: 6, name: \"info\"}}}} | \"tag\" | \"testmessage\"");
        case("bsd with bad pri", "<999>Mar 27 19:06:53 h sshd[12]: x", Some(2008), "UTC", 0.0, "{@timestamp: \"2008-03-27T19:06:53.000Z\", host: {hostname: \"h\", name: \"h\"}, process: {name: \"sshd\", pid: 12}, tags: [\"_syslog_bad_priority\"], log: {syslog: {priority: 999}}} | \"sshd\" | \"x\"");
        case("bsd iso with space and +hhmm", "2020-03-24 08:38:47.230409-0700  localhost sshd[2531]: Disconnected", None, "UTC", 0.0, "{@timestamp: \"2020-03-24T15:38:47.230Z\", host: {hostname: \"localhost\", name: \"localhost\"}, process: {name: \"sshd\", pid: 2531}} | \"sshd\" | \"Disconnected\"");
        case("bsd no host: tag taken back", "Feb 17 17:40:17 sshd[19725]: Connection from 192.0.2.10", Some(2010), "UTC", 0.0, "{@timestamp: \"2010-02-17T17:40:17.000Z\", process: {name: \"sshd\", pid: 19725}} | \"sshd\" | \"Connection from 192.0.2.10\"");
        case("bsd dovecot tag with context", "Feb 17 17:40:17 auth(u,192.0.2.1,sasl:login)<x1>: failed", Some(2010), "UTC", 0.0, "{@timestamp: \"2010-02-17T17:40:17.000Z\", process: {name: \"auth(u,192.0.2.1,sasl:login)<x1>\"}} | \"auth(u,192.0.2.1,sasl:login)<x1>\" | \"failed\"");
        case("freebsd -v", "Feb 17 17:40:17 <mail.info> mx postfix/qmgr[7]: removed", Some(2010), "UTC", 0.0, "{@timestamp: \"2010-02-17T17:40:17.000Z\", host: {hostname: \"mx\", name: \"mx\"}, process: {name: \"postfix/qmgr\", pid: 7}} | \"postfix/qmgr\" | \"removed\"");
        case("bsd leap second: the header without its time", "Dec 31 23:59:60 h sshd[1]: x", Some(2016), "UTC", 0.0, "{tags: [\"_syslog_bad_timestamp\"], host: {hostname: \"h\", name: \"h\"}, process: {name: \"sshd\", pid: 1}} | \"sshd\" | \"x\"");
        case("bsd impossible date and bad pri", "<999>Apr 31 10:00:00 h app: y", Some(2024), "UTC", 0.0, "{tags: [\"_syslog_bad_timestamp\", \"_syslog_bad_priority\"], host: {hostname: \"h\", name: \"h\"}, process: {name: \"app\"}, log: {syslog: {priority: 999}}} | \"app\" | \"y\"");
        case(
            "bsd not a month",
            "Abc 17 17:40:17 mx postfix/qmgr[7]: removed",
            Some(2010),
            "UTC",
            0.0,
            "None",
        );
        case("bsd unicode digits", "<\u{663}\u{668}>Feb \u{665} \u{661}\u{664}:\u{663}\u{664}:\u{661}\u{660} host tag[\u{664}\u{662}]: m", Some(2024), "UTC", 0.0, "{@timestamp: \"2024-02-05T14:34:10.000Z\", host: {hostname: \"host\", name: \"host\"}, process: {name: \"tag\", pid: 42}, log: {syslog: {priority: 38, facility: {code: 4, name: \"auth\"}, severity: {code: 6, name: \"info\"}}}} | \"tag\" | \"m\"");
        case("no time", "<13>host fail2ban[15699]: [postfix-sasl] Ban 192.0.2.3", None, "UTC", 0.0, "{host: {hostname: \"host\", name: \"host\"}, process: {name: \"fail2ban\", pid: 15699}, log: {syslog: {priority: 13, facility: {code: 1, name: \"user\"}, severity: {code: 5, name: \"notice\"}}}} | \"fail2ban\" | \"[postfix-sasl] Ban 192.0.2.3\"");
        case("tai64n", "@4000000050b7b6e10cd5ef6c sshd[12]: Failed password", None, "UTC", 0.0, "{@timestamp: \"2012-11-29T19:26:25.000Z\", process: {name: \"sshd\", pid: 12}} | \"sshd\" | \"Failed password\"");
        case(
            "tai64n past 9999",
            "@4fffffffffffffff0cd5ef6c sshd: x",
            None,
            "UTC",
            0.0,
            "{process: {name: \"sshd\"}} | \"sshd\" | \"x\"",
        );
        case("rfc5424 full", "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\\"x\\]\"][b y=\"1\"][b y=\"2\"] \u{feff}An application event", None, "UTC", 0.0, "{@timestamp: \"2003-10-11T22:14:15.003Z\", host: {hostname: \"mymachine.example.com\", name: \"mymachine.example.com\"}, process: {name: \"evntslog\", pid: 42}, log: {syslog: {version: 1, priority: 165, facility: {code: 20, name: \"local4\"}, severity: {code: 5, name: \"notice\"}, hostname: \"mymachine.example.com\", appname: \"evntslog\", procid: 42, msgid: \"ID47\", structured_data: {exampleSDID@32473: {iut: \"3\", eventSource: \"App\\\"x]\"}, b: {y: \"2\"}}}}} | \"evntslog\" | \"An application event\"");
        case("rfc5424 nil values, msg glued", "<0>1 - - - - - [a x=\"1\"]msg", None, "UTC", 0.0, "{log: {syslog: {version: 1, priority: 0, facility: {code: 0, name: \"kern\"}, severity: {code: 0, name: \"emerg\"}, structured_data: {a: {x: \"1\"}}}}} | null | \"msg\"");
        case("rfc5424 procid text, dash sd", "<191>12 2024-02-29 10:00:00 h app 12a - - m", None, "Europe/Paris", 0.0, "{@timestamp: \"2024-02-28T23:00:00.000Z\", host: {hostname: \"10:00:00\", name: \"10:00:00\"}, process: {name: \"h\", pid: \"app\"}, log: {syslog: {version: 12, priority: 191, facility: {code: 23, name: \"local7\"}, severity: {code: 7, name: \"debug\"}, hostname: \"10:00:00\", appname: \"h\", procid: \"app\", msgid: \"12a\"}}} | \"h\" | \"- m\"");
        case(
            "rfc5424 bad sd: other shapes",
            "<13>1 - h app - - [a x=\"1\" m",
            None,
            "UTC",
            0.0,
            "None",
        );
        case("not syslog", "hello world", None, "UTC", 0.0, "None");
    }

    #[test]
    fn structured_data_keeps_python_dict_semantics() {
        let sd = structured_data(r#"[a x="1" x="2"][b][a y="\]"]junk[c z="[d w=\"1\"]"]"#);
        assert_eq!(
            render(&Value::Map(sd)),
            r#"{a: {y: "]"}, b: {}, c: {z: "[d w=\"1\"]"}}"#
        );
    }
}
