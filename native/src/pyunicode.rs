//! Python's view of characters, as `streams/parse/` sees them: `re`'s `\d`, `\s` and `\w`
//! on str patterns (Unicode-aware) and `int()` on decimal digits of any script. The tables
//! are generated from Python's own Unicode database (`native/tools/gen_pyunicode.py`).

include!("pyunicode_tables.rs");

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The value of a decimal digit (`\d`, `str.isdecimal()`), in any script.
pub fn digit(c: char) -> Option<u32> {
    if c.is_ascii() {
        return c.to_digit(10);
    }
    let cp = c as u32;
    let i = DIGITS.partition_point(|&(_, hi, _)| hi < cp);
    match DIGITS.get(i) {
        Some(&(lo, _, v)) if lo <= cp => Some(v + cp - lo),
        _ => None,
    }
}

/// `\d`
pub fn is_digit(c: char) -> bool {
    digit(c).is_some()
}

/// `\s`
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f'
        );
    }
    in_ranges(&SPACE, c)
}

/// `\w`
pub fn is_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    in_ranges(&WORD, c)
}

/// `int(s)` for a non-empty run of decimal digits (what `\d+` matched): small values
/// natively, longer ones as their ASCII digits (Python turns them into an int).
#[derive(Clone, Debug, PartialEq)]
pub enum Int {
    Small(i64),
    Big(String),
}

pub fn int_of_digits(s: &str) -> Int {
    let mut ascii = String::with_capacity(s.len());
    let mut n: i64 = 0;
    let mut small = true;
    for c in s.chars() {
        let d = digit(c).expect("int_of_digits takes decimal digits");
        ascii.push(char::from_digit(d, 10).unwrap_or('0'));
        match n.checked_mul(10).and_then(|v| v.checked_add(d as i64)) {
            Some(v) => n = v,
            None => small = false,
        }
    }
    if small {
        Int::Small(n)
    } else {
        Int::Big(ascii)
    }
}

/// `str.isdecimal()` (false for the empty string).
pub fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_digit)
}

/// `str.isdigit()` of one character (decimal digits, and superscripts and the like).
pub fn is_py_digit(c: char) -> bool {
    is_digit(c) || in_ranges(&DIGIT_EXTRA, c)
}

/// `str.isprintable()` of one character.
pub fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !in_ranges(&NOT_PRINTABLE, c)
}

/// Python's `repr()` of a str.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_python() {
        assert_eq!(digit('7'), Some(7));
        assert_eq!(digit('٣'), Some(3)); // ARABIC-INDIC DIGIT THREE
        assert_eq!(digit('３'), Some(3)); // FULLWIDTH
        assert_eq!(digit('²'), None); // isdigit() but not isdecimal()
        assert!(is_py_digit('²') && is_py_digit('7') && !is_py_digit('x'));
        assert!(is_printable('é') && !is_printable('\u{ad}') && !is_printable('\u{e000}'));
        assert_eq!(repr_str("\u{2028}\u{1f600}"), "'\\u2028\u{1f600}'");
        assert!(is_space('\u{a0}') && is_space('\u{2028}') && is_space('\x1c'));
        assert!(!is_space('\u{200b}'));
        assert!(is_word('é') && is_word('_') && is_word('٣') && !is_word('-'));
        assert_eq!(int_of_digits("٣٨"), Int::Small(38));
        assert_eq!(
            int_of_digits("123456789012345678901234567890"),
            Int::Big("123456789012345678901234567890".into())
        );
    }
}
