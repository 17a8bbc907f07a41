//! RELP server side, as librelp 1.11 (rsyslog's omrelp) speaks it (sans-IO).
//!
//! `RelpServer` is one TCP connection's state. Feed it bytes with `receive_data`, get
//! events back through a callback (a `Syslog` message borrows from the input or the
//! parser's buffer); answer every event that carries a txnr with exactly one reply
//! method, which returns the bytes to write (`answer_open`, `ack` / `nak`,
//! `answer_close`). The decisions (txnr ordering of replies, every protocol error fatal,
//! the txnr a `ProtocolError` owes a 500, oversize refused at the header, the open offers
//! checked as librelp does, one trailing LF stripped from `syslog` data) are described in
//! `streams/protocols/relp.py`'s module doc, which this implements.
//!
//! Frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::framing::strip_eol;
use crate::pyunicode;

pub const DEFAULT_MAX_FRAME: usize = 128 * 1024;
pub const MAX_TXNR: u32 = 999_999_999;
pub const RELP_VERSION: u32 = 0;

const LF: u8 = b'\n';
const SP: u8 = b' ';
const MAX_DIGITS: usize = 9;
const MAX_COMMAND: usize = 32;

pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

/// `TXNR SP COMMAND SP DATALEN [SP DATA] LF`, appended to `out`.
pub fn build_frame_into(out: &mut Vec<u8>, txnr: i64, command: &str, data: &[u8]) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(num.format(txnr).as_bytes());
    out.push(SP);
    out.extend_from_slice(command.as_bytes());
    out.push(SP);
    out.extend_from_slice(num.format(data.len()).as_bytes());
    if !data.is_empty() {
        out.push(SP);
        out.extend_from_slice(data);
    }
    out.push(LF);
}

pub fn build_frame(txnr: i64, command: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 24);
    build_frame_into(&mut out, txnr, command, data);
    out
}

/// `name=value` lines (LF separated; the spec's leading LF tolerated), in order; a name
/// given twice keeps its first place and its last value (as a Python dict built in order).
pub fn parse_offers(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    let mut offers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        match offers.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => offers.push((name.to_string(), value.to_string())),
        }
    }
    offers
}

fn offer<'a>(offers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    offers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Why an open is refused (librelp's wording where it has one), or None.
fn refusal(offers: &[(String, String)]) -> Option<String> {
    let Some(version) = offer(offers, "relp_version") else {
        return Some("relp_version offer missing".into());
    };
    // Python's `version.strip().isdigit()`
    let v = version.trim_matches(pyunicode::is_space);
    if v.is_empty() || !v.chars().all(pyunicode::is_py_digit) {
        let head: String = version.chars().take(20).collect();
        return Some(format!(
            "unsupported relp_version {}",
            pyunicode::repr_str(&head)
        ));
    }
    if !offer(offers, "commands")
        .unwrap_or("")
        .split(',')
        .any(|c| c == "syslog")
    {
        return Some("required command not supported by client".into());
    }
    None
}

/// Python's `repr()` of bytes (how the garbage in a header is shown).
pub fn repr_bytes(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::with_capacity(b.len() + 3);
    s.push('b');
    s.push(quote);
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

/// An event of the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Open {
        txnr: u32,
        offers: Vec<(String, String)>,
    },
    Syslog {
        txnr: u32,
        message: &'a [u8],
    },
    Close {
        txnr: u32,
    },
    /// Always fatal. `txnr` is set when that txnr is owed a reply (nak it).
    ProtocolError {
        reason: String,
        txnr: Option<u32>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rx {
    Txnr,
    Command,
    Datalen,
    Data,
    Trailer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    AwaitOpen,
    Open,
    Closing,
    Failed,
}

/// A reply that cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyError(pub String);

/// One RELP session, server side (sans-IO).
#[derive(Debug)]
pub struct RelpServer {
    pub max_frame: usize,
    pub software: String,
    session: Session,
    rx: Rx,
    /// header field being read
    field: Vec<u8>,
    /// DATA being read (<= max_frame)
    data: Vec<u8>,
    txnr: u32,
    command: String,
    datalen: usize,
    /// next txnr the client must use
    pub expected: u32,
    open_txnr: Option<u32>,
    /// txnrs owed a reply, in receive order
    order: VecDeque<u32>,
    owed: HashSet<u32>,
    /// replies held back behind an older unanswered txnr
    ready: HashMap<u32, Vec<u8>>,
}

impl RelpServer {
    pub fn new(max_frame: usize, software: String) -> Self {
        RelpServer {
            max_frame,
            software,
            session: Session::AwaitOpen,
            rx: Rx::Txnr,
            field: Vec::new(),
            data: Vec::new(),
            txnr: 0,
            command: String::new(),
            datalen: 0,
            expected: 1,
            open_txnr: None,
            order: VecDeque::new(),
            owed: HashSet::new(),
            ready: HashMap::new(),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.session, Session::Open | Session::Closing)
    }

    /// A fatal protocol error happened: flush replies and close.
    pub fn failed(&self) -> bool {
        self.session == Session::Failed
    }

    /// The client sent `close`: answer it, then close the socket.
    pub fn closing(&self) -> bool {
        self.session == Session::Closing
    }

    /// Txnrs received and not yet sent a reply, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = u32> + '_ {
        self.order.iter().copied()
    }

    pub fn buffered(&self) -> usize {
        self.field.len() + self.data.len()
    }

    // -- input ---------------------------------------------------------------------------

    pub fn receive_data<F: FnMut(Event<'_>)>(&mut self, data: &[u8], out: &mut F) {
        let (mut i, n) = (0, data.len());
        while i < n {
            match self.session {
                Session::Failed => break, // dead session: the rest is ignored
                Session::Closing => {
                    self.fail(out, "data after close".into(), None);
                    break;
                }
                _ => {}
            }
            let rx = self.rx;
            if rx == Rx::Txnr && self.field.is_empty() {
                let j = self.whole_frame(data, i, out);
                if j > i {
                    i = j;
                    continue;
                }
            }
            if rx == Rx::Data {
                let take = (self.datalen - self.data.len()).min(n - i);
                self.data.extend_from_slice(&data[i..i + take]);
                i += take;
                if self.data.len() == self.datalen {
                    self.rx = Rx::Trailer;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            match rx {
                Rx::Txnr => {
                    if b.is_ascii_digit() && self.field.len() < MAX_DIGITS {
                        self.field.push(b);
                    } else if b == SP && !self.field.is_empty() && digits(&self.field) > 0 {
                        self.txnr = digits(&self.field) as u32;
                        self.field.clear();
                        self.rx = Rx::Command;
                    } else {
                        let reason = format!("invalid transaction number: {}", self.shown(b));
                        self.fail(out, reason, None);
                    }
                }
                Rx::Command => {
                    if b.is_ascii_alphabetic() && self.field.len() < MAX_COMMAND {
                        self.field.push(b);
                    } else if b == SP && !self.field.is_empty() {
                        self.command = String::from_utf8_lossy(&self.field).into_owned();
                        self.field.clear();
                        self.rx = Rx::Datalen;
                    } else {
                        let reason = format!("invalid command: {}", self.shown(b));
                        self.fail(out, reason, None);
                    }
                }
                Rx::Datalen => {
                    if b.is_ascii_digit() && self.field.len() < MAX_DIGITS {
                        self.field.push(b);
                        continue;
                    }
                    let datalen = if self.field.is_empty() {
                        None
                    } else {
                        Some(digits(&self.field))
                    };
                    self.field.clear();
                    match datalen {
                        Some(0) if b == LF => {
                            if self.header_done(out) {
                                self.dispatch(out, &[]);
                            }
                        }
                        Some(len) if len > 0 && b == SP => {
                            self.datalen = len;
                            if self.header_done(out) {
                                if len > self.max_frame {
                                    let reason = format!(
                                        "frame too long: {len} octets, maximum {}",
                                        self.max_frame
                                    );
                                    self.fail(out, reason, Some(self.txnr));
                                } else {
                                    self.rx = Rx::Data;
                                }
                            }
                        }
                        _ => {
                            let reason = format!("invalid data length in frame {}", self.txnr);
                            self.fail(out, reason, None);
                        }
                    }
                }
                Rx::Trailer => {
                    if b == LF {
                        let body = std::mem::take(&mut self.data);
                        self.dispatch(out, &body);
                        self.data = body;
                        self.data.clear();
                    } else {
                        let reason = format!("frame {} not terminated by LF", self.txnr);
                        self.fail(out, reason, Some(self.txnr));
                    }
                }
                Rx::Data => unreachable!(),
            }
        }
    }

    /// The header is read: check the txnr sequence and register it as owed a reply.
    fn header_done<F: FnMut(Event<'_>)>(&mut self, out: &mut F) -> bool {
        if self.txnr != self.expected {
            let reason = format!(
                "transaction number {} out of sequence, expected {}",
                self.txnr, self.expected
            );
            self.fail(out, reason, None);
            return false;
        }
        self.expected = next_txnr(self.txnr);
        self.order.push_back(self.txnr);
        self.owed.insert(self.txnr);
        true
    }

    /// The fast path: a frame with data that lies whole in `data` from `i`, its header read
    /// at once; returns the position after it. Anything else (a frame split by the read,
    /// without data, oversized, malformed) returns `i`, for the byte-wise path to judge.
    fn whole_frame<F: FnMut(Event<'_>)>(&mut self, data: &[u8], i: usize, out: &mut F) -> usize {
        let n = data.len();
        let find_sp = |from: usize, width: usize| {
            data[from.min(n)..n.min(from + width)]
                .iter()
                .position(|&b| b == SP)
                .map(|k| from + k)
        };
        let Some(sp1) = find_sp(i, MAX_DIGITS + 1) else {
            return i;
        };
        if sp1 == i || !data[i..sp1].iter().all(u8::is_ascii_digit) {
            return i;
        }
        let Some(sp2) = find_sp(sp1 + 1, MAX_COMMAND + 1) else {
            return i;
        };
        if sp2 == sp1 + 1 || !data[sp1 + 1..sp2].iter().all(u8::is_ascii_alphabetic) {
            return i;
        }
        let Some(sp3) = find_sp(sp2 + 1, MAX_DIGITS + 1) else {
            return i;
        };
        if sp3 == sp2 + 1 || !data[sp2 + 1..sp3].iter().all(u8::is_ascii_digit) {
            return i;
        }
        let (txnr, datalen) = (digits(&data[i..sp1]), digits(&data[sp2 + 1..sp3]));
        let stop = sp3 + 1 + datalen;
        if txnr == 0 || datalen == 0 || datalen > self.max_frame || stop >= n || data[stop] != LF {
            return i;
        }
        self.txnr = txnr as u32;
        // ASCII letters: valid UTF-8
        self.command = String::from_utf8_lossy(&data[sp1 + 1..sp2]).into_owned();
        if self.header_done(out) {
            self.dispatch(out, &data[sp3 + 1..stop]);
        }
        stop + 1
    }

    fn dispatch<F: FnMut(Event<'_>)>(&mut self, out: &mut F, data: &[u8]) {
        let txnr = self.txnr;
        self.data.clear();
        self.rx = Rx::Txnr;
        if self.session == Session::AwaitOpen {
            if self.command != "open" {
                let reason = format!("protocol error: {} before open", self.command);
                self.fail(out, reason, Some(txnr));
                return;
            }
            let offers = parse_offers(data);
            if let Some(reason) = refusal(&offers) {
                self.fail(out, reason, Some(txnr));
                return;
            }
            self.session = Session::Open;
            self.open_txnr = Some(txnr);
            out(Event::Open { txnr, offers });
            return;
        }
        match self.command.as_str() {
            "syslog" => out(Event::Syslog {
                txnr,
                message: strip_eol(data),
            }),
            "close" => {
                self.session = Session::Closing;
                out(Event::Close { txnr });
            }
            "open" => self.fail(
                out,
                "protocol error: connection already open".into(),
                Some(txnr),
            ),
            other => {
                let reason = format!("command not supported: {other}");
                self.fail(out, reason, Some(txnr));
            }
        }
    }

    fn fail<F: FnMut(Event<'_>)>(&mut self, out: &mut F, reason: String, txnr: Option<u32>) {
        self.session = Session::Failed;
        self.field.clear();
        self.data.clear();
        out(Event::ProtocolError { reason, txnr });
    }

    /// The header field read so far and the byte that broke it, as Python shows bytes.
    fn shown(&self, b: u8) -> String {
        let mut v = self.field.clone();
        v.push(b);
        repr_bytes(&v[v.len().saturating_sub(40)..])
    }

    // -- output --------------------------------------------------------------------------

    /// `200 OK` and our offers for the open command (librelp requires the offers); the
    /// open's txnr when `txnr` is None.
    pub fn answer_open(&mut self, txnr: Option<i64>) -> Result<Vec<u8>, ReplyError> {
        let open = self.open_txnr.map(i64::from);
        let txnr = txnr.or(open);
        match txnr {
            Some(t) if Some(t) == open => {
                let offers = format!(
                    "200 OK\nrelp_version={RELP_VERSION}\nrelp_software={}\ncommands=syslog",
                    self.software
                );
                self.reply(t, offers.as_bytes())
            }
            _ => Err(ReplyError(format!(
                "txnr {} is not the open command",
                txnr.map_or("None".to_string(), |t| t.to_string())
            ))),
        }
    }

    /// `TXNR rsp 6 200 OK`: the message is taken over.
    pub fn ack(&mut self, txnr: i64) -> Result<Vec<u8>, ReplyError> {
        self.reply(txnr, b"200 OK")
    }

    /// `TXNR rsp N 500 reason`: the client keeps (and later resends) the message. The
    /// reason's whitespace runs become single spaces (no LF may enter the text).
    pub fn nak(&mut self, txnr: i64, reason: &str) -> Result<Vec<u8>, ReplyError> {
        let words: Vec<&str> = reason
            .split(pyunicode::is_space)
            .filter(|w| !w.is_empty())
            .collect();
        let reason = if words.is_empty() {
            "error".to_string()
        } else {
            words.join(" ")
        };
        let mut payload = b"500 ".to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.reply(txnr, &payload)
    }

    /// librelp answers `close` with an empty rsp (`TXNR rsp 0`).
    pub fn answer_close(&mut self, txnr: i64) -> Result<Vec<u8>, ReplyError> {
        self.reply(txnr, b"")
    }

    /// The `serverclose` hint (txnr 0, no reply expected), before a server-side close.
    pub fn server_close() -> Vec<u8> {
        build_frame(0, "serverclose", b"")
    }

    /// Whether `txnr` awaits a reply.
    pub fn owes(&self, txnr: i64) -> bool {
        u32::try_from(txnr).is_ok_and(|t| self.owed.contains(&t))
    }

    fn reply(&mut self, txnr: i64, payload: &[u8]) -> Result<Vec<u8>, ReplyError> {
        let t = match u32::try_from(txnr) {
            Ok(t) if self.owed.remove(&t) => t,
            _ => return Err(ReplyError(format!("txnr {txnr} is not awaiting a reply"))),
        };
        if self.order.front() == Some(&t) {
            // the common case: the oldest one answered, nothing held back behind it
            self.order.pop_front();
            let mut out = build_frame(txnr, "rsp", payload);
            while let Some(next) = self.order.front() {
                match self.ready.remove(next) {
                    Some(r) => {
                        out.extend_from_slice(&r);
                        self.order.pop_front();
                    }
                    None => break,
                }
            }
            return Ok(out);
        }
        self.ready.insert(t, build_frame(txnr, "rsp", payload));
        Ok(Vec::new())
    }
}

/// The value of 1..=9 ASCII digits.
fn digits(d: &[u8]) -> usize {
    d.iter().fold(0, |v, &c| v * 10 + usize::from(c - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &[u8] = b"1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";

    #[derive(Debug, PartialEq, Eq)]
    enum E {
        Open(u32),
        Syslog(u32, Vec<u8>),
        Close(u32),
        Err(String, Option<u32>),
    }

    fn feed(conn: &mut RelpServer, data: &[u8]) -> Vec<E> {
        let mut v = Vec::new();
        conn.receive_data(data, &mut |e| {
            v.push(match e {
                Event::Open { txnr, .. } => E::Open(txnr),
                Event::Syslog { txnr, message } => E::Syslog(txnr, message.to_vec()),
                Event::Close { txnr } => E::Close(txnr),
                Event::ProtocolError { reason, txnr } => E::Err(reason, txnr),
            })
        });
        v
    }

    fn all_ways(data: &[u8], max_frame: usize) -> Vec<E> {
        let whole = feed(&mut RelpServer::new(max_frame, "x".into()), data);
        let mut c = RelpServer::new(max_frame, "x".into());
        let mut bytes = Vec::new();
        for b in data.chunks(1) {
            bytes.extend(feed(&mut c, b));
        }
        assert_eq!(bytes, whole);
        for k in 0..=data.len() {
            let mut c = RelpServer::new(max_frame, "x".into());
            let mut ev = feed(&mut c, &data[..k]);
            ev.extend(feed(&mut c, &data[k..]));
            assert_eq!(ev, whole, "split {k}");
        }
        whole
    }

    #[test]
    fn session() {
        let mut data = OPEN.to_vec();
        data.extend_from_slice(b"2 syslog 6 <13>a\n\n3 syslog 0\n4 close 0\n");
        assert_eq!(
            all_ways(&data, DEFAULT_MAX_FRAME),
            vec![
                E::Open(1),
                E::Syslog(2, b"<13>a".to_vec()),
                E::Syslog(3, vec![]),
                E::Close(4)
            ]
        );
        let mut c = RelpServer::new(DEFAULT_MAX_FRAME, "streams,0.1.0,-".into());
        feed(&mut c, &data);
        assert!(c.closing() && c.is_open());
        assert_eq!(c.ack(3).unwrap(), b"");
        assert_eq!(c.answer_close(4).unwrap(), b"");
        assert_eq!(
            c.answer_open(None).unwrap(),
            b"1 rsp 67 200 OK\nrelp_version=0\nrelp_software=streams,0.1.0,-\ncommands=syslog\n"
        );
        assert_eq!(
            c.nak(2, " no\n room ").unwrap(),
            b"2 rsp 11 500 no room\n3 rsp 6 200 OK\n4 rsp 0\n"
        );
        assert_eq!(c.unacked().count(), 0);
        assert!(c.ack(2).is_err());
    }

    #[test]
    fn errors() {
        let mut data = OPEN.to_vec();
        data.extend_from_slice(b"2 syslog 101 ");
        assert_eq!(
            all_ways(&data, 100),
            vec![
                E::Open(1),
                E::Err("frame too long: 101 octets, maximum 100".into(), Some(2))
            ]
        );
        let mut data = OPEN.to_vec();
        data.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            all_ways(&data, 100)[1],
            E::Err("invalid transaction number: b'G'".into(), None)
        );
        assert_eq!(
            all_ways(b"5 syslog 1 x\n", 100),
            vec![E::Err(
                "transaction number 5 out of sequence, expected 1".into(),
                None
            )]
        );
        assert_eq!(
            all_ways(b"1 syslog 1 x\n", 100),
            vec![E::Err("protocol error: syslog before open".into(), Some(1))]
        );
        assert_eq!(
            all_ways(
                &build_frame(1, "open", b"relp_version=x\ncommands=syslog"),
                100
            ),
            vec![E::Err("unsupported relp_version 'x'".into(), Some(1))]
        );
    }

    #[test]
    fn python_reprs() {
        assert_eq!(repr_bytes(b"a'\x00\xff\\"), "b\"a'\\x00\\xff\\\\\"");
        assert_eq!(repr_bytes(b"'\""), "b'\\'\"'");
        assert_eq!(
            pyunicode::repr_str("a'\u{7f}\u{e9}\u{ad}\n"),
            "\"a'\\x7f\u{e9}\\xad\\n\""
        );
    }

    #[test]
    fn offers() {
        assert_eq!(
            parse_offers(b"flag\na=b=c\na=d"),
            vec![("flag".into(), "".into()), ("a".into(), "d".into())]
        );
        assert!(refusal(&parse_offers(b"relp_version= \xc2\xb2 \ncommands=syslog")).is_none());
        assert_eq!(next_txnr(MAX_TXNR), 1);
        assert_eq!(build_frame(0, "serverclose", b""), b"0 serverclose 0\n");
    }
}
