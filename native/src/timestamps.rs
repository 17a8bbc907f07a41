//! Timestamps of log lines -> `(epoch seconds, "YYYY-MM-DDTHH:MM:SS.mmmZ")`, a port of
//! `streams/parse/timestamps.py` (`TimeParser.iso`, `TimeParser.syslog_cached`, `epoch`)
//! and of what it leans on in CPython 3.11: `datetime.fromisoformat` (the C version, on
//! UTF-8 bytes), `zoneinfo` (PEP 495 `fold=0` for naive times), `datetime.timestamp()`
//! (a correctly rounded division of microseconds) and `streams.event.format_timestamp`
//! (`fromtimestamp` rounds half to even to the microsecond, then milliseconds truncated).
//!
//! Stamps are cached by their text (logs repeat their seconds), year guesses for an hour of
//! the clock.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::pyunicode::digit;

/// The month names of syslog dates (`Mmm`), lowercase.
pub const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The time zone of naive times (`streams.parse.timestamps.get_tz`). Zones come from the
/// system's tz database (as `zoneinfo` reads it), else the copy bundled into the module.
#[derive(Clone, Debug)]
pub enum Zone {
    Utc,
    Named(TimeZone),
}

impl Zone {
    /// `get_tz`: empty, `UTC`, `Z`, `GMT` (any case) are UTC; else an IANA name, spelled
    /// as its file is (zoneinfo reads files: `europe/paris` is unknown).
    pub fn parse(name: &str) -> Result<Zone, String> {
        if name.is_empty() || matches!(name.to_uppercase().as_str(), "UTC" | "Z" | "GMT") {
            return Ok(Zone::Utc);
        }
        match TimeZone::get(name) {
            Ok(tz) if tz.iana_name() == Some(name) => Ok(Zone::Named(tz)),
            _ => Err(format!(
                "unknown time zone {name:?} (an IANA name such as Europe/Paris)"
            )),
        }
    }

    /// The UTC offset (seconds) at a UTC instant (`fromutc`), for years 1..9999.
    fn offset_at_utc(&self, utc_seconds: i64) -> i64 {
        match (self, Timestamp::from_second(utc_seconds)) {
            (Zone::Named(tz), Ok(ts)) => tz.to_offset(ts).seconds() as i64,
            _ => 0,
        }
    }

    /// The UTC offset (seconds) of a wall-clock time, as zoneinfo reads it with `fold=0`:
    /// in a gap the offset before the gap, in a fold the first one.
    fn offset_of_local(&self, c: &Civil) -> i64 {
        let Zone::Named(tz) = self else { return 0 };
        let Ok(dt) = DateTime::new(
            c.year as i16,
            c.month as i8,
            c.day as i8,
            c.hour as i8,
            c.minute as i8,
            c.second as i8,
            0,
        ) else {
            return 0;
        };
        let off = match tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            AmbiguousOffset::Gap { before, .. } | AmbiguousOffset::Fold { before, .. } => before,
        };
        off.seconds() as i64
    }
}

const US: i64 = 1_000_000;
const DAY_US: i64 = 86_400 * US;

pub fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (any year).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// A `datetime` as Python would build it: fields checked like its constructor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub micro: i64,
}

impl Civil {
    /// `datetime(y, m, d, hh, mm, ss, us)`, None where Python raises ValueError.
    pub fn new(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Option<Civil> {
        let ok = (1..=9999).contains(&y)
            && (1..=12).contains(&mo)
            && d >= 1
            && d <= days_in_month(y, mo)
            && (0..24).contains(&h)
            && (0..60).contains(&mi)
            && (0..60).contains(&s)
            && (0..US).contains(&us);
        ok.then_some(Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            micro: us,
        })
    }

    /// Wall-clock microseconds since 1970-01-01T00:00 (no zone).
    pub fn wall_us(&self) -> i64 {
        (days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second)
            * US
            + self.micro
    }
}

fn civil_of_wall_us(us: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let days = us.div_euclid(DAY_US);
    let rest = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / US;
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60, rest % US)
}

/// `int / 10**6` as Python divides two ints: correctly rounded (the plain f64 division
/// of an i64 past 2**53 would round twice).
pub fn micros_to_seconds(n: i64) -> f64 {
    let approx = n as f64 / 1e6;
    if n.unsigned_abs() <= 1 << 53 {
        return approx;
    }
    // |approx| >= 2**33 here, so approx * 2**19 is an integer: compare exactly
    let err = |f: f64| -> i128 {
        let bits = f.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
        let mant = ((bits & ((1 << 52) - 1)) | (1 << 52)) as i128;
        let scaled = (mant << (exp + 19)) * if f < 0.0 { -1 } else { 1 };
        (scaled * 1_000_000 - ((n as i128) << 19)).abs()
    };
    let mut best = approx;
    for c in [approx.next_down(), approx.next_up()] {
        let (e, b) = (err(c), err(best));
        if e < b || (e == b && c.to_bits() & 1 == 0) {
            best = c;
        }
    }
    best
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// `streams.event.format_timestamp`: None where `datetime.fromtimestamp` fails (a year
/// outside 1..9999).
pub fn format_timestamp(epoch: f64) -> Option<String> {
    format_us(epoch_us(epoch)?)
}

/// Epoch seconds as microseconds, rounded half to even as `datetime.fromtimestamp` does;
/// None for what it refuses (not finite, far out of range).
fn epoch_us(epoch: f64) -> Option<i64> {
    if !epoch.is_finite() {
        return None;
    }
    let mut int = epoch.trunc();
    let mut frac = round_half_even(epoch.fract() * 1e6);
    if frac >= 1e6 {
        frac -= 1e6;
        int += 1.0;
    } else if frac < 0.0 {
        frac += 1e6;
        int -= 1.0;
    }
    if !(-1e15..1e15).contains(&int) {
        return None;
    }
    Some(int as i64 * US + frac as i64)
}

/// The text of a UTC instant given in microseconds.
fn format_us(us: i64) -> Option<String> {
    let (y, mo, d, h, mi, s, micro) = civil_of_wall_us(us);
    if !(1..=9999).contains(&y) {
        return None;
    }
    // strftime's %Y pads nothing on glibc (year 5 is "5")
    Some(format!(
        "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        micro / 1000
    ))
}

/// `TimeParser.epoch` for whole seconds (a TAI64N label): None past year 9999.
pub fn epoch_seconds(seconds: i128) -> Option<(f64, String)> {
    if !(-1_000_000_000_000_000..1_000_000_000_000_000).contains(&seconds) {
        return None;
    }
    let text = format_us(seconds as i64 * US)?;
    Some((seconds as f64, text))
}

/// A parsed `fromisoformat` result: wall time and a fixed offset (microseconds), if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IsoTime {
    pub civil: Civil,
    pub offset_us: Option<i64>,
}

/// The byte at `i`, or NUL past the end (C reads the string's terminator).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// CPython's `parse_digits`: `n` ASCII digits from `p`, or None.
fn parse_digits(b: &[u8], p: &mut usize, n: usize) -> Option<i64> {
    let mut v = 0;
    for _ in 0..n {
        let c = at(b, *p);
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
        *p += 1;
    }
    Some(v)
}

/// CPython's `_find_isoformat_datetime_separator` (None for its -1).
fn find_separator(b: &[u8]) -> Option<usize> {
    let len = b.len();
    if len == 7 {
        return Some(7);
    }
    if at(b, 4) == b'-' {
        if at(b, 5) == b'W' {
            if len < 8 {
                return None;
            }
            if len > 8 && at(b, 8) == b'-' {
                if len == 9 {
                    return None;
                }
                if len > 10 && at(b, 10).is_ascii_digit() {
                    return Some(8);
                }
                return Some(10);
            }
            return Some(8);
        }
        return Some(10);
    }
    if at(b, 4) == b'W' {
        let mut idx = 7;
        while idx < len && at(b, idx).is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

/// Days since 1970 of the Monday of ISO week 1 of `year`.
fn iso_week1_monday(year: i64) -> i64 {
    let first = days_from_civil(year, 1, 1);
    let first_weekday = (first + 3).rem_euclid(7); // Monday = 0
    let mut monday = first - first_weekday;
    if first_weekday > 3 {
        monday += 7;
    }
    monday
}

/// CPython's `iso_to_ymd`.
fn iso_to_ymd(year: i64, week: i64, day: i64) -> Option<(i64, i64, i64)> {
    if week <= 0 || week >= 53 {
        let first_weekday = (days_from_civil(year, 1, 1) + 4).rem_euclid(7); // Sunday = 0
        if !(week == 53 && (first_weekday == 4 || (first_weekday == 3 && is_leap(year)))) {
            return None;
        }
    }
    if day <= 0 || day >= 8 {
        return None;
    }
    Some(civil_from_days(
        iso_week1_monday(year) + (week - 1) * 7 + day - 1,
    ))
}

/// CPython's `parse_isoformat_date`.
fn parse_iso_date(b: &[u8], len: usize) -> Option<(i64, i64, i64)> {
    let mut p = 0;
    let year = parse_digits(b, &mut p, 4)?;
    let sep = at(b, p) == b'-';
    if sep {
        p += 1;
    }
    if at(b, p) == b'W' {
        p += 1;
        let week = parse_digits(b, &mut p, 2)?;
        let mut day = 1;
        if p < len {
            if sep {
                let c = at(b, p);
                p += 1;
                if c != b'-' {
                    return None;
                }
            }
            day = parse_digits(b, &mut p, 1)?;
        }
        return iso_to_ymd(year, week, day);
    }
    let month = parse_digits(b, &mut p, 2)?;
    if sep {
        let c = at(b, p);
        p += 1;
        if c != b'-' {
            return None;
        }
    }
    let day = parse_digits(b, &mut p, 2)?;
    Some((year, month, day))
}

/// CPython's `parse_hh_mm_ss_ff` on `b[start..end]`: None for its negative codes, 1 when
/// something is left (not at the end of the string), 0 else.
fn parse_hh_mm_ss_ff(b: &[u8], start: usize, end: usize, out: &mut [i64; 4]) -> Option<u8> {
    *out = [0; 4];
    let mut p = start;
    let mut has_sep = true;
    for (i, slot) in out.iter_mut().take(3).enumerate() {
        *slot = parse_digits(b, &mut p, 2)?;
        let c = at(b, p);
        p += 1;
        if i == 0 {
            has_sep = c == b':';
        }
        if p >= end {
            return Some((c != 0) as u8);
        } else if has_sep && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_sep {
            p -= 1;
        } else {
            return None;
        }
    }
    let remains = end.saturating_sub(p);
    let to_parse = remains.min(6);
    out[3] = parse_digits(b, &mut p, to_parse)?;
    if to_parse < 6 {
        // C indexes correction[to_parse - 1]; to_parse is never 0 here in practice
        const CORRECTION: [i64; 5] = [100_000, 10_000, 1000, 100, 10];
        out[3] *= CORRECTION
            .get(to_parse.wrapping_sub(1))
            .copied()
            .unwrap_or(1);
    }
    while at(b, p).is_ascii_digit() {
        p += 1;
    }
    Some((at(b, p) != 0) as u8)
}

/// CPython 3.11's `datetime.fromisoformat` (C version): None where it raises ValueError.
pub fn fromisoformat(text: &str) -> Option<IsoTime> {
    let nchars = text.chars().count();
    if nchars < 7 {
        return None;
    }
    // a non-ASCII separator (at character 7, 8 or 10) reads as `T`
    let mut owned;
    let mut b: &[u8] = text.as_bytes();
    for pos in [7usize, 8, 10] {
        if pos > nchars {
            break;
        }
        if let Some((i, c)) = text.char_indices().nth(pos) {
            if !c.is_ascii() {
                owned = Vec::with_capacity(text.len());
                owned.extend_from_slice(&text.as_bytes()[..i]);
                owned.push(b'T');
                owned.extend_from_slice(&text.as_bytes()[i + c.len_utf8()..]);
                b = &owned;
                break;
            }
        }
    }
    let len = b.len();
    let sep = find_separator(b)?;
    let (year, month, day) = parse_iso_date(b, sep)?;
    let mut t = [0i64; 4];
    let mut tz: Option<i64> = None;
    if len > sep {
        let start = sep + 1;
        let mut tzpos = start;
        loop {
            let c = at(b, tzpos);
            if c == b'Z' || c == b'+' || c == b'-' {
                break;
            }
            tzpos += 1;
            if tzpos >= len {
                break;
            }
        }
        let rv = parse_hh_mm_ss_ff(b, start, tzpos, &mut t)?;
        if tzpos >= len {
            if rv == 1 {
                return None;
            }
        } else if at(b, tzpos) == b'Z' {
            if at(b, tzpos + 1) != 0 {
                return None;
            }
            tz = Some(0);
        } else {
            let sign = if at(b, tzpos) == b'-' { -1 } else { 1 };
            let mut z = [0i64; 4];
            let rv = parse_hh_mm_ss_ff(b, tzpos + 1, len, &mut z)?;
            if rv != 0 {
                return None;
            }
            let secs = sign * (z[0] * 3600 + z[1] * 60 + z[2]);
            let total = if secs == 0 {
                0
            } else {
                secs * US + sign * z[3]
            };
            if total <= -DAY_US || total >= DAY_US {
                return None;
            }
            tz = Some(total);
        }
    }
    let civil = Civil::new(year, month, day, t[0], t[1], t[2], t[3])?;
    Some(IsoTime {
        civil,
        offset_us: tz,
    })
}

/// `TimeParser`, without its caches: the year of year-less dates is `year` or guessed
/// from `now`, naive times are in `zone`.
#[derive(Debug)]
pub struct TimeParser {
    pub year: Option<i64>,
    pub zone: Zone,
    pub now: f64,
    /// stamp text -> result: logs repeat their seconds (bounded; year guesses are
    /// redone an hour of `now` later, as a long-running process needs)
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    until: f64,
    /// ISO texts, and syslog stamps by their parts: two maps, so no key of one is a key
    /// of the other
    iso: Stamps,
    syslog: Stamps,
}

type Stamps = HashMap<String, Option<(f64, String)>, crate::doc::Fnv>;

impl Clone for TimeParser {
    fn clone(&self) -> TimeParser {
        TimeParser::new(self.year, self.zone.clone(), self.now)
    }
}

const CACHE_MAX: usize = 65536;
const GUESS_TTL: f64 = 3600.0;
/// the longest text cached: each map stays under 65,536 keys of 80 bytes
const MAX_KEY: usize = 80;

impl TimeParser {
    pub fn new(year: Option<i64>, zone: Zone, now: f64) -> TimeParser {
        TimeParser {
            year,
            zone,
            now,
            cache: Mutex::new(Cache {
                until: f64::NEG_INFINITY,
                iso: HashMap::default(),
                syslog: HashMap::default(),
            }),
        }
    }

    /// The cached result for `key` in the map `pick` chooses (looked up without a copy of
    /// the key), else `compute`'s, kept.
    fn cached(
        &self,
        pick: fn(&mut Cache) -> &mut Stamps,
        key: &str,
        compute: impl FnOnce() -> Option<(f64, String)>,
    ) -> Option<(f64, String)> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if self.now > cache.until {
            cache.iso.clear();
            cache.syslog.clear();
            cache.until = self.now + GUESS_TTL;
        }
        if key.len() > MAX_KEY {
            return compute(); // a stamp is short: a long text is not worth keeping
        }
        let stamps = pick(&mut cache);
        if let Some(hit) = stamps.get(key) {
            return hit.clone();
        }
        let value = compute();
        if stamps.len() >= CACHE_MAX {
            stamps.clear();
        }
        stamps.insert(key.to_string(), value.clone());
        value
    }

    /// `_finish`: a wall time (in `offset_us`, else in the zone) -> (epoch, text).
    pub fn finish(&self, civil: &Civil, offset_us: Option<i64>) -> Option<(f64, String)> {
        let off = match offset_us {
            Some(o) => o,
            None => self.zone.offset_of_local(civil) * US,
        };
        let epoch = micros_to_seconds(civil.wall_us() - off);
        Some((epoch, format_timestamp(epoch)?))
    }

    /// `datetime.fromtimestamp(now, tz)` as wall-clock microseconds.
    fn now_wall_us(&self) -> Option<i64> {
        let utc = epoch_us(self.now)?;
        if !(1..=9999).contains(&civil_of_wall_us(utc).0) {
            return None;
        }
        Some(utc + self.zone.offset_at_utc(utc.div_euclid(US)) * US)
    }

    /// `_guess_year`: None where Python raises (a bad time of a leap day, a clock out of range).
    fn guess_year(&self, month: i64, day: i64, hms: (i64, i64, i64)) -> Option<i64> {
        if let Some(y) = self.year {
            return Some(y);
        }
        let now = self.now_wall_us()?;
        let (year, now_month, ..) = civil_of_wall_us(now);
        if month == 1 && now_month == 12 {
            return Some(year + 1);
        }
        // aware datetimes sharing one tzinfo subtract as wall-clock times
        let ahead = |c: &Civil| c.wall_us() - now > DAY_US;
        if month == 2 && day == 29 {
            let mut year = year;
            loop {
                if is_leap(year) {
                    let c = Civil::new(year, 2, 29, hms.0, hms.1, hms.2, 0)?;
                    if !ahead(&c) {
                        return Some(year);
                    }
                }
                year -= 1;
            }
        }
        match Civil::new(year, month, day, hms.0, hms.1, hms.2, 0) {
            None => Some(year),
            Some(c) if ahead(&c) => Some(year - 1),
            Some(_) => Some(year),
        }
    }

    /// `syslog_cached`: `Feb`, `5`, `14:34:10[.123]`, an optional year.
    pub fn syslog(
        &self,
        month: &str,
        day: &str,
        clock: &str,
        year: Option<&str>,
    ) -> Option<(f64, String)> {
        // month, day, clock, year (\u{1} for none): no formatter on the hot path
        let y = year.unwrap_or("\u{1}");
        let mut key = String::with_capacity(month.len() + day.len() + clock.len() + y.len() + 3);
        for part in [month, "\0", day, "\0", clock, "\0", y] {
            key.push_str(part);
        }
        self.cached(
            |c| &mut c.syslog,
            &key,
            || self.syslog_uncached(month, day, clock, year),
        )
    }

    fn syslog_uncached(
        &self,
        month: &str,
        day: &str,
        clock: &str,
        year: Option<&str>,
    ) -> Option<(f64, String)> {
        let lower = month.get(..3)?.to_ascii_lowercase();
        let mon = MONTHS.iter().position(|m| *m == lower)? as i64 + 1;
        let d = py_int(day)?;
        let mut parts = clock.split(':');
        let (hh, mm, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let rest = rest.replace(',', ".");
        let (ss, frac) = rest.split_once('.').unwrap_or((&rest, ""));
        let hms = (py_int(hh)?, py_int(mm)?, py_int(ss)?);
        let micro = if frac.is_empty() {
            0
        } else {
            let padded: String = frac.chars().chain("000000".chars()).take(6).collect();
            py_int(&padded)?
        };
        let y = match year {
            Some(y) if !y.is_empty() => py_int(y)?,
            _ => self.guess_year(mon, d, hms)?,
        };
        let civil = Civil::new(y, mon, d, hms.0, hms.1, hms.2, micro)?;
        self.finish(&civil, None)
    }

    /// `iso`: ISO 8601 / RFC 3339 (`T` or space, `,` or `.` fraction, `Z`, `+hh:mm`, `+hhmm`).
    pub fn iso(&self, text: &str) -> Option<(f64, String)> {
        self.cached(|c| &mut c.iso, text, || self.iso_uncached(text))
    }

    fn iso_uncached(&self, text: &str) -> Option<(f64, String)> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
        if matches!(ch(19), Some('.' | ',')) && ch(4) == Some('-') && ch(16) == Some(':') {
            let mut end = 20;
            while matches!(ch(end), Some('0'..='9')) {
                end += 1;
            }
            if end > 20 && chars.len() - end <= 6 {
                let byte = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
                let second = format!("{}{}", &text[..byte(19)], &text[byte(end)..]);
                let (epoch, base) = self.iso_parse(&second)?;
                let frac = &text[byte(20)..byte(end)];
                let micro: f64 = format!("{:0<6}", &frac[..frac.len().min(6)])
                    .parse::<u32>()
                    .ok()? as f64;
                let ms = format!("{:0<3}", &frac[..frac.len().min(3)]);
                return Some((epoch + micro / 1e6, format!("{}{ms}Z", &base[..20])));
            }
        }
        self.iso_parse(text)
    }

    fn iso_parse(&self, text: &str) -> Option<(f64, String)> {
        let t = fromisoformat(&text.replace(',', "."))?;
        self.finish(&t.civil, t.offset_us)
    }
}

/// `int(s)` for what the header patterns hand it (decimal digits of any script, a leading
/// space or not); None where it raises.
pub fn py_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(crate::pyunicode::is_space);
    if t.is_empty() || t.chars().count() > 18 {
        return None;
    }
    let mut n = 0i64;
    for c in t.chars() {
        n = n * 10 + digit(c)? as i64;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: &str = "Europe/Paris";

    fn tp(year: Option<i64>, tz: &str, now: &str) -> TimeParser {
        let now = fromisoformat(now).unwrap();
        let epoch = micros_to_seconds(now.civil.wall_us() - now.offset_us.unwrap_or(0));
        TimeParser::new(year, Zone::parse(tz).unwrap(), epoch)
    }

    fn text(r: Option<(f64, String)>) -> Option<String> {
        r.map(|(_, t)| t)
    }

    #[test]
    fn an_iso_text_never_hits_a_syslog_stamp_in_the_cache() {
        let t = tp(Some(2026), "UTC", "2026-03-05T00:00:00Z");
        assert!(t.syslog("Mar", "2", "10:00:00", None).is_some());
        // the syslog map's key for it: month, day, clock, no year, NUL-separated
        assert_eq!(
            t.iso(&["Mar", "2", "10:00:00", "\u{1}"].join("\u{0}")),
            None
        );
    }

    #[test]
    fn year_is_guessed_across_new_year() {
        let jan = tp(None, "UTC", "2026-01-02T10:00:00Z");
        assert_eq!(
            text(jan.syslog("Dec", "31", "23:59:59", None)).unwrap(),
            "2025-12-31T23:59:59.000Z"
        );
        // a day ahead is still this year, more than a day is last year
        assert_eq!(
            text(jan.syslog("Jan", "3", "09:00:00", None)).unwrap(),
            "2026-01-03T09:00:00.000Z"
        );
        assert_eq!(
            text(jan.syslog("Jan", "3", "10:00:01", None)).unwrap(),
            "2025-01-03T10:00:01.000Z"
        );
        let dec = tp(None, "UTC", "2025-12-31T23:00:00Z");
        assert_eq!(
            text(dec.syslog("Jan", " 1", "00:00:05", None)).unwrap(),
            "2026-01-01T00:00:05.000Z"
        );
        let given = tp(Some(2019), "UTC", "2025-12-31T23:00:00Z");
        assert_eq!(
            text(given.syslog("feb", "28", "01:02:03,5", None)).unwrap(),
            "2019-02-28T01:02:03.500Z"
        );
        assert_eq!(
            text(given.syslog("Feb", "28", "01:02:03", Some("2001"))).unwrap(),
            "2001-02-28T01:02:03.000Z"
        );
    }

    #[test]
    fn leap_day_takes_the_latest_leap_year_not_ahead() {
        let t = tp(None, "UTC", "2026-06-01T00:00:00Z");
        assert_eq!(
            text(t.syslog("Feb", "29", "12:00:00", None)).unwrap(),
            "2024-02-29T12:00:00.000Z"
        );
        let t = tp(None, "UTC", "2028-02-28T12:00:00Z");
        assert_eq!(
            text(t.syslog("Feb", "29", "12:00:00", None)).unwrap(),
            "2028-02-29T12:00:00.000Z"
        );
        let t = tp(None, "UTC", "2028-01-15T00:00:00Z");
        assert_eq!(
            text(t.syslog("Feb", "29", "12:00:00", None)).unwrap(),
            "2024-02-29T12:00:00.000Z"
        );
        // a given year that is not a leap year: not a date
        assert_eq!(
            tp(Some(2025), "UTC", "2026-01-01T00:00:00Z").syslog("Feb", "29", "00:00:00", None),
            None
        );
        // a bad time on a leap day raises in the guess: no time
        assert_eq!(t.syslog("Feb", "29", "25:00:00", None), None);
    }

    #[test]
    fn naive_times_in_a_zone_with_dst() {
        let t = tp(Some(2024), PARIS, "2024-06-01T00:00:00Z");
        assert_eq!(
            text(t.syslog("Jul", "1", "12:00:00", None)).unwrap(),
            "2024-07-01T10:00:00.000Z"
        );
        assert_eq!(
            text(t.syslog("Jan", "1", "12:00:00", None)).unwrap(),
            "2024-01-01T11:00:00.000Z"
        );
        // the spring gap: the offset before it (02:30 -> 01:30Z), as zoneinfo with fold=0
        assert_eq!(
            text(t.syslog("Mar", "31", "02:30:00", None)).unwrap(),
            "2024-03-31T01:30:00.000Z"
        );
        // the autumn fold: the first 02:30 (CEST)
        assert_eq!(
            text(t.syslog("Oct", "27", "02:30:00", None)).unwrap(),
            "2024-10-27T00:30:00.000Z"
        );
        assert_eq!(
            text(t.iso("2024-07-01 12:00:00")).unwrap(),
            "2024-07-01T10:00:00.000Z"
        );
        // past the tz file's last transition, its rule goes on (as zoneinfo reads it)
        assert_eq!(
            text(t.iso("2924-08-26 01:33:38")).unwrap(),
            "2924-08-25T23:33:38.000Z"
        );
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert!(Zone::parse("europe/paris").is_err());
        assert!(Zone::parse("US/Eastern").is_ok());
        assert!(matches!(Zone::parse("gmt"), Ok(Zone::Utc)));
    }

    #[test]
    fn iso_shapes() {
        let t = tp(None, "UTC", "2024-06-01T00:00:00Z");
        let iso = |s: &str| text(t.iso(s));
        for (text_in, want) in [
            (
                "2024-08-26T01:33:38.572449+00:00",
                "2024-08-26T01:33:38.572Z",
            ),
            ("2024-08-26T01:33:38,5729+02:00", "2024-08-25T23:33:38.572Z"),
            ("2024-08-26T01:33:38.999999999Z", "2024-08-26T01:33:38.999Z"),
            ("2024-08-26T01:33:38+0130", "2024-08-26T00:03:38.000Z"),
            ("2024-08-26T01:33:38-01:00", "2024-08-26T02:33:38.000Z"),
            ("2024-08-26 01:33:38Z", "2024-08-26T01:33:38.000Z"),
            ("20240826T013338", "2024-08-26T01:33:38.000Z"),
            ("2024-W01-1", "2024-01-01T00:00:00.000Z"),
            ("2024-01-01T10:00:00\0", "2024-01-01T10:00:00.000Z"),
        ] {
            assert_eq!(iso(text_in).unwrap(), want, "{text_in}");
        }
        // out of range or malformed
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00",
            "2024-01-01T10:00:00+24:00",
            "2024-13-01T00:00:00",
            "0000-01-01T00:00:00",
            "2024-01-01T10:00:00.",
            "٢٠٢٤-01-01T00:00:00",
            "2024-01",
            "-",
        ] {
            assert_eq!(iso(bad), None, "{bad}");
        }
        // past year 9999 once in UTC: no time
        assert_eq!(iso("9999-12-31T23:00:00-02:00"), None);
        assert_eq!(iso("0001-01-01T00:30:00+01:00"), None);
    }

    #[test]
    fn epochs_round_like_python() {
        assert_eq!(format_timestamp(0.0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1.0005).unwrap(),
            "1970-01-01T00:00:01.000Z"
        );
        assert_eq!(
            format_timestamp(-0.0005).unwrap(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_timestamp(0.9999996).unwrap(),
            "1970-01-01T00:00:01.000Z"
        );
        assert_eq!(
            micros_to_seconds(253_402_300_799_999_999),
            253_402_300_799.999_999_f64
        );
        // TAI64N labels: seconds past 2**62; past year 9999, no time
        assert_eq!(
            epoch_seconds(1_354_217_185).unwrap().1,
            "2012-11-29T19:26:25.000Z"
        );
        assert_eq!(epoch_seconds(1 << 60), None);
    }
}
