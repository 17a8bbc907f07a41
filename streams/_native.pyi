"""Typed face of the Rust extension `streams._native` (native/, built by maturin)."""

__version__: str

def priority(pri: int) -> tuple[int, str, int, str] | None:
    """`priority(38)` -> `(4, "auth", 6, "info")`, or None past 191."""

def parse_syslog(
    line: str, year: int | None, tz: str, now: float
) -> tuple[dict, str | None, str] | None:
    """The syslog header of `line`: `(fields, program, message)` as
    `streams.parse.syslog.parse_syslog(line, {}, TimeParser(year, tz, ManualClock(now)))`
    writes and returns them, or None where it returns None. An unknown time zone raises
    ValueError."""
