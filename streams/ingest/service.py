"""All listeners of `streams run` and the live pipeline, started and stopped together.

Graceful stop (SIGTERM/SIGINT): stop accepting and receiving; let every connection hand
over what it had already read; drain the queue (the worker writes, flushes and sends the
RELP acks); send RELP sessions a `serverclose` and close every connection; stop the
worker; close the output files and append the Graphite metrics. The HTTP endpoint stays
up until the end and reports `"status": "stopping"` meanwhile.

`/health` tells the truth: `200` and `"status": "ok"` only when nothing is wrong; else `503`
with `"status"` `degraded` (or `starting`/`stopping`) and `problems`, one sentence each:
outputs that cannot be written, a sink whose server is unreachable or whose spool is full,
connections at the descriptor budget or descriptors near the process's limit. `/metrics`
carries the same `health` section and the counters behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..clock import Clock, SystemClock
from ..config import Config, ListenerConfig
from ..index.query import QueryError
from ..index.subscriptions import TooManySubscribers
from ..pipeline.live import LivePipeline
from ..telemetry import LogSetup, Telemetry
from .base import Listener, TcpListener
from .descriptors import Descriptors
from .http import HttpListener
from .relp import RelpListener
from .riemann import RiemannTcpListener, RiemannUdpListener
from .syslog import SyslogTcpListener, SyslogUdpListener
from .tls import SyslogTlsListener

log = logging.getLogger("streams.run")

LISTENERS: dict[str, type[Listener]] = {
    "relp": RelpListener,
    "syslog_udp": SyslogUdpListener,
    "syslog_tcp": SyslogTcpListener,
    "syslog_tls": SyslogTlsListener,   # only when a certificate is configured
    "riemann_tcp": RiemannTcpListener,
    "riemann_udp": RiemannUdpListener,
}


class IngestService:
    def __init__(self, cfg: Config, pipeline: LivePipeline, telemetry: Telemetry, clock: Clock | None = None,
                 descriptors: Descriptors | None = None) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.clock = clock or SystemClock()
        self.descriptors = descriptors
        self.listeners: dict[str, Listener] = {}
        self.http: HttpListener | None = None
        self.status = "starting"
        self.started_at = self.clock.now()
        for name, cls in LISTENERS.items():
            lc: ListenerConfig = getattr(cfg.listeners, name)
            if lc.enabled and (name != "syslog_tls" or getattr(lc, "cert_file", None) is not None):
                self.listeners[name] = cls(name, lc, pipeline, telemetry, self.clock)
        hc = cfg.listeners.http
        if hc.enabled:
            self.http = HttpListener("http", hc, None, telemetry, self.clock,
                                     routes={"/health": self.health, "/metrics": self.metrics,
                                             "/query": self.query},
                                     streams={"/stream": self.stream})
        if descriptors is not None:
            descriptors.apportion([lst for lst in self.listeners.values() if isinstance(lst, TcpListener)])
        if pipeline.index is not None:
            subs = pipeline.index.subscriptions
            subs.max_subscribers, subs.max_pending = hc.max_subscribers, hc.subscriber_backlog

    @property
    def ports(self) -> dict[str, int | None]:
        out = {name: lst.port for name, lst in self.listeners.items()}
        if self.http is not None:
            out["http"] = self.http.port
        return out

    async def start(self) -> None:
        if self.pipeline.index is not None:
            self.pipeline.index.restore()
        self.pipeline.start()
        started: list[Listener] = []
        try:
            for lst in [*self.listeners.values(), *([self.http] if self.http else [])]:
                await lst.start()
                started.append(lst)
        except OSError:
            for lst in started:
                lst.close()
            await self.pipeline.stop()
            raise
        self.status = "ok"
        log.info("ready", extra={"ports": self.ports, "output": str(self.pipeline.output)})

    async def stop(self) -> None:
        timeout = self.cfg.run.shutdown_timeout
        self.status = "stopping"
        log.info("stopping: no new connections, draining the queue", extra={"queued": self.pipeline.queue.qsize()})
        listeners = list(self.listeners.values())
        for lst in listeners:
            lst.close()
        await asyncio.gather(*(lst.stop_reading(timeout) for lst in listeners))
        try:
            async with asyncio.timeout(timeout):
                await self.pipeline.drain()
        except TimeoutError:
            log.error("queue not drained in time: unwritten messages are lost unless their sender resends them",
                      extra={"queued": self.pipeline.queue.qsize()})
        await asyncio.gather(*(lst.finish(timeout) for lst in listeners))
        await self.pipeline.stop()
        # in a thread: closing the sinks may wait up to shutdown_timeout for a server; the
        # loop meanwhile answers /health and a second signal (which exits at once)
        points = await asyncio.to_thread(self.pipeline.close)
        self.status = "stopped"
        if self.http is not None:
            self.http.close()
            await self.http.finish(1.0)
        log.info("stopped", extra={"events": self.pipeline.stats.events, "metric_points": points,
                                   "counters": self.counters()})

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        await stop.wait()
        await self.stop()

    # -- HTTP views ----------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        for listener in self.listeners.values():
            refresh = getattr(listener, "refresh", None)
            if refresh is not None:
                refresh()
        snap = self.telemetry.snapshot()
        names = [*self.listeners, *(["http"] if self.http else [])]
        q = self.pipeline.queue
        return {
            "listeners": {n: {"port": self.ports.get(n), **snap.get(n, {})} for n in names},
            "queue": {"depth": q.qsize(), "capacity": q.maxsize},
            "sinks": {n.removeprefix("sink."): c for n, c in snap.items() if n.startswith("sink.")},
            **({"index": self.pipeline.index.counters()} if self.pipeline.index is not None else {}),
            **({"geoip": self.pipeline.geoip.stats()} if self.pipeline.geoip is not None else {}),
            "events": self.pipeline.stats.events,
            "datasets": dict(self.pipeline.stats.datasets),
            **({"descriptors": self.descriptors.state()} if self.descriptors is not None else {}),
            "log_lines_suppressed": LogSetup.limit.suppressed if LogSetup.limit is not None else 0,
        }

    def problems(self) -> list[str]:
        found = self.pipeline.problems()
        if self.descriptors is not None and (d := self.descriptors.problem()):
            found.append(d)
        return found

    def verdict(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the health section): 200 only when running with nothing wrong."""
        problems = self.problems()
        status = self.status if self.status != "ok" else ("degraded" if problems else "ok")
        return (200 if status == "ok" else 503), {"status": status, "problems": problems}

    def health(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code, verdict = self.verdict()
        return code, {**verdict, "uptime_seconds": round(self.clock.now() - self.started_at, 3), **self.counters()}

    def metrics(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return 200, {"health": self.verdict()[1], **self.counters()}

    def query(self, params: dict[str, str]) -> tuple[int, Any]:
        """`/query?q=EXPR`: the indexed events matching a Riemann query."""
        index = self.pipeline.index
        if index is None:
            return NO_INDEX
        if "q" not in params:
            return 400, {"error": "missing parameter q (a query such as: service =~ \"fail2ban%\")"}
        try:
            events = index.query(params["q"])
        except QueryError as e:
            return bad_query(e)
        return 200, {"query": params["q"], "count": len(events), "events": [ev.to_riemann() for ev in events]}

    def stream(self, params: dict[str, str]) -> tuple[int, Any]:
        """`/stream?q=EXPR`: server-sent events of the matching entries, then their updates."""
        index = self.pipeline.index
        if index is None:
            return NO_INDEX
        try:
            return 200, index.subscribe(params.get("q", "true"))
        except QueryError as e:
            return bad_query(e)
        except TooManySubscribers as e:
            return 503, {"error": f"too many subscribers: {e}; retry later"}


NO_INDEX = (503, {"error": "no index"})


def bad_query(e: QueryError) -> tuple[int, dict[str, Any]]:
    """400 with where the query went wrong (the column), as `/query` and `/stream` answer."""
    return 400, {"error": f"parse error: {e.message}", "position": e.position, "detail": str(e)}
