"""`streams setup elasticsearch`: install the index templates, nothing else."""

from __future__ import annotations

import logging

from ..addresses import elasticsearch_url, masked
from ..config import ConfigError, load_config

log = logging.getLogger("streams.setup")


def run_setup(args) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        log.error("configuration: %s", e)
        return 2
    try:
        cfg.output.elasticsearch.url = elasticsearch_url(args.url)
        url = masked(cfg.output.elasticsearch.url)   # what the logs say: no password
    except ValueError as e:
        log.error("--url: %s", e)
        return 2
    from ..sinks.elasticsearch import make_client
    from ..sinks.es_templates import install_templates
    from .outputs import elasticsearch_settings, health_check
    client = make_client(elasticsearch_settings(cfg, None))
    if not health_check(client, url):
        return 1
    try:
        done = install_templates(client)
    except Exception as e:  # noqa: BLE001 - the server's refusal, said once, with its reason
        log.error("installing the templates failed: %s", e, extra={"url": url})
        return 1
    for name, action in sorted(done.items()):
        print(f"{action:<14} {name}")
    return 0
