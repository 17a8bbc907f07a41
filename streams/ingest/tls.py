"""Syslog over TLS (RFC 5425): the TCP syslog listener behind a TLS handshake.

Each accepted socket is upgraded with `StreamWriter.start_tls` before the syslog
connection handler sees it, so a failed handshake (a plain-TCP client, an unknown or
missing client certificate, a client that stalls) is caught here: logged, counted as an
error of this listener (`errors` and `tls_handshake_failed`), and the socket is closed;
other connections never notice. After the handshake the bytes go through the same
`SyslogFramer` as plain TCP: RFC 5425's octet counting, or LF framing, detected per
connection.

Handshakes are a budget of their own: at most `max_handshakes` at once, each within
`handshake_timeout`; a new connection beyond that replaces the oldest one still in its
handshake (a client that stalls its ClientHello is the oldest; a real one completes in
milliseconds), so a flood of half-open handshakes neither locks real senders out nor holds
asyncio's 256 KiB buffer per socket for long.

The listener is only built when `cert_file` is configured. The certificate and key are
loaded when it starts; a file that cannot be loaded stops `streams run` (exit 2).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from ..config import TlsListenerConfig
from .base import peer_text
from .syslog import SyslogTcpListener

log = logging.getLogger("streams.ingest.tls")

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


def forget_traceback(e: BaseException | None) -> None:
    """Drop the tracebacks of a failed handshake's exception chain. asyncio keeps the
    exception in its handshake future, and the traceback's frames hold the SSL protocol with
    its 256 KiB read buffer: a reference cycle that only a full collection frees. Under a
    flood of broken handshakes that was 300 MB per 1,000 connections."""
    while e is not None:
        e.__traceback__ = None
        e = e.__context__


class SyslogTlsListener(SyslogTcpListener):
    kind = "tls"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stats.update(tls_handshake_failed=0, handshakes_evicted=0)
        self.ssl: ssl.SSLContext | None = None
        # sockets in their handshake (and the task doing it), oldest first: they count
        # against max_connections
        self.handshaking: dict[asyncio.StreamWriter, asyncio.Task | None] = {}

    def _in_use(self) -> int:
        return super()._in_use() + len(self.handshaking)

    def _make_room(self) -> bool:
        if self.handshaking:   # a stalled handshake goes first
            self._evict_handshake()
            return True
        return super()._make_room()

    def _evict_handshake(self) -> None:
        """Cancel the oldest handshake (its task closes the socket). Cancelled, not aborted
        under it: an abort makes asyncio's start_tls return None instead of raising, and
        leaves a StreamWriter without a transport."""
        writer, task = next(iter(self.handshaking.items()))
        del self.handshaking[writer]
        self.stats["handshakes_evicted"] += 1
        log.warning("TLS handshake aborted: replaced by a new connection", extra={
            "listener": self.name, "peer": peer_text(writer.get_extra_info("peername"))})
        if task is not None:
            task.cancel()
        else:
            writer.transport.abort()

    async def start(self) -> None:
        self.ssl = server_context(self.cfg)   # before binding: a bad certificate is a start error
        await super().start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refused(writer):
            return
        if len(self.handshaking) >= self.cfg.max_handshakes:
            self._evict_handshake()
        task = self.handshaking[writer] = asyncio.current_task()
        try:
            await writer.start_tls(self.ssl, ssl_handshake_timeout=self.cfg.handshake_timeout)
        except asyncio.CancelledError:
            if writer in self.handshaking or task is None:
                raise   # not cancelled by _evict_handshake
            task.uncancel()
            writer.transport.abort()
            return
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError, EOFError) as e:
            if writer in self.handshaking:   # not one we aborted ourselves
                self.stats["errors"] += 1
                self.stats["tls_handshake_failed"] += 1
                log.warning("TLS handshake failed: %s", e or type(e).__name__,
                            extra={"listener": self.name, "peer": peer_text(writer.get_extra_info("peername"))})
            writer.transport.abort()
            forget_traceback(e)
            return
        finally:
            self.handshaking.pop(writer, None)
        if writer.transport is None:   # done, then aborted before we resumed: start_tls gave None
            return
        await self._serve(reader, writer)

