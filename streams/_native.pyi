"""Type stubs of streams._native, the Rust core built from native/ (see native/README.md)."""

import os
from collections.abc import Callable, Sequence
from typing import Any

__version__: str

# -- syslog (native/src/syslog.rs) ------------------------------------------------------

def priority(pri: int) -> tuple[int, str, int, str] | None:
    """`priority(38)` -> `(4, "auth", 6, "info")`, or None for a value past 191."""

# -- the syslog header (native/src/header.rs, timestamps.rs) ----------------------------

def parse_syslog(
    line: str, year: int | None, tz: str, now: float
) -> tuple[dict, str | None, str] | None:
    """The syslog header of `line`: `(fields, program, message)` (what the header puts in
    the document, the program name, the message), or None when the line has no syslog
    header. `year`: of year-less stamps (None: guessed from `now`); naive times are in `tz`.
    An unknown time zone raises ValueError."""

# -- grok (native/src/grok.rs, native/src/grok_py.rs) -----------------------------------

# A constant field of a rule (`set:`): (parents, leaf, value).
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
        """(rule name, fields) of the first rule that matches all of `text` (nested, typed
        captures, the rule's constants, nothing for an unmatched optional capture), or None.
        GrokLimitError when a regex limit was hit before a rule matched."""

# -- the parse core (native/src/parser.rs, ops.rs, parser_py.rs) -------------------------

class Parser:
    """Line -> document: the line's shape (JSON, the forms products declare, syslog), the
    header, program -> product, the product's rules and declarative ops (`ops:`). Built by
    `streams.parse.native.native_parser` from the pattern directories; ValueError naming
    the file and the problem for a rule file, pattern or op it refuses."""

    def __init__(self, definitions: dict[str, str], parsers: list[dict], *, year: int | None = None,
                 timezone: str = "local", now: float = 0.0, max_line: int = 65536,
                 match_limit: int = 1_000_000, depth_limit: int = 10_000) -> None: ...
    def parse(self, line: str) -> tuple[dict[str, Any], str | None, list[str], str | None, list[str] | None]:
        """(fields, message, tags, rule, Python hooks still to run or None) of one line."""
    def parse_batch(self, data: bytes,
                    hooks: Callable[..., tuple[dict[str, Any], str | None, list[str]]] | None = None) -> bytes:
        """NDJSON of the documents of the non-blank lines of `data` (whole lines; decoded,
        cut and flagged as `streams.inputs.iter_lines` does), the GIL released."""
    def parse_docs(self, data: bytes) -> list[dict[str, Any]]:
        """The same documents as dicts."""
    def new_input(self) -> None:
        """The next line starts another input: no continuation across."""
    def set_now(self, now: float) -> None:
        """The clock time year-less stamps take their year from."""
    def stats(self) -> dict[str, int]:
        """Counters: lines, truncated, grok_failure, no_parser, unrecognised, json_failure,
        continuation, grok_limit, parser_error, python_hook, input problems."""
    def table_sizes(self) -> dict[str, int]:
        """Rows held by each correlation table."""
    def rules(self) -> list[tuple[str, str]]:
        """(parser, rule) of every rule, in priority order."""
    def hook_names(self) -> list[str]: ...
    @property
    def has_hooks(self) -> bool: ...
    @property
    def max_line(self) -> int: ...

# -- GeoIP (native/src/geoip.rs, native/src/geoip/, native/src/geoip_py.rs) ---------------

class MaxMindDB:
    """A MaxMind DB file, memory-mapped (replace it by rename, never write it in place).
    OSError when it cannot be read, ValueError when it is not a MaxMind DB."""

    def __init__(self, path: str | os.PathLike[str]) -> None: ...
    @property
    def database_type(self) -> str: ...
    @property
    def build_epoch(self) -> int: ...
    @property
    def node_count(self) -> int: ...
    @property
    def ip_version(self) -> int: ...
    def get(self, ip: str) -> dict[str, Any] | None:
        """The whole record of an address, or None (an IPv6 address in an IPv4-only file:
        None too). ValueError for a text that is not an address or a damaged file."""
    def close(self) -> None:
        """Unmaps the file once no GeoIP holds it either."""

class GeoIP:
    """The enricher: lookups, the LRU of built fragments (per address text), the layouts
    and the counters. `fields`: (dotted address field, ECS target) in order; `layouts`:
    any of "ecs", "logstash", "wazuh". The batch pipeline calls its Rust `inner` directly."""

    NOT_PUBLIC: dict[int, tuple[str, ...]]
    def __init__(self, fields: Sequence[tuple[str, str]], layouts: Sequence[str], *,
                 wazuh_alerts: bool = True, cache_size: int = 65536) -> None: ...
    def set_database(self, kind: str, db: MaxMindDB | None) -> None:
        """The `city` or `asn` database (None: none); the cache is cleared."""
    def enrich(self, fields: dict[str, Any], tags: list[str]) -> None:
        """Adds `<target>.geo`/`.as`, `geoip`, `GeoLocation` to `fields` in place, never
        over a field already there; appends "_geoip_lookup_failure" to `tags` once when a
        public address is in no database."""
    def clear_cache(self) -> None: ...
    def stats(self) -> dict[str, int]:
        """lookups, hits, misses, cache_entries, enriched, failures, skipped_private,
        skipped_invalid (hits and misses survive clear_cache)."""
    @staticmethod
    def address(text: str) -> tuple[int, int, str] | None:
        """(version, integer, canonical text) of an address literal, else None."""
    @staticmethod
    def is_public(version: int, n: int) -> bool: ...


class Pipeline:
    """The batch pipeline after the parse (`native/src/pipeline.rs`): GeoIP, host and time
    defaults, `_id`, index, output bytes per index, the batch's counts; the GIL released."""

    def __init__(self, parser: Parser, *, index_template: str, per_dataset: list[tuple[str, str]],
                 format: str = "bulk", bucket_seconds: int = 60,
                 hooks: Callable[..., tuple[dict[str, Any], str | None, list[str]]] | None = None,
                 geoip: GeoIP | None = None) -> None: ...
    def replay(self, data: bytes, *, source: str, first_line: int, now: float,
               host: str | None = None) -> dict[str, Any]:
        """lines, empty, events, chunks [(index, bytes, count, positions)], datasets,
        problems, security [(address, bans, failures, country)], side."""
    def live(self, items: list[Any], structured: Callable[[Any, int], tuple[dict[str, Any], str] | None], *,
             open_bucket: int, feed: int = 1) -> dict[str, Any]:
        """As `replay`, plus `failed` [(position, why)], `acks` [(position, ack)] and
        `structured` [(position, document)] of the structured (Riemann) events written."""
    def take_metrics(self, before: int | None = None) -> list[tuple[tuple[int, str, str, str], int]]: ...

def event_id_of(parts: list[bytes]) -> str: ...
def index_name(template: str, dataset: str, timestamp: str) -> str: ...
def metric_counts(doc: dict[str, Any], bucket_seconds: int,
                  bucket: int | None = None) -> list[tuple[tuple[int, str, str, str], int]]: ...
def side_record(doc: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None, str | None,
                                              str | None, bool, bool]: ...

# -- syslog framing (native/src/framing.rs, framing_py.rs) ------------------------------
# `streams/protocols/framing.py` names these; the listeners use the record paths.

DEFAULT_MAX_SIZE: int
DEFAULT_MAX_COUNT: int

class Frame:
    """One syslog message (its line end stripped) and what went wrong with it."""

    data: bytes
    truncated: bool
    unterminated: bool
    error: str | None
    def __init__(self, data: bytes, truncated: bool = False, unterminated: bool = False,
                 error: str | None = None) -> None: ...
    @property
    def ok(self) -> bool: ...

class SyslogFramer:
    """RFC 6587 stream framing for one TCP connection (sans-IO)."""

    max_size: int
    max_count: int
    framing: str | None
    buffered: int
    def __init__(self, max_size: int = ..., max_count: int = ...) -> None: ...
    def receive_data(self, data: bytes) -> list[Frame]: ...
    def end_of_stream(self) -> list[Frame]: ...
    def receive_records(self, data: bytes, factory: Callable[..., Any], listener: str, now: float,
                        peer: Any) -> tuple[list[Any], int, int, list[str]]:
        """(records, frames, empty, errors): `factory(listener, now, text, None, tags, peer)`
        per frame with text (decoded as `decode_line` does)."""
    def end_of_stream_records(self, factory: Callable[..., Any], listener: str, now: float,
                              peer: Any) -> tuple[list[Any], int, int, list[str]]: ...

def datagram_frame(data: bytes, max_size: int = ...) -> Frame | None: ...
def datagram_record(data: bytes, max_size: int, factory: Callable[..., Any], listener: str, now: float,
                    peer: Any) -> Any | None: ...
def detect_framing(prefix: bytes) -> str | None: ...
def strip_eol(data: bytes) -> bytes: ...
def decode_line(raw: bytes) -> tuple[str, tuple[str, ...]]:
    """As `streams.inputs.decode_line`."""

# -- RELP (native/src/relp.rs, relp_py.rs) -----------------------------------------------
# `streams/protocols/relp.py` names these.

RELP_DEFAULT_MAX_FRAME: int
RELP_MAX_TXNR: int
RELP_VERSION: int

class Open:
    txnr: int
    offers: dict[str, str]
    def __init__(self, txnr: int, offers: dict[str, str]) -> None: ...

class Syslog:
    txnr: int
    message: bytes
    def __init__(self, txnr: int, message: bytes) -> None: ...

class Close:
    txnr: int
    def __init__(self, txnr: int) -> None: ...

class ProtocolError:
    reason: str
    txnr: int | None
    fatal: bool
    def __init__(self, reason: str, txnr: int | None = None, fatal: bool = True) -> None: ...

class RelpAck:
    """A record's ack: `ack(ok)` answers its txnr into the connection's outbox."""

    txnr: int
    def __call__(self, ok: bool) -> None: ...

class RelpServerConnection:
    """One RELP session, server side (sans-IO)."""

    max_frame: int
    software: str
    is_open: bool
    failed: bool
    closing: bool
    unacked: tuple[int, ...]
    buffered: int
    pending: int
    def __init__(self, max_frame: int = ..., software: str | None = None, *,
                 notify: Callable[[bool, bool, bool], None] | None = None,
                 nak_reason: str | None = None) -> None: ...
    def receive_data(self, data: bytes) -> list[Open | Syslog | Close | ProtocolError]: ...
    def receive_records(self, data: bytes, factory: Callable[..., Any], listener: str, now: float,
                        peer: Any) -> tuple[list[Any], list[Open | Close | ProtocolError]]:
        """(records, other events): `factory(listener, now, text, None, tags, peer, RelpAck)`
        per syslog frame."""
    def take_replies(self) -> bytes: ...
    def answer_open(self, txnr: int | None = None) -> bytes: ...
    def ack(self, txnr: int) -> bytes: ...
    def nak(self, txnr: int, reason: str = "error") -> bytes: ...
    def answer_close(self, txnr: int) -> bytes: ...
    @staticmethod
    def server_close() -> bytes: ...

def build_frame(txnr: int, command: str, data: bytes = b"") -> bytes: ...
def parse_offers(data: bytes) -> dict[str, str]: ...
def next_txnr(txnr: int) -> int: ...

def decode_riemann(payload: bytes, event_class: type, msg_class: type) -> Any | None:
    """The `Msg` of a Riemann protobuf payload with its `Event`s, or None where the pure
    decoder must answer (native/src/riemann.rs)."""

def settle(acks: list[tuple[int, Callable[[bool], None]]], refused: set[int], failed: bool) -> list[BaseException]:
    """Calls each ack with ok (unless `failed` or its position is refused); the errors raised."""
