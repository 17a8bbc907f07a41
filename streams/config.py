"""Configuration: a TOML file read into dataclasses, command-line flags on top.

Runtime objects never read configuration themselves; `build()` functions take these
dataclasses. Unknown keys are errors, so a typo does not silently do nothing.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .inputs import DEFAULT_MAX_LINE


class ConfigError(ValueError):
    pass


# --max-line's ceiling: a line is held up to 4 bytes per character while its LF is looked
# for, and Elasticsearch takes no request over 100 MB anyway
MAX_LINE_LIMIT = 64 << 20


@dataclass
class ParseConfig:
    year: int | None = None
    timezone: str = "UTC"
    patterns_dirs: list[Path] = field(default_factory=list)
    max_line: int = DEFAULT_MAX_LINE


@dataclass
class ReplayConfig:
    """[replay]: `host` is the host.name of lines that name none (Fail2ban's own log, Wazuh's
    alerts.json): the host the files come from (`--host`); default: this machine's name."""

    host: str | None = None


@dataclass
class GeoIPSettings:
    """[geoip]: `layouts` any of "ecs", "logstash" (legacy `geoip.*`), "wazuh"
    (`GeoLocation.*`); `fields` maps an address field to its ECS target (a table replaces
    the whole default); `wazuh_alerts` adds `GeoLocation` to Wazuh alerts whatever the
    layouts; `max_age_days` warns (once per load) about an older database, 0 never."""

    enabled: bool = True
    city: Path | None = None  # None: the installed GeoLite2 City database, if any
    asn: Path | None = None
    cache_size: int = 65536  # addresses; 0: no cache
    layouts: list[str] = field(default_factory=lambda: ["ecs"])
    fields: dict[str, str] = field(default_factory=lambda: {
        "source.ip": "source", "client.ip": "client", "data.srcip": "source"})
    wazuh_alerts: bool = True
    reload_check_seconds: float = 60.0  # how often a changed .mmdb file is looked for
    max_age_days: float = 30.0  # MaxMind asks for updates within 30 days


@dataclass
class ElasticsearchOutput:
    """The Elasticsearch sink: on when `url` is set (`--to elasticsearch URL`). Documents are
    spooled in DIR/spool/elasticsearch (at most `spool_max_bytes`) and sent in `_bulk`
    requests of `batch_size` documents, or what there is after `flush_seconds`."""

    url: str | None = None
    batch_size: int = 1000
    flush_seconds: float = 1.0
    spool_max_bytes: int = 1 << 30
    backoff_max: float = 30.0
    request_timeout: float = 30.0
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    templates: bool = True          # install/upgrade our index templates before the first document
    # replay: give up after this many seconds in which Elasticsearch took no document (exit 3,
    # the rest stays in DIR/spool/elasticsearch for the next replay or run); 0: wait forever
    stall_timeout: float = 60.0


@dataclass
class GraphiteOutput:
    """The Graphite/Carbon sink: on when `address` ("host:port") is set (`--to graphite
    HOST:PORT`); otherwise the metrics go to DIR/graphite.txt. Points wait in a bounded
    buffer (`buffer_max_points`, the oldest dropped and counted beyond it) while Carbon is
    down, and are resent when it is back."""

    address: str | None = None
    protocol: str = "tcp"           # or "udp"
    batch_size: int = 500
    flush_seconds: float = 1.0
    buffer_max_points: int = 100_000
    backoff_max: float = 30.0
    tags: bool = False              # Graphite 1.1 tagged paths: streams.<name>;dataset=..;host=..
    # the longest retention of carbon's storage-schemas.conf (Debian's default: 60s:1d): replayed
    # points older than that are counted and warned about, as carbon drops them silently; 0: off
    retention_days: float = 1.0
    # replay: give up after this many seconds in which carbon took no point (exit 3, the
    # points then in DIR/graphite.txt); 0: wait forever
    stall_timeout: float = 60.0


@dataclass
class OutputConfig:
    dir: Path = Path("out")
    index: str = "streams-{dataset}-{date}"
    elasticsearch: ElasticsearchOutput = field(default_factory=ElasticsearchOutput)
    graphite: GraphiteOutput = field(default_factory=GraphiteOutput)


@dataclass
class MetricsConfig:
    bucket_seconds: int = 60        # replay: counts per this many seconds of event time
    flush_seconds: int = 10         # run: counts per this many seconds of arrival, written then
    template: str = "streams.<host>.<dataset>.<name>"
    telemetry: bool = True          # run: also the pipeline's own counters, as `streams.<host>.telemetry.*`


@dataclass
class IndexConfig:
    """The TTL index of `streams run` (Riemann's semantics). `snapshot`: the file the index is
    saved to every `snapshot_seconds` and at shutdown, and restored from at start (default
    DIR/index.snapshot; `persist = false` turns it off). `sources`: what enters the index:
    riemann (events with a service), fail2ban (`fail2ban <jail>`, banned count), postfix
    (`postfix queue`), logs (`log <dataset>` per host). `max_ttl` is also the ttl of a
    fail2ban/postfix entry while its count is above 0 (a state held, see index/feed.py)."""

    enabled: bool = True
    default_ttl: float = 60.0
    max_ttl: float = 365 * 86400.0
    max_entries: int = 1_000_000
    reap_seconds: float = 10.0
    persist: bool = True
    snapshot: Path | None = None
    snapshot_seconds: float = 60.0
    sources: list[str] = field(default_factory=lambda: ["riemann", "fail2ban", "postfix"])


@dataclass
class ListenerConfig:
    """One listener of `streams run`. `port = 0` asks the OS for a free port (the bound
    port is logged as a `listening` line). `max_message`: None is the protocol's default
    (syslog 64 KiB, RELP frame 128 KiB, Riemann TCP frame 16 MiB, Riemann UDP 16 KiB).

    The TCP budget (README "Limits and hardening"): at most `max_connections`; a connection
    that has not started its session (RELP `open`, a first whole syslog line or Riemann
    message; over TLS, after the handshake) within `greeting_timeout` is closed; an
    established session is never
    closed for silence unless `idle_timeout` is set (a sender such as rsyslog does not
    reconnect until its next message: a close would hold that message back) — TCP keepalive
    finds dead peers instead. When the listener is full, a new connection replaces one that
    has not started a session, else the one silent longest if silent `evict_idle_after`
    seconds (a RELP session is told `serverclose` first, so its sender reconnects at once);
    otherwise it is refused. A client that takes none of our replies for `send_timeout` is
    closed; bytes held in incomplete messages over all connections stay under `max_buffered`
    (the connection holding the most is closed beyond it)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    max_connections: int = 1000     # TCP only
    idle_timeout: float = 0.0       # TCP only: seconds of silence closing an established session; 0: never
    greeting_timeout: float = 30.0  # TCP only: seconds to start a session
    evict_idle_after: float = 60.0  # TCP only: silence that makes a session replaceable when full
    send_timeout: float = 60.0      # TCP only: seconds a client may leave our replies unread
    max_buffered: int = 64 << 20    # TCP only: bytes of incomplete messages, all connections
    max_message: int | None = None
    receive_buffer: int = 4 * 1024 * 1024  # UDP only: SO_RCVBUF, capped by net.core.rmem_max


@dataclass
class TlsListenerConfig(ListenerConfig):
    """The syslog TLS listener (RFC 5425): off until `cert_file` is set. `key_file`: the
    private key, when it is not in `cert_file`. `ca_file`: CAs whose client certificates
    are checked when a client sends one; `require_client_cert = true` refuses clients
    without one (needs `ca_file`)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    require_client_cert: bool = False
    # asyncio gives every TLS connection a 256 KiB read buffer: fewer connections by default
    max_connections: int = 256
    handshake_timeout: float = 10.0
    # sockets in their handshake at once; a new one replaces the oldest beyond it (a client
    # that stalls its handshake is the oldest, a real one completes in milliseconds)
    max_handshakes: int = 64


@dataclass
class HttpListenerConfig(ListenerConfig):
    """The HTTP listener (health, metrics, queries, `/stream` subscriptions). A subscriber
    `subscriber_backlog` updates behind the index, or whose socket takes nothing for
    `send_timeout`, is dropped: the index never waits for a reader."""

    max_connections: int = 256   # a burst of requests is read a hundred at a time
    max_subscribers: int = 32
    subscriber_backlog: int = 1000   # index updates waiting for one subscriber


def _listener(port: int) -> Any:
    return field(default_factory=lambda: ListenerConfig(port=port))


@dataclass
class ListenersConfig:
    relp: ListenerConfig = _listener(2514)
    syslog_udp: ListenerConfig = _listener(5514)
    syslog_tcp: ListenerConfig = _listener(5514)
    syslog_tls: TlsListenerConfig = field(default_factory=lambda: TlsListenerConfig(port=6514))
    riemann_tcp: ListenerConfig = _listener(5555)
    riemann_udp: ListenerConfig = _listener(5555)
    http: HttpListenerConfig = field(default_factory=lambda: HttpListenerConfig(port=5556))


@dataclass
class RunConfig:
    queue_size: int = 10_000        # events between the listeners and the worker
    # events written (and flushed, and acked) together at most, unless one socket read or
    # Riemann frame alone holds more (the listeners queue whole reads)
    batch_size: int = 500
    shutdown_timeout: float = 10.0  # seconds to drain the queue on SIGTERM/SIGINT
    # descriptors kept from the TCP listeners for output files (256 at most open), spool, sockets
    # (the HTTP listener's max_connections is kept on top of it)
    descriptor_reserve: int = 320


@dataclass
class Config:
    parse: ParseConfig = field(default_factory=ParseConfig)
    geoip: GeoIPSettings = field(default_factory=GeoIPSettings)
    output: OutputConfig = field(default_factory=OutputConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    listeners: ListenersConfig = field(default_factory=ListenersConfig)
    run: RunConfig = field(default_factory=RunConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)


_PATHS = {"patterns_dirs", "city", "asn", "dir", "cert_file", "key_file", "ca_file", "snapshot"}


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               Path: "a path (string)"}
_ITEM_NAMES = {str: "strings", Path: "paths (strings)", int: "integers"}
_TOML_TYPES = {str: "a string", int: "an integer", float: "a float", bool: "a boolean", list: "an array",
               dict: "a table"}


def _typed(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value`, read from TOML, fits the annotation `hint`, the value to keep)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for h in args:
            if h is not type(None):
                ok, v = _typed(value, h)
                if ok:
                    return True, v
        return False, value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        items = [_typed(v, args[0]) if args else (True, v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        items = {k: _typed(v, args[1]) if args else (True, v) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), value
    if hint is str or hint is Path:
        return isinstance(value, str), value
    return True, value


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in args if h is not type(None))
    if origin is list:
        return f"a list of {_ITEM_NAMES.get(args[0], 'values')}" if args else "a list"
    if origin is dict:
        return "a table"
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _fill(obj: Any, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if is_dataclass(current):  # a sub-table, e.g. [listeners.relp]
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must be a table")
            _fill(current, value, f"{where}.{key}")
            continue
        ok, value = _typed(value, hints[key])
        if not ok:
            # the TOML type only, not the value: it may be a password
            raise ConfigError(f"{where}: {key} must be {_describe(hints[key])}, "
                              f"not {_TOML_TYPES.get(type(value), type(value).__name__)}")
        if key in _PATHS and value is not None:
            value = [Path(v) for v in value] if isinstance(value, list) else Path(value)
        setattr(obj, key, value)


def load_config(path: Path | None) -> Config:
    cfg = Config()
    if path is None:
        return cfg
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    sections = {f.name for f in fields(cfg)}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(sorted(sections))})")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}]), "
                              f"not {_TOML_TYPES.get(type(values), type(values).__name__)}")
        _fill(getattr(cfg, section), values, f"{path} [{section}]")
    check_tls(cfg.listeners.syslog_tls, f"{path} [listeners.syslog_tls]")
    check_addresses(cfg, str(path))
    if not 1 <= cfg.parse.max_line <= MAX_LINE_LIMIT:   # 0 emptied every line: all of them skipped as empty
        raise ConfigError(f"{path} [parse] max_line: {cfg.parse.max_line} is not between 1 and {MAX_LINE_LIMIT}")
    for section in ("elasticsearch", "graphite"):
        if getattr(cfg.output, section).stall_timeout < 0:
            raise ConfigError(f"{path} [output.{section}] stall_timeout: at least 0 (0: wait for ever)")
    return cfg


def check_addresses(cfg: Config, where: str) -> None:
    """The output addresses (`host:port` becomes `http://host:port`) and the listeners'
    ports must be usable: a typo is a ConfigError naming the value, not a traceback later."""
    from .addresses import elasticsearch_url, host_port
    out = cfg.output
    try:
        if out.elasticsearch.url is not None:
            out.elasticsearch.url = elasticsearch_url(out.elasticsearch.url)
    except ValueError as e:
        raise ConfigError(f"{where} [output.elasticsearch] url: {e}") from None
    try:
        if out.graphite.address is not None:
            host_port(out.graphite.address)
    except ValueError as e:
        raise ConfigError(f"{where} [output.graphite] address: {e}") from None
    for f in fields(cfg.listeners):
        port = getattr(cfg.listeners, f.name).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where} [listeners.{f.name}] port: {port} is not a port (0 to 65535; 0 picks one)")


def check_tls(lc: TlsListenerConfig, where: str = "[listeners.syslog_tls]") -> None:
    """The certificate files must be readable (the listener loads them when it starts)."""
    if lc.cert_file is None:
        for key in ("key_file", "ca_file"):
            if getattr(lc, key) is not None:
                raise ConfigError(f"{where}: {key} is set but cert_file is not")
        if lc.require_client_cert:
            raise ConfigError(f"{where}: require_client_cert is set but cert_file is not")
        return
    if lc.require_client_cert and lc.ca_file is None:
        raise ConfigError(f"{where}: require_client_cert needs ca_file (the CAs client certificates are checked against)")
    for key in ("cert_file", "key_file", "ca_file"):
        value = getattr(lc, key)
        if value is None:
            continue
        try:
            with open(value, "rb"):
                pass
        except OSError as e:
            raise ConfigError(f"{where}: {key}: cannot read {value}: {e.strerror or e}") from None
