"""Thin asyncio servers over the sans-IO protocols (`streams.protocols`).

Each listener owns sockets, limits and timeouts only: bytes go into the protocol object,
frames/events come out and are handed to the live pipeline (`streams.pipeline.live`),
whose bounded queue gives the backpressure; replies go back out. `service.IngestService`
builds the enabled listeners from `[listeners.*]` and runs the graceful shutdown.

    base.py     connection limit, idle timeout, two-step stop (shared by all)
    syslog.py   syslog over UDP and TCP (LF or RFC 6587 octet counting, per connection)
    relp.py     RELP (rsyslog's omrelp); `rsp 200` only once the message is written
    riemann.py  Riemann protobuf over TCP (ok/error replies) and UDP
    http.py     GET /health and GET /metrics (JSON counters)
    service.py  all of the above, started and stopped together
"""
