"""Thin asyncio servers over the sans-IO protocols (`streams.protocols`).

Each listener owns sockets, limits and timeouts only: bytes go into the protocol object,
frames/events come out and are handed to the live pipeline (`streams.pipeline.live`),
whose bounded queue gives the backpressure; replies go back out. `service.IngestService`
builds the enabled listeners from `[listeners.*]` and runs the graceful shutdown.

    base.py         the resource budget (connections, greeting/idle/send timeouts, eviction,
                    buffered bytes), two-step stop (shared by all)
    descriptors.py  each TCP listener's share of the descriptors the outputs leave
    syslog.py       syslog over UDP and TCP (LF or RFC 6587 octet counting, per connection)
    tls.py          syslog over TLS (RFC 5425), handshakes bounded apart
    relp.py         RELP (rsyslog's omrelp); `rsp 200` only once the message is written
    riemann.py      Riemann protobuf over TCP (ok/error replies) and UDP
    http.py         /health, /metrics, /query, /stream (server-sent events)
    service.py      all of the above, started and stopped together; what /health says
"""
