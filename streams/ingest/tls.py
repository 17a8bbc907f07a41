"""Syslog over TLS (RFC 5425): the TCP syslog listener behind a TLS handshake.

Each accepted socket is upgraded with `StreamWriter.start_tls` before the syslog
connection handler sees it, so a failed handshake (a plain-TCP client, an unknown or
missing client certificate, a client that stalls) is caught here: logged, counted as an
error of this listener (`errors` and `tls_handshake_failed`), and the socket is closed;
other connections never notice. After the handshake the bytes go through the same
`SyslogFramer` as plain TCP: RFC 5425's octet counting, or LF framing, detected per
connection.

The listener is only built when `cert_file` is configured. The certificate and key are
loaded when it starts; a file that cannot be loaded stops `streams run` (exit 2).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from ..config import TlsListenerConfig
from .syslog import SyslogTcpListener

log = logging.getLogger("streams.ingest.tls")

HANDSHAKE_TIMEOUT = 60.0   # seconds, at most (the idle timeout when shorter)


class TlsConfigError(OSError):
    """The certificate, key or CA file cannot be loaded."""


def server_context(cfg: TlsListenerConfig) -> ssl.SSLContext:
    if cfg.cert_file is None:
        raise TlsConfigError("no cert_file configured")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # No TLS 1.3 session tickets: they are the only bytes we would send after the
    # handshake, and a sender that never reads them and closes makes its kernel send an
    # RST, which can discard its last messages before we have read them.
    ctx.num_tickets = 0
    try:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (OSError, ssl.SSLError) as e:
        raise TlsConfigError(f"cannot load the certificate {cfg.cert_file} / key {cfg.key_file or cfg.cert_file}: "
                             f"{e}") from None
    if cfg.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=cfg.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise TlsConfigError(f"cannot load the CA file {cfg.ca_file}: {e}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


class SyslogTlsListener(SyslogTcpListener):
    kind = "tls"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stats.update(tls_handshake_failed=0)
        self.ssl: ssl.SSLContext | None = None
        self.handshakes = 0   # sockets in their handshake: they count against max_connections

    def _in_use(self) -> int:
        return len(self.connections) + self.handshakes

    async def start(self) -> None:
        self.ssl = server_context(self.cfg)   # before binding: a bad certificate is a start error
        await super().start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refused(writer):
            return
        peer = writer.get_extra_info("peername")
        timeout = min(self.cfg.idle_timeout, HANDSHAKE_TIMEOUT)
        self.handshakes += 1
        try:
            await writer.start_tls(self.ssl, ssl_handshake_timeout=timeout)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError, EOFError) as e:
            self.stats["errors"] += 1
            self.stats["tls_handshake_failed"] += 1
            peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
            log.warning("TLS handshake failed: %s", e or type(e).__name__,
                        extra={"listener": self.name, "peer": peer_text})
            writer.close()
            return
        finally:
            self.handshakes -= 1
        await super()._accept(reader, writer)
