"""The configured network sinks, built the same way for `streams replay` and `streams run`."""

from __future__ import annotations

import logging
from typing import Any

from ..config import Config, ConfigError
from ..sinks.bulk_files import IndexNamer
from ..sinks.carbon import CarbonSettings, CarbonSink
from ..sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink

log = logging.getLogger("streams.outputs")


def elasticsearch_settings(cfg: Config, close_timeout: float | None) -> ElasticsearchSettings:
    e = cfg.output.elasticsearch
    assert e.url is not None
    return ElasticsearchSettings(url=e.url, batch_size=e.batch_size, flush_seconds=e.flush_seconds,
                                 spool_max_bytes=e.spool_max_bytes, backoff_max=e.backoff_max,
                                 request_timeout=e.request_timeout, close_timeout=close_timeout,
                                 api_key=e.api_key, username=e.username, password=e.password)


def health_check(client: Any, url: str) -> bool:
    """Log what the cluster says at start; unreachable is not fatal (the spool waits)."""
    try:
        h = client.cluster.health(timeout="5s")
    except Exception as e:  # noqa: BLE001 - every transport error says the same thing here
        log.warning("elasticsearch not reachable at start; events are spooled until it is: %s", e,
                    extra={"url": url})
        return False
    log.info("elasticsearch reachable", extra={"url": url, "cluster": h.get("cluster_name"),
                                                "status": h.get("status"), "nodes": h.get("number_of_nodes")})
    return True


def build_elasticsearch(cfg: Config, counters: dict[str, int] | None = None,
                        close_timeout: float | None = 10.0) -> ElasticsearchSink:
    settings = elasticsearch_settings(cfg, close_timeout)
    out = cfg.output.dir
    prepare = None
    if cfg.output.elasticsearch.templates:
        from ..sinks.es_templates import install_templates

        def prepare(client: Any) -> None:
            install_templates(client)

    sink = ElasticsearchSink(settings, out / "spool" / "elasticsearch", out / "elasticsearch-dead-letter.ndjson",
                             IndexNamer(cfg.output.index), counters=counters, prepare=prepare)
    health_check(sink.client, settings.url)
    return sink


def carbon_settings(cfg: Config, close_timeout: float | None) -> CarbonSettings:
    g = cfg.output.graphite
    assert g.address is not None
    host, sep, port = g.address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"[output.graphite] address must be HOST:PORT, not {g.address!r}")
    try:
        return CarbonSettings(host=host.strip("[]") or "127.0.0.1", port=int(port), protocol=g.protocol,
                              batch_size=g.batch_size, flush_seconds=g.flush_seconds,
                              buffer_max_points=g.buffer_max_points, backoff_max=g.backoff_max,
                              close_timeout=close_timeout, tags=g.tags)
    except ValueError as e:
        raise ConfigError(f"[output.graphite] {e}") from None


class CarbonPoints:
    """The metrics writer of the pipelines over the Carbon sink (`write(points)`, `close()`)."""

    def __init__(self, sink: CarbonSink) -> None:
        self.sink = sink

    def write(self, points: list[tuple[str, float, int]]) -> int:
        self.sink.send(points)
        return len(points)

    def close(self) -> bool:
        return self.sink.close()


def build_carbon(cfg: Config, counters: dict[str, int] | None = None,
                 close_timeout: float | None = 10.0) -> CarbonPoints:
    settings = carbon_settings(cfg, close_timeout)
    log.info("metrics go to carbon", extra={"host": settings.host, "port": settings.port,
                                            "protocol": settings.protocol})
    return CarbonPoints(CarbonSink(settings, counters))
