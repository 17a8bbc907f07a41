"""Type stubs of streams._native, the Rust core built from native/ (see native/README.md)."""

from collections.abc import Sequence
from typing import Any

__version__: str

# -- syslog (native/src/syslog.rs) ------------------------------------------------------

def priority(pri: int) -> tuple[int, str, int, str] | None:
    """`priority(38)` -> `(4, "auth", 6, "info")`, or None for a value past 191."""

# -- the syslog header (native/src/header.rs, timestamps.rs) ----------------------------

def parse_syslog(
    line: str, year: int | None, tz: str, now: float
) -> tuple[dict, str | None, str] | None:
    """The syslog header of `line`: `(fields, program, message)` as
    `streams.parse.syslog.parse_syslog(line, {}, TimeParser(year, tz, ManualClock(now)))`
    writes and returns them, or None where it returns None. An unknown time zone raises
    ValueError."""

# -- grok (native/src/grok.rs, native/src/grok_py.rs) -----------------------------------

# A constant field of a rule, as `ProductParser.sets + Rule.sets` hold it: (parents, leaf, value).
Static = tuple[Sequence[str], str, Any]

class GrokLimitError(RuntimeError):
    """A regex resource limit (match limit, depth, JIT stack) was hit on a text: it may or
    may not match (the caller tags the line, e.g. `_grok_limit`)."""

class Grok:
    """Grok definitions (`NAME -> regex`, Python `re` syntax, as the .grok files hold them),
    compiled with PCRE2 (UTF, UCP, DOTALL, JIT) into rule alternations."""

    def __init__(self, definitions: dict[str, str], *, match_limit: int = 1_000_000,
                 depth_limit: int = 10_000) -> None: ...
    def expand(self, expr: str) -> str:
        """The regex `expr` expands to (captures named `_g1`, `_g2`, …); ValueError for an
        unknown or recursive reference or a bad field name."""
    def validate(self) -> None:
        """Compiles every definition alone; ValueError naming each one that does not."""
    def compile_rules(self, name: str, items: Sequence[tuple[str, str, Sequence[Static]]]) -> GrokMatcher:
        """One product parser's rules in priority order: (rule name, expression such as
        `%{SSHD_FAILED}`, constant fields). ValueError naming the rule at fault."""

class GrokMatcher:
    """A product parser's compiled rules (Python's `compile_alternation`)."""

    name: str
    @property
    def rules(self) -> list[str]: ...
    @property
    def jit(self) -> bool:
        """Whether every regex runs on PCRE2's JIT (else its interpreter)."""
    @property
    def chunks(self) -> int:
        """How many regexes the rules were split into (PCRE2's compiled-size limit)."""
    def match(self, text: str) -> tuple[str, dict[str, Any]] | None:
        """(rule name, fields) of the first rule that matches all of `text` (the fields as
        Python's `Alternation.match(text, {})` writes them: nested, typed captures, the
        rule's constants, nothing for an unmatched optional capture), or None.
        GrokLimitError when a regex limit was hit before a rule matched."""
