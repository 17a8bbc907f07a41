"""A deliberately tiny HTTP/1.0-style server for health and metrics (no dependency).

`GET /health` -> 200 `{"status": "ok" | "stopping", ...counters}`; `GET /metrics` -> 200
the counters (per listener: received, accepted, errors, dropped, queued, connections; per
sink: sent, failed; the queue's depth and capacity). Anything else gets 404/405. One
request per connection (`Connection: close`), headers bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from .base import Listener

log = logging.getLogger("streams.ingest.http")

_MAX_HEADER = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class HttpListener(Listener):
    def __init__(self, *args: Any, routes: dict[str, Callable[[], dict]], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.routes = routes
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.cfg.host, self.cfg.port, limit=_MAX_HEADER)
        self.bound(self.server.sockets[0].getsockname())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(min(self.cfg.idle_timeout, 10.0)):
                head = await reader.readuntil(b"\r\n\r\n")
                status, body = self._route(head)
                self.stats["received"] += 1
                payload = orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
                writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            self.stats["errors"] += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _route(self, head: bytes) -> tuple[int, dict]:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3:
            return 400, {"error": "bad request line"}
        method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1").split("?", 1)[0]
        route = self.routes.get(target)
        if route is None:
            return 404, {"error": f"no such path {target}", "paths": sorted(self.routes)}
        if method != "GET":
            return 405, {"error": "only GET"}
        return 200, route()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
