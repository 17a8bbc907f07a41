"""Riemann into `streams run` over TCP and UDP, with a Python client built on our codec."""

from __future__ import annotations

import socket
import struct

import pytest

from streams.event import Event
from streams.protocols.riemann import decode_msg, encode_msg, frame, ok_reply

from . import TIMEOUT, LiveServer, make_config, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(make_config(tmp_path_factory.mktemp("run-riemann") / "out")) as s:
        yield s


class RiemannTcp:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    def request(self, payload: bytes) -> bytes:
        self.sock.sendall(frame(payload))
        head = self._exactly(4)
        return head + self._exactly(struct.unpack(">I", head)[0])

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data


def ev(service: str, metric, time: float | None = None, **kw) -> Event:
    return Event(host="web1", service=service, metric=metric, time=time, state="ok", tags=["collectd"],
                 attributes={"x-client": "test"}, ttl=60.0, **kw)


def riemann_docs(server: LiveServer, prefix: str) -> dict[str, dict]:
    return {d["service"]["name"]: d for d in server.docs()
            if d.get("event", {}).get("dataset") == "riemann" and d["service"]["name"].startswith(prefix)}


def test_tcp_events_queries_and_bad_frames(server):
    c = RiemannTcp(server.port("riemann_tcp"))
    assert c.request(encode_msg(events=[ev("tcp cpu", 0.5), ev("tcp load", 3, time=1772359200.25)])) == ok_reply()
    assert c.request(encode_msg(events=[ev(f"tcp batch {i}", i) for i in range(100)])) == ok_reply()
    # the index answers once the worker has taken the events in
    reply = wait_for(lambda: (r := decode_msg(c.request(encode_msg(query='service = "tcp cpu"'))[4:])).events and r,
                     what="the query to find the event")
    assert reply.ok is True and [(e.host, e.service, e.metric) for e in reply.events] == [("web1", "tcp cpu", 0.5)]
    reply = decode_msg(c.request(encode_msg(query='service = "tcp cpu" and'))[4:])
    assert reply.ok is False and reply.error.startswith("parse error: ") and "column" in reply.error
    reply = decode_msg(c.request(b"\xff\xff\xff")[4:])      # not protobuf: error, connection goes on
    assert reply.ok is False and "varint" in reply.error
    assert c.request(encode_msg(events=[ev("tcp after error", 1.0)])) == ok_reply()
    c.sock.close()
    docs = wait_for(lambda: (d := riemann_docs(server, "tcp ")) and len(d) == 103 and d, what="103 riemann events")
    assert docs["tcp cpu"]["riemann"]["metric"] == 0.5
    assert docs["tcp cpu"]["host"]["name"] == "web1"
    assert docs["tcp cpu"]["service"]["state"] == "ok"
    assert docs["tcp cpu"]["riemann"]["attributes"] == {"x-client": "test"}
    assert docs["tcp cpu"]["tags"] == ["collectd"]
    assert docs["tcp load"]["@timestamp"] == "2026-03-01T10:00:00.250Z"
    assert docs["tcp load"]["riemann"]["metric"] == 3
    assert "_timestamp_from_ingest" not in docs["tcp cpu"].get("tags", [])   # stamped with the receive time
    c = server.metrics()["listeners"]["riemann_tcp"]
    assert c["received"] >= 103 and c["errors"] >= 1 and c["queries"] >= 1


def test_udp_one_msg_per_datagram(server):
    port = server.port("riemann_udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(10):
            s.sendto(encode_msg(events=[ev(f"udp disk {i}", float(i))]), ("127.0.0.1", port))
        s.sendto(b"\x0a\xff", ("127.0.0.1", port))           # malformed: counted, no reply
    docs = wait_for(lambda: (d := riemann_docs(server, "udp ")) and len(d) == 10 and d, what="10 udp events")
    assert sorted(d["riemann"]["metric"] for d in docs.values()) == [float(i) for i in range(10)]
    wait_for(lambda: server.metrics()["listeners"]["riemann_udp"]["errors"] == 1, what="the udp error count")
