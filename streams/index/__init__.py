"""The index stage: the latest event per (host, service), expired by TTL (see `ttl`)."""

from streams.index.ttl import TTLIndex, expired_event

__all__ = ["TTLIndex", "expired_event"]
