//! Syslog PRI (sans-IO): the value and its facility and severity names (the header
//! shapes are in `header.rs`).

use pyo3::prelude::*;

pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A PRI value (`<38>` -> 38): its facility and severity, or None past 191.
pub fn priority(pri: u32) -> Option<(u32, &'static str, u32, &'static str)> {
    if pri > 191 {
        return None;
    }
    let (f, s) = (pri >> 3, pri & 7);
    Some((f, FACILITIES[f as usize], s, SEVERITIES[s as usize]))
}

/// `priority(38)` -> `(4, "auth", 6, "info")`, or None for a value past 191.
#[pyfunction]
#[pyo3(name = "priority")]
pub fn py_priority(pri: u32) -> Option<(u32, &'static str, u32, &'static str)> {
    priority(pri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_splits_into_facility_and_severity() {
        assert_eq!(priority(38), Some((4, "auth", 6, "info")));
        assert_eq!(priority(0), Some((0, "kern", 0, "emerg")));
        assert_eq!(priority(191), Some((23, "local7", 7, "debug")));
        assert_eq!(priority(192), None);
    }
}
