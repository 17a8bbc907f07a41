"""Server addresses a user types (`--to elasticsearch URL`, `--to graphite HOST:PORT`,
`setup --url`, `query --url`, the config keys), checked once before anything starts: a
typo is one configuration line and exit 2, not a client library's traceback, nor a sender
retrying an address that cannot work forever."""

from __future__ import annotations

import re
import urllib.parse


def http_url(text: str, default_port: int) -> str:
    """`http(s)://host[:port][/path]` as given, or with `http://` and `default_port` added:
    `host:port` and `host` are taken as `http://host:port` (as Logstash's `hosts` are);
    https without a port is 443. ValueError naming the value (its password masked) when
    it cannot work: another scheme, no host, a bad port, a query or fragment."""
    shown = masked(text)
    url = text.strip()
    if not url:
        raise ValueError("an empty URL")
    if "://" not in url:
        url = "http://" + url
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError as e:  # a port that is not a number or over 65535, a bad IPv6 address
        raise ValueError(f"{shown!r}: {e}") from None
    if u.scheme not in ("http", "https"):
        raise ValueError(f"{shown!r}: the scheme must be http or https, not {u.scheme!r}")
    if not u.hostname or not re.fullmatch(r"[\w.:%\-\[\]]+", u.hostname):
        raise ValueError(f"{shown!r}: no host name")
    if port == 0 or u.netloc.endswith(":"):
        raise ValueError(f"{shown!r}: bad port")
    if u.query or u.fragment:
        raise ValueError(f"{shown!r}: a server URL takes no query or fragment")
    if port is None and u.scheme == "http":
        netloc = u.netloc + f":{default_port}"
        return urllib.parse.urlunsplit((u.scheme, netloc, u.path, "", ""))
    return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, "", ""))


def elasticsearch_url(text: str) -> str:
    """An Elasticsearch URL: `http_url` with 9200, Elasticsearch's port, as the default."""
    return http_url(text, 9200)


def host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT`; `:PORT` is 127.0.0.1) -> (host, port); ValueError naming
    the value otherwise."""
    t = text.strip()
    host, sep, port = t.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if "://" in t or "/" in host:
        raise ValueError(f"{text!r}: HOST:PORT, not a URL")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: must be HOST:PORT with a port from 1 to 65535")
    if host and not re.fullmatch(r"[\w.:%\-]+", host):
        raise ValueError(f"{text!r}: bad host name")
    return host or "127.0.0.1", int(port)


def masked(text: str) -> str:
    """The URL with its password, if any, replaced: it ends up in logs."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", text)
