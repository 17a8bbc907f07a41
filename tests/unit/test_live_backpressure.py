"""When the Elasticsearch sink's spool is full (the server down or slow), the live worker
stops taking batches: the acks wait, nothing is dropped, and it goes on once there is room.
The real sink pointed at a closed port, with a spool of a few hundred bytes."""

from __future__ import annotations

import asyncio
import socket

from streams.parse.dispatch import LineParser
from streams.pipeline.live import LivePipeline, Received
from streams.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink
from streams.telemetry import Telemetry

LINE = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port {} ssh2"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_full_spool_holds_the_acks_back_until_there_is_room(tmp_path):
    settings = ElasticsearchSettings(url=f"http://127.0.0.1:{closed_port()}", spool_max_bytes=600,
                                     backoff_initial=0.05, backoff_max=0.1, flush_seconds=0.05, close_timeout=0)
    sink = ElasticsearchSink(settings, tmp_path / "spool", tmp_path / "dlq.ndjson")
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), sink=sink, batch_size=2)
    acks: list[int] = []

    async def scenario() -> None:
        p.start()
        for i in range(6):
            await p.put([Received("relp", 1764000000.0, text=LINE.format(i), ack=lambda ok, i=i: acks.append(i))])
        await asyncio.sleep(0.5)
        held = list(acks)
        # one batch went into the spool (over its limit: nothing is cut in half); the rest waits
        assert held == [0, 1] and p.queue.qsize() == 3 and sink.spool.pending() > 600
        assert p.telemetry.component("sink.elasticsearch_files")["backpressure_waits"] == 1
        for _ in range(100):  # as if the server took whatever is spooled, batch after batch
            sink.spool.commit(sink.spool.read(100, 1 << 20)[1])
            if len(acks) == 6:
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(p.drain(), 5)
        await p.stop()

    asyncio.run(scenario())
    assert acks == list(range(6))
    sink.close()


def test_sighup_reopen_keeps_the_elasticsearch_sender_running(tmp_path):
    """A reopen (log rotation) must not stop the sink: before, it called close(), which
    stopped the sender thread for good while the worker kept spooling."""
    settings = ElasticsearchSettings(url=f"http://127.0.0.1:{closed_port()}", backoff_initial=0.05,
                                     backoff_max=0.1, flush_seconds=0.05, close_timeout=0)
    sink = ElasticsearchSink(settings, tmp_path / "spool", tmp_path / "dlq.ndjson")
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), sink=sink)
    p.reopen()
    assert sink._thread.is_alive()
    sink.close()
    assert not sink._thread.is_alive()
