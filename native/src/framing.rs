//! Syslog framing (sans-IO): RFC 6587 over TCP (LF or octet counting), one message per
//! UDP datagram, and the text of a message as the listeners hand it on.
//!
//! `SyslogFramer` is one TCP connection's state: feed it whatever the socket returned
//! with `receive_data`, get complete frames back through a callback (a frame borrows from
//! the input or the framer's buffer: nothing is copied on the way); call `end_of_stream`
//! at EOF. The decisions (each with its reason) are in `streams/protocols/framing.py`'s
//! module doc, which this implements:
//! - octet counting only when the connection starts with 1..9 digits, ONE space and `<`,
//!   decided once per connection; nothing is delivered until the first bytes decide;
//! - memory bounded: a message longer than `max_size` comes out as its first `max_size`
//!   bytes flagged truncated, the rest skipped as it streams by; the buffer never holds
//!   more than `max_size + 2` bytes;
//! - one line end (LF, or CR LF) stripped from every message; empty messages dropped;
//! - a malformed octet count is a framing error: the bytes up to the next LF come out as
//!   one frame with the error, and a count is expected again after it; a stray CR/LF where
//!   a count is expected is skipped;
//! - at EOF a partial message comes out flagged unterminated (with an error when an octet
//!   count promised more).

use std::borrow::Cow;

pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;
/// Above this a count is taken for garbage rather than a huge message.
pub const DEFAULT_MAX_COUNT: usize = 100 * 1024 * 1024;
const MAX_DIGITS: usize = 9;
pub const MIN_MAX_SIZE: usize = 16;

const LF: u8 = b'\n';
const CR: u8 = b'\r';
const SP: u8 = b' ';
const LT: u8 = b'<';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Lf,
    OctetCounted,
}

impl Framing {
    pub fn name(self) -> &'static str {
        match self {
            Framing::Lf => "lf",
            Framing::OctetCounted => "octet-counted",
        }
    }
}

/// One message (its line end stripped) and what went wrong with it, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub data: &'a [u8],
    /// longer than max_size: this is the first max_size bytes
    pub truncated: bool,
    /// the stream ended before the message's end
    pub unterminated: bool,
    /// a framing error: `data` is what was skipped to resync
    pub error: Option<&'a str>,
}

impl<'a> FrameRef<'a> {
    fn new(data: &'a [u8]) -> Self {
        FrameRef {
            data,
            truncated: false,
            unterminated: false,
            error: None,
        }
    }
}

/// Remove exactly one trailing LF, and a CR just before it.
pub fn strip_eol(data: &[u8]) -> &[u8] {
    match data {
        [rest @ .., CR, LF] => rest,
        [rest @ .., LF] => rest,
        _ => data,
    }
}

/// UDP: the datagram is the message. Same line-end strip and size limit as TCP; None for
/// an empty datagram.
pub fn datagram_frame(data: &[u8], max_size: usize) -> Option<FrameRef<'_>> {
    let msg = strip_eol(data);
    if msg.is_empty() {
        None
    } else if msg.len() > max_size {
        Some(FrameRef {
            truncated: true,
            ..FrameRef::new(&msg[..max_size])
        })
    } else {
        Some(FrameRef::new(msg))
    }
}

/// The framing a connection starting with `prefix` uses, or None if it cannot be told yet
/// (only digits, or digits and a space so far).
pub fn detect_framing(prefix: &[u8]) -> Option<Framing> {
    let n = prefix.len();
    let mut digits = 0;
    while digits < n && digits <= MAX_DIGITS && prefix[digits].is_ascii_digit() {
        digits += 1;
    }
    if digits == 0 || digits > MAX_DIGITS {
        return if n > 0 { Some(Framing::Lf) } else { None };
    }
    if digits == n {
        return None;
    }
    if prefix[digits] != SP {
        return Some(Framing::Lf);
    }
    if digits + 1 == n {
        return None;
    }
    Some(if prefix[digits + 1] == LT {
        Framing::OctetCounted
    } else {
        Framing::Lf
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Undecided,
    Line,
    Discard,
    Count,
    Body,
    Skip,
}

#[derive(Debug)]
pub struct EofError;

/// RFC 6587 stream framing for one TCP connection (sans-IO).
#[derive(Debug)]
pub struct SyslogFramer {
    pub max_size: usize,
    pub max_count: usize,
    pub framing: Option<Framing>,
    state: State,
    buf: Vec<u8>,
    /// set while resyncing after a bad count
    line_error: Option<String>,
    /// octets of the current counted message still due
    remaining: usize,
    /// how many of them are stored
    keep: usize,
    eof: bool,
}

/// Why a framer cannot be made.
#[derive(Debug)]
pub struct MaxSizeTooSmall;

impl SyslogFramer {
    pub fn new(max_size: usize, max_count: usize) -> Result<Self, MaxSizeTooSmall> {
        if max_size < MIN_MAX_SIZE {
            return Err(MaxSizeTooSmall);
        }
        Ok(SyslogFramer {
            max_size,
            max_count: max_count.max(max_size),
            framing: None,
            state: State::Undecided,
            buf: Vec::new(),
            line_error: None,
            remaining: 0,
            keep: 0,
            eof: false,
        })
    }

    /// Bytes held between calls (bounded by max_size + 2).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Feed what the socket returned; each complete frame goes to `out`.
    pub fn receive_data<F: FnMut(FrameRef<'_>)>(
        &mut self,
        data: &[u8],
        out: &mut F,
    ) -> Result<(), EofError> {
        if self.eof {
            return Err(EofError);
        }
        if self.state == State::Undecided {
            // Undecided means at most 9 digits and a space are held, so 11 bytes decide.
            let mut head = std::mem::take(&mut self.buf);
            let held = head.len();
            head.extend_from_slice(&data[..data.len().min(11)]);
            let Some(mode) = detect_framing(&head) else {
                self.buf = head;
                return Ok(());
            };
            self.framing = Some(mode);
            self.state = match mode {
                Framing::OctetCounted => State::Count,
                Framing::Lf => State::Line,
            };
            if held > 0 {
                head.truncate(held);
                head.extend_from_slice(data);
                self.consume(&head, out);
                return Ok(());
            }
        }
        self.consume(data, out);
        Ok(())
    }

    /// The connection closed: deliver what is left, flagged.
    pub fn end_of_stream<F: FnMut(FrameRef<'_>)>(&mut self, out: &mut F) {
        if self.eof {
            return;
        }
        self.eof = true;
        let buf = std::mem::take(&mut self.buf);
        let mut state = self.state;
        let max_size = self.max_size;
        if state == State::Undecided && !buf.is_empty() {
            self.framing = Some(Framing::Lf);
            state = State::Line;
        }
        let line_error = self.line_error.take();
        match state {
            State::Line if !buf.is_empty() || line_error.is_some() => out(FrameRef {
                data: &buf[..buf.len().min(max_size)],
                truncated: buf.len() > max_size,
                unterminated: true,
                error: line_error.as_deref(),
            }),
            State::Count if !buf.is_empty() => out(FrameRef {
                data: &buf,
                truncated: false,
                unterminated: true,
                error: Some("stream ended inside an octet count"),
            }),
            State::Body => {
                let count = buf.len() + self.remaining;
                let error = format!(
                    "stream ended inside an octet-counted message ({} octets missing)",
                    self.remaining
                );
                out(FrameRef {
                    data: &buf[..buf.len().min(max_size)],
                    truncated: count > max_size + 2 || buf.len() > max_size,
                    unterminated: true,
                    error: Some(&error),
                })
            }
            _ => {}
        }
    }

    fn after_line(&self) -> State {
        if self.framing == Some(Framing::OctetCounted) {
            State::Count
        } else {
            State::Line
        }
    }

    fn emit_line<F: FnMut(FrameRef<'_>)>(&mut self, line: &[u8], truncated: bool, out: &mut F) {
        let error = self.line_error.take();
        if !line.is_empty() || error.is_some() {
            out(FrameRef {
                data: line,
                truncated,
                unterminated: false,
                error: error.as_deref(),
            });
        }
    }

    fn consume<F: FnMut(FrameRef<'_>)>(&mut self, data: &[u8], out: &mut F) {
        let (mut i, n) = (0, data.len());
        let max_size = self.max_size;
        while i < n {
            match self.state {
                State::Line => {
                    let j = memchr(LF, &data[i..]).map(|k| i + k);
                    let room = max_size + 1 - self.buf.len(); // content + a CR before the LF
                    let Some(j) = j else {
                        if n - i <= room {
                            self.buf.extend_from_slice(&data[i..]);
                            return;
                        }
                        // No LF within max_size + 1 bytes: too long whatever follows.
                        self.buf.extend_from_slice(&data[i..i + room]);
                        i += room;
                        let buf = std::mem::take(&mut self.buf);
                        self.emit_line(&buf[..max_size], true, out);
                        self.buf = buf;
                        self.buf.clear();
                        self.state = State::Discard;
                        continue;
                    };
                    let take = (j - i).min(room);
                    let mut truncated = take < j - i;
                    let held = std::mem::take(&mut self.buf);
                    let mut joined;
                    let mut line: &[u8] = if held.is_empty() {
                        joined = held;
                        &data[i..i + take]
                    } else {
                        joined = held;
                        joined.extend_from_slice(&data[i..i + take]);
                        &joined
                    };
                    if !truncated && line.last() == Some(&CR) {
                        line = &line[..line.len() - 1];
                    }
                    if line.len() > max_size {
                        line = &line[..max_size];
                        truncated = true;
                    }
                    i = j + 1;
                    self.emit_line(line, truncated, out);
                    joined.clear();
                    self.buf = joined;
                    self.state = self.after_line();
                }
                State::Discard => match memchr(LF, &data[i..]) {
                    None => return,
                    Some(k) => {
                        i += k + 1;
                        self.state = self.after_line();
                    }
                },
                State::Count => {
                    if self.buf.is_empty() {
                        i = self.counted(data, i, out);
                        if i == n || self.state != State::Count {
                            continue;
                        }
                    }
                    let b = data[i];
                    if b.is_ascii_digit() {
                        if self.buf.len() == MAX_DIGITS {
                            self.bad_count(format!("octet count longer than {MAX_DIGITS} digits"));
                            continue;
                        }
                        self.buf.push(b);
                        i += 1;
                    } else if b == SP && !self.buf.is_empty() {
                        let count = digits_value(&self.buf);
                        if count == 0 || count > self.max_count {
                            self.bad_count(format!("invalid octet count {count}"));
                            continue;
                        }
                        self.buf.clear();
                        i += 1;
                        self.begin_body(count);
                    } else if (b == LF || b == CR) && self.buf.is_empty() {
                        i += 1; // a line end outside the count: no data in it
                    } else if b == SP {
                        self.bad_count("empty octet count".to_string());
                    } else {
                        self.bad_count(format!("byte 0x{b:02x} in octet count"));
                    }
                }
                State::Body => {
                    let take = (self.keep - self.buf.len()).min(n - i);
                    self.buf.extend_from_slice(&data[i..i + take]);
                    i += take;
                    self.remaining -= take;
                    if self.buf.len() < self.keep {
                        return;
                    }
                    let buf = std::mem::take(&mut self.buf);
                    if self.remaining == 0 {
                        self.emit_counted(&buf, out);
                        self.state = State::Count;
                    } else {
                        out(FrameRef {
                            truncated: true,
                            ..FrameRef::new(&buf)
                        });
                        self.state = State::Skip;
                    }
                    self.buf = buf;
                    self.buf.clear();
                }
                State::Skip => {
                    let take = self.remaining.min(n - i);
                    i += take;
                    self.remaining -= take;
                    if self.remaining == 0 {
                        self.state = State::Count;
                    }
                }
                State::Undecided => unreachable!("decided before consume"),
            }
        }
    }

    /// The fast path of octet counting: the whole messages from `i` on, each body sliced
    /// out of `data` without going through the buffer. Returns where it stopped: at a
    /// count it cannot take at once (split by the read, a stray line end, malformed: the
    /// byte-wise path decides) or inside a body, with the state set to `Body`.
    fn counted<F: FnMut(FrameRef<'_>)>(&mut self, data: &[u8], mut i: usize, out: &mut F) -> usize {
        let n = data.len();
        let (max_size, max_count) = (self.max_size, self.max_count);
        while i < n {
            let window = &data[i..n.min(i + MAX_DIGITS + 1)];
            let Some(k) = window.iter().position(|&b| b == SP) else {
                return i;
            };
            if k == 0 || !window[..k].iter().all(u8::is_ascii_digit) {
                return i;
            }
            let count = digits_value(&window[..k]);
            if count == 0 || count > max_count {
                return i;
            }
            i += k + 1;
            let end = i + count;
            if end > n || count > max_size + 2 {
                self.begin_body(count);
                return i;
            }
            self.emit_counted(&data[i..end], out);
            i = end;
        }
        i
    }

    fn begin_body(&mut self, count: usize) {
        self.remaining = count;
        // A message up to max_size plus its CRLF is stored whole (the strip may bring it
        // under the limit); a longer one only up to max_size.
        self.keep = if count <= self.max_size + 2 {
            count
        } else {
            self.max_size
        };
        self.state = State::Body;
    }

    fn emit_counted<F: FnMut(FrameRef<'_>)>(&self, raw: &[u8], out: &mut F) {
        let msg = strip_eol(raw);
        if msg.len() > self.max_size {
            out(FrameRef {
                truncated: true,
                ..FrameRef::new(&msg[..self.max_size])
            });
        } else if !msg.is_empty() {
            out(FrameRef::new(msg));
        }
    }

    fn bad_count(&mut self, reason: String) {
        // Keep what was read of the count; the rest of the line joins it in Line state.
        self.line_error = Some(reason);
        self.state = State::Line;
    }
}

/// The value of 1..=9 ASCII digits.
fn digits_value(digits: &[u8]) -> usize {
    digits
        .iter()
        .fold(0, |v, &d| v * 10 + usize::from(d - b'0'))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The problems `decode_message` found, as tags.
pub const INVALID_UTF8_TAG: &str = "_invalid_utf8";
pub const NUL_BYTES_TAG: &str = "_nul_bytes";

/// A message as text, as `streams.inputs.decode_line` gives it: one trailing CR dropped,
/// UTF-8 decoded with every undecodable byte as a `\xNN` escape (`invalid`), and whether a
/// NUL byte is in it (`nul`).
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub invalid: bool,
    pub nul: bool,
}

pub fn decode_message(raw: &[u8]) -> Decoded<'_> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let nul = raw.contains(&0);
    match std::str::from_utf8(raw) {
        Ok(s) => Decoded {
            text: Cow::Borrowed(s),
            invalid: false,
            nul,
        },
        Err(_) => {
            let mut s = String::with_capacity(raw.len() + 8);
            for chunk in raw.utf8_chunks() {
                s.push_str(chunk.valid());
                for b in chunk.invalid() {
                    s.push_str(&format!("\\x{b:02x}"));
                }
            }
            Decoded {
                text: Cow::Owned(s),
                invalid: true,
                nul,
            }
        }
    }
}

/// `not text or text.isspace()`: nothing worth a record.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(crate::pyunicode::is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    struct F(Vec<u8>, bool, bool, Option<String>);

    fn f(data: &[u8]) -> F {
        F(data.to_vec(), false, false, None)
    }

    fn run(chunks: &[&[u8]], max_size: usize) -> (Vec<F>, Option<Framing>) {
        let mut fr = SyslogFramer::new(max_size, DEFAULT_MAX_COUNT).unwrap();
        let mut out = Vec::new();
        let mut push = |x: FrameRef<'_>| {
            out.push(F(
                x.data.to_vec(),
                x.truncated,
                x.unterminated,
                x.error.map(str::to_string),
            ))
        };
        for c in chunks {
            fr.receive_data(c, &mut push).unwrap();
            assert!(fr.buffered() <= max_size + 2);
        }
        fr.end_of_stream(&mut push);
        (out, fr.framing)
    }

    /// Whole, byte at a time and split at every offset: the same frames.
    fn all_ways(data: &[u8], max_size: usize) -> (Vec<F>, Option<Framing>) {
        let whole = run(&[data], max_size);
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes, max_size), whole);
        for k in 0..=data.len() {
            assert_eq!(run(&[&data[..k], &data[k..]], max_size), whole, "split {k}");
        }
        whole
    }

    fn octet(m: &[u8]) -> Vec<u8> {
        let mut v = format!("{} ", m.len()).into_bytes();
        v.extend_from_slice(m);
        v
    }

    #[test]
    fn detection() {
        assert_eq!(detect_framing(b""), None);
        assert_eq!(detect_framing(b"123 "), None);
        assert_eq!(detect_framing(b"123456789"), None);
        assert_eq!(detect_framing(b"123 <"), Some(Framing::OctetCounted));
        assert_eq!(detect_framing(b"123456789 <"), Some(Framing::OctetCounted));
        assert_eq!(detect_framing(b"1234567890 <"), Some(Framing::Lf));
        assert_eq!(detect_framing(b"12  <"), Some(Framing::Lf));
        assert_eq!(detect_framing(b"2024-01-02"), Some(Framing::Lf));
        assert_eq!(detect_framing(b"\n"), Some(Framing::Lf));
    }

    #[test]
    fn lf_lines() {
        let (fr, mode) = all_ways(b"a\r\nb\r\r\n\n\nc\rd\ne", 64);
        assert_eq!(mode, Some(Framing::Lf));
        assert_eq!(
            fr,
            vec![
                f(b"a"),
                f(b"b\r"),
                f(b"c\rd"),
                F(b"e".to_vec(), false, true, None)
            ]
        );
    }

    #[test]
    fn octet_counting_and_resync() {
        let mut data = octet(b"<1>a\n");
        data.extend_from_slice(b"\r\n12x <1>bad\n");
        data.extend(octet(b"<1>b"));
        data.extend_from_slice(b"1 \n");
        let (fr, mode) = all_ways(&data, 64);
        assert_eq!(mode, Some(Framing::OctetCounted));
        assert_eq!(
            fr,
            vec![
                f(b"<1>a"),
                F(
                    b"12x <1>bad".to_vec(),
                    false,
                    false,
                    Some("byte 0x78 in octet count".into())
                ),
                f(b"<1>b"),
            ]
        );
    }

    #[test]
    fn truncation_and_eof() {
        let (fr, _) = all_ways(b"AAAAAAAAAAAAAAAAAAAA\nok\n", 16);
        assert_eq!(fr, vec![F(vec![b'A'; 16], true, false, None), f(b"ok")]);
        let mut data = b"30 <1>".to_vec();
        data.extend_from_slice(&[b'B'; 20]);
        let (fr, _) = all_ways(&data, 16);
        assert_eq!(fr, vec![F(b"<1>BBBBBBBBBBBBB".to_vec(), true, false, None)]);
        let (fr, _) = all_ways(b"10 <1>abc", 16);
        assert_eq!(
            fr,
            vec![F(
                b"<1>abc".to_vec(),
                false,
                true,
                Some("stream ended inside an octet-counted message (4 octets missing)".into())
            )]
        );
    }

    #[test]
    fn huge_counted_message_bounded() {
        let mut big = b"<13>".to_vec();
        big.resize(1 << 20, b'x');
        let mut data = octet(&big);
        data.extend(octet(b"<1>next"));
        let chunks: Vec<&[u8]> = data.chunks(4093).collect();
        let (fr, _) = run(&chunks, DEFAULT_MAX_SIZE);
        assert_eq!(
            fr,
            vec![
                F(big[..DEFAULT_MAX_SIZE].to_vec(), true, false, None),
                f(b"<1>next")
            ]
        );
    }

    #[test]
    fn receive_after_eof() {
        let mut fr = SyslogFramer::new(16, 0).unwrap();
        assert_eq!(fr.max_count, 16);
        fr.end_of_stream(&mut |_| {});
        assert!(fr.receive_data(b"x", &mut |_| {}).is_err());
        assert!(SyslogFramer::new(15, 0).is_err());
    }

    #[test]
    fn datagrams_and_eol() {
        assert_eq!(strip_eol(b"a\r\n"), b"a");
        assert_eq!(strip_eol(b"a\n\n"), b"a\n");
        assert_eq!(strip_eol(b"a\r"), b"a\r");
        assert_eq!(datagram_frame(b"\n", 16), None);
        let d = datagram_frame(b"<13>yyyyyyyyyyyyyyyyyyyy", 16).unwrap();
        assert!(d.truncated && d.data.len() == 16);
    }

    #[test]
    fn decoding_as_decode_line() {
        let d = decode_message(b"a\xffb\x00\r");
        assert_eq!(d.text, "a\\xffb\x00");
        assert!(d.invalid && d.nul);
        let d = decode_message(b"caf\xc3\xa9\r\r");
        assert_eq!(d.text, "caf\u{e9}\r");
        assert!(!d.invalid && !d.nul);
        // a cut sequence and a surrogate: every byte escaped
        assert_eq!(
            decode_message(b"\xe2\x82A\xed\xa0\x80").text,
            "\\xe2\\x82A\\xed\\xa0\\x80"
        );
        assert!(is_blank("") && is_blank(" \t\u{3000}") && !is_blank(" x"));
    }
}
