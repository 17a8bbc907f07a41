"""Timestamp parsing for log lines, with caches because logs repeat their seconds.

Year-less syslog dates take the year from `year` when given, else from the clock: a date
more than a day ahead of "now" belongs to the previous year (a December line read in
January), and a January line seen in December belongs to the next one. Naive times are
in `tz` (default UTC).
"""

from __future__ import annotations

import re
from calendar import isleap
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..clock import Clock, SystemClock
from ..event import format_timestamp

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_CACHE_MAX = 65536
_GUESS_TTL = 3600.0  # seconds a year guessed from the clock is reused from the cache
_FRACTION_MARKS = (".", ",")
_FRACTION = re.compile(r"[0-9]+")


class UnknownTimezone(ValueError):
    pass


def get_tz(name: str | None) -> tzinfo:
    if not name or name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimezone(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None


class TimeParser:
    """Turns the timestamp texts of log lines into (epoch seconds, ISO 8601 UTC text)."""

    def __init__(self, year: int | None = None, tz: str | None = None, clock: Clock | None = None) -> None:
        self.year = year
        self.tz = get_tz(tz)
        self.clock = clock or SystemClock()
        # text -> (epoch, iso) or None; read directly by the syslog header's hot path
        self.cache: dict[str, tuple[float, str] | None] = {}
        # clock time until which the cached year guesses hold (a long-running process
        # must not give next year's `Mar  5 06:25:01` the year it guessed this year)
        self._guesses_until = float("-inf")

    def _remember(self, key: str, value: tuple[float, str] | None) -> tuple[float, str] | None:
        if len(self.cache) >= _CACHE_MAX:
            self.cache.clear()
        self.cache[key] = value
        return value

    def _finish(self, dt: datetime) -> tuple[float, str]:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.tz)
        epoch = dt.timestamp()
        return epoch, format_timestamp(epoch)

    def _guess_year(self, month: int, day: int, hms: tuple[int, int, int]) -> int:
        if self.year is not None:
            return self.year
        t = self.clock.now()
        if t >= self._guesses_until:  # only on a cache miss: a new second of log does it
            self.cache.clear()
            self._guesses_until = t + _GUESS_TTL
        now = datetime.fromtimestamp(t, self.tz)
        year = now.year
        if month == 1 and now.month == 12:
            return year + 1
        if month == 2 and day == 29:
            # a leap day without a year: the latest leap year not ahead of now (2024 for
            # a `Feb 29` read in 2026, or in January 2028)
            while not isleap(year) or datetime(year, 2, 29, *hms, tzinfo=self.tz) - now > timedelta(days=1):
                year -= 1
            return year
        try:
            candidate = datetime(year, month, day, *hms, tzinfo=self.tz)
        except ValueError:  # not a date (`Apr 31`): left to the caller
            return year
        if candidate - now > timedelta(days=1):
            return year - 1
        return year

    def syslog(self, month: str, day: str, clock_time: str, year: str | None = None) -> tuple[float, str] | None:
        """`Feb`, `5`, `14:34:10[.123]`, optional year -> (epoch, iso)."""
        return self.syslog_cached(f"{month} {day} {clock_time} {year}", month, day, clock_time, year)

    def syslog_cached(self, key: str, month: str, day: str, clock_time: str,
                      year: str | None) -> tuple[float, str] | None:
        """`syslog`, cached under `key` (the hot path passes the timestamp's own text, so a
        hit costs one dict lookup)."""
        hit = self.cache.get(key, False)
        if hit is not False:
            return hit
        try:
            mon = MONTHS[month[:3].lower()]
            d = int(day)
            hh, mm, rest = clock_time.split(":")
            ss, _, frac = rest.replace(",", ".").partition(".")
            hms = (int(hh), int(mm), int(ss))
            micro = int((frac + "000000")[:6]) if frac else 0
            y = int(year) if year else self._guess_year(mon, d, hms)
            value = self._finish(datetime(y, mon, d, *hms, micro))
        except (KeyError, ValueError):
            value = None
        return self._remember(key, value)

    def iso(self, text: str) -> tuple[float, str] | None:
        """ISO 8601 / RFC 3339 (`T` or space, `,` or `.` fraction, `Z`, `+hh:mm`, `+hhmm`)."""
        hit = self.cache.get(text, False)
        if hit is not False:
            return hit
        if text[19:20] in _FRACTION_MARKS and text[4:5] == "-" and text[16:17] == ":":
            m = _FRACTION.match(text, 20)
            if m is not None and len(text) - m.end() <= 6:  # `Z`, `+hh:mm`, `+hhmm`, none
                return self._iso_fraction(text, m)
        return self._iso_parse(text)

    def _iso_parse(self, text: str) -> tuple[float, str] | None:
        try:
            value = self._finish(datetime.fromisoformat(text.replace(",", ".")))
        except ValueError:
            value = None
        return self._remember(text, value)

    def _iso_fraction(self, text: str, m: re.Match) -> tuple[float, str] | None:
        """A stamp with a fraction (`2024-08-26T01:33:38.572449+00:00`) is seldom seen
        twice: the whole second (with its offset) is parsed once and cached, and the
        milliseconds are copied from the text (the output keeps milliseconds, truncated)."""
        second = text[:19] + text[m.end():]
        base = self.cache.get(second, False)
        if base is False:
            base = self._iso_parse(second)
        if base is None:
            return None
        frac = m[0]
        return self._remember(text, (base[0] + int(frac[:6].ljust(6, "0")) / 1e6,
                                     f"{base[1][:20]}{frac[:3].ljust(3, '0')}Z"))

    def epoch(self, seconds: float) -> tuple[float, str]:
        return seconds, format_timestamp(seconds)

    def now(self) -> tuple[float, str]:
        return self.epoch(self.clock.now())


def fixed_offset(minutes: int) -> tzinfo:
    return timezone(timedelta(minutes=minutes))
