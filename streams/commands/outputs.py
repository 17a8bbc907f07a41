"""The configured network sinks, built the same way for `streams replay` and `streams run`."""

from __future__ import annotations

import logging
from typing import Any

from ..addresses import host_port
from ..config import Config, ConfigError
from ..pipeline.live import MetricsWriter
from ..sinks.bulk_files import IndexNamer
from ..sinks.carbon import TAGGED_TEMPLATE, CarbonSettings, CarbonSink
from ..sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink

log = logging.getLogger("streams.outputs")


def elasticsearch_settings(cfg: Config, close_timeout: float | None, give_up: bool = False) -> ElasticsearchSettings:
    """`give_up`: waits end after the configured `stall_timeout` without progress (replay)."""
    e = cfg.output.elasticsearch
    assert e.url is not None
    return ElasticsearchSettings(url=e.url, batch_size=e.batch_size, flush_seconds=e.flush_seconds,
                                 spool_max_bytes=e.spool_max_bytes, backoff_max=e.backoff_max,
                                 request_timeout=e.request_timeout, close_timeout=close_timeout,
                                 stall_timeout=(e.stall_timeout or None) if give_up else None,
                                 api_key=e.api_key, username=e.username, password=e.password)


def health_check(client: Any, url: str) -> bool:
    """Whether the cluster answers (`streams setup`), said in one line either way."""
    try:
        h = client.cluster.health(timeout="5s")
    except Exception as e:  # noqa: BLE001 - every transport error says the same thing here
        log.error("elasticsearch not reachable at %s: %s", url, e, extra={"url": url})
        return False
    log.info("elasticsearch reachable", extra={"url": url, "cluster": h.get("cluster_name"),
                                                "status": h.get("status"), "nodes": h.get("number_of_nodes")})
    return True


def build_elasticsearch(cfg: Config, counters: dict[str, int] | None = None,
                        close_timeout: float | None = 10.0, give_up: bool = False) -> ElasticsearchSink:
    """The sink; its sender thread installs the templates first (when enabled), retrying
    while the cluster is unreachable, and logs when it is down and back up."""
    prepare = None
    if cfg.output.elasticsearch.templates:
        from ..sinks.es_templates import install_templates as prepare
    out = cfg.output.dir
    return ElasticsearchSink(elasticsearch_settings(cfg, close_timeout, give_up), out / "spool" / "elasticsearch",
                             out / "elasticsearch-dead-letter.ndjson", IndexNamer(cfg.output.index),
                             counters=counters, prepare=prepare)


def carbon_settings(cfg: Config, close_timeout: float | None, give_up: bool = False) -> CarbonSettings:
    g = cfg.output.graphite
    assert g.address is not None
    try:
        host, port = host_port(g.address)
        return CarbonSettings(host=host, port=port, protocol=g.protocol,
                              batch_size=g.batch_size, flush_seconds=g.flush_seconds,
                              buffer_max_points=g.buffer_max_points, backoff_max=g.backoff_max,
                              close_timeout=close_timeout, tags=g.tags,
                              stall_timeout=(g.stall_timeout or None) if give_up else None)
    except ValueError as e:
        raise ConfigError(f"[output.graphite] {e}") from None


def build_carbon(cfg: Config, counters: dict[str, int] | None = None,
                 close_timeout: float | None = 10.0, give_up: bool = False) -> CarbonSink:
    settings = carbon_settings(cfg, close_timeout, give_up)
    log.info("metrics go to carbon", extra={"host": settings.host, "port": settings.port,
                                            "protocol": settings.protocol})
    return CarbonSink(settings, counters)


def network_outputs(cfg: Config, close_timeout: float | None, es_counters: dict[str, int] | None = None,
                    carbon_counters: dict[str, int] | None = None, give_up: bool = False
                    ) -> tuple[ElasticsearchSink | None, MetricsWriter | None]:
    """The configured Elasticsearch sink and Carbon writer (None for each one not configured:
    the command's file output takes its place). `give_up` (replay): their waits end after
    the configured `stall_timeout` without progress."""
    e = cfg.output.elasticsearch
    sink = build_elasticsearch(cfg, es_counters, close_timeout, give_up) if e.url else None
    metrics = build_carbon(cfg, carbon_counters, close_timeout, give_up) if cfg.output.graphite.address else None
    return sink, metrics


def metrics_template(cfg: Config) -> str:
    """The metric paths: tagged ones when Carbon is given `tags = true`, else the configured template."""
    if cfg.output.graphite.address and cfg.output.graphite.tags:
        return TAGGED_TEMPLATE
    return cfg.metrics.template
