"""A deliberately small HTTP/1.1 server for health, metrics and index queries (no dependency).

`GET /health`, `GET /metrics`: JSON counters. `GET /query?q=EXPR`: the indexed events
matching a Riemann query, as JSON (400 with the error position for a bad query). `GET
/stream?q=EXPR`: server-sent events: the matching indexed events first, then every index
update (and expiry) that matches, as Riemann's dashboard subscribes to its index. Anything
else gets 404/405. One request per connection (`Connection: close`), headers bounded in
size and time; a stream ends when the client goes away or the server stops.

Budget: at most `max_connections` at once (kept out of the TCP listeners' descriptor
shares, so a flood there never makes `/health` unreachable). At the limit a new connection
replaces the oldest one that has been sending its request head for `SLOW_HEAD` seconds (a
real request's head comes in one packet; a burst of connections the loop has not read yet
is not slow), else it gets `503` and is closed. A stream's client that does not take what we
write within `send_timeout` is dropped; one that falls behind the index by
`subscriber_backlog` updates is dropped by the index (`streams.index.subscriptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from .base import Listener

log = logging.getLogger("streams.ingest.http")

_MAX_HEADER = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}
KEEPALIVE = 15.0  # seconds between SSE comments, so proxies and clients see a live stream
SLOW_HEAD = 1.0   # seconds: a connection still sending its request head after this may be replaced

Params = dict[str, str]


def _json_response(status: int, body: Any) -> bytes:
    payload = orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    return (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
_BUSY = _json_response(503, {"error": "too many connections; retry later"})
# a route answers (status, JSON body); a stream route answers (status, body or event iterator)
Route = Callable[[Params], tuple[int, Any]]


class HttpListener(Listener):
    def __init__(self, *args: Any, routes: dict[str, Route], streams: dict[str, Route] | None = None,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.routes = routes
        self.streams = streams or {}
        self.server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task] = set()
        # connections still sending their request head, oldest first, and since when
        self._heads: dict[asyncio.StreamWriter, float] = {}
        self.stats.update(connections=0, rejected=0, evicted=0, streams_dropped=0)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.cfg.host, self.cfg.port, limit=_MAX_HEADER)
        self.bound(self.server.sockets[0].getsockname())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        if stats["connections"] >= self.cfg.max_connections:
            oldest = next(iter(self._heads.items()), None)
            if oldest is not None and asyncio.get_running_loop().time() - oldest[1] >= SLOW_HEAD:
                stats["evicted"] += 1   # a slow sender of its head makes room (its read fails)
                del self._heads[oldest[0]]
                oldest[0].transport.abort()
            else:
                stats["rejected"] += 1
                log.warning("http connection refused: limit reached", extra={
                    "listener": self.name, "max_connections": self.cfg.max_connections})
                writer.write(_BUSY)
                writer.close()
                return
        stats["connections"] += 1
        try:
            await self._answer(reader, writer)
        finally:
            stats["connections"] -= 1

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        answered = False
        try:
            self._heads[writer] = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(min(self.cfg.greeting_timeout, 10.0)):
                    head = await reader.readuntil(b"\r\n\r\n")
            finally:
                self._heads.pop(writer, None)
            self.stats["received"] += 1
            status, body, streaming = self._route(head)
            if streaming:
                answered = True
                await self._stream(writer, body)
                return
            reply = _json_response(status, body)
            answered = True
            writer.write(reply)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            self.stats["errors"] += 1
        except Exception:  # a handler bug answers 500 to this client only
            self.stats["errors"] += 1
            log.exception("http handler failed")
            if not answered:
                with contextlib.suppress(Exception):
                    writer.write(_json_response(500, {"error": "internal error"}))
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _stream(self, writer: asyncio.StreamWriter, events: AsyncIterator[Any]) -> None:
        it = aiter(events)
        closing = asyncio.ensure_future(self._closing.wait())
        nxt: asyncio.Future | None = None  # kept across keepalives: cancelling it ends the iterator
        try:   # the subscription is registered: whatever happens from here, it is closed
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            self.stats["streams"] += 1
            while not self._closing.is_set():
                if nxt is None:
                    nxt = asyncio.ensure_future(anext(it))
                done, _ = await asyncio.wait({nxt, closing}, timeout=KEEPALIVE,
                                             return_when=asyncio.FIRST_COMPLETED)
                if nxt in done:
                    try:
                        item = nxt.result()
                    except StopAsyncIteration:
                        break
                    nxt = None
                    writer.write(b"data: " + orjson.dumps(item) + b"\n\n")
                elif closing in done:
                    break
                else:
                    writer.write(b": keepalive\n\n")
                try:
                    async with asyncio.timeout(self.cfg.send_timeout):
                        await writer.drain()
                except TimeoutError:   # a reader that does not read: dropped, never waited for
                    self.stats["streams_dropped"] += 1
                    log.warning("stream dropped: its client does not read", extra={
                        "listener": self.name, "send_timeout": self.cfg.send_timeout})
                    writer.transport.abort()
                    break
        finally:
            closing.cancel()
            if nxt is not None:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]

    def _route(self, head: bytes) -> tuple[int, Any, bool]:
        """(status, body, whether the body is an event stream: a stream route that said 200)."""
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3:
            return 400, {"error": "bad request line"}, False
        try:  # a client that does not percent-encode (curl) sends a query's non-ASCII as UTF-8
            raw = parts[1].decode("utf-8")
        except UnicodeDecodeError:
            raw = parts[1].decode("latin-1")
        method, target = parts[0].decode("latin-1"), urlsplit(raw)
        params = {k: v[-1] for k, v in parse_qs(target.query).items()}
        route = self.routes.get(target.path) or self.streams.get(target.path)
        if route is None:
            return 404, {"error": f"no such path {target.path}", "paths": sorted([*self.routes, *self.streams])}, False
        if method != "GET":
            return 405, {"error": "only GET"}, False
        status, body = route(params)
        return status, body, status == 200 and target.path in self.streams

    def close(self) -> None:
        self._closing.set()
        if self.server is not None:
            self.server.close()

    async def finish(self, timeout: float) -> None:
        """Let the open requests (streams end at once on close) complete."""
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=timeout)
