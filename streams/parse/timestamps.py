"""Time zones of log lines: the parsing of timestamps is the native core's
(native/src/timestamps.rs); a zone it does not know is a configuration error."""

from __future__ import annotations


class UnknownTimezone(ValueError):
    pass
