"""The index stage: the latest event per (host, service), expired by TTL (see `ttl`)."""

from streams.index.ttl import TTLIndex, TTLIndexConfig, expired_event

__all__ = ["TTLIndex", "TTLIndexConfig", "expired_event"]
