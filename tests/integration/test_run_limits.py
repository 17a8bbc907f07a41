"""Limits of the TCP listeners: idle (slowloris) connections are closed after the idle
timeout, connections beyond the limit are refused, and neither affects other clients."""

from __future__ import annotations

import socket
import time

from . import TIMEOUT, LiveServer, make_config, wait_for

LINE = b"Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 44633 ssh2\n"


def _closed_by_peer(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_idle_connection_is_closed_and_others_go_on(tmp_path):
    cfg = make_config(tmp_path / "out")
    cfg.listeners.syslog_tcp.idle_timeout = 0.5
    with LiveServer(cfg) as srv:
        port = srv.port("syslog_tcp")
        idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        idle.sendall(LINE[:20])  # a slow client: half a line, then nothing
        busy = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        t0 = time.monotonic()
        for _ in range(5):  # keeps talking more often than the idle timeout
            busy.sendall(LINE)
            time.sleep(0.2)
        assert _closed_by_peer(idle, TIMEOUT), "idle connection was not closed"
        assert time.monotonic() - t0 < TIMEOUT
        busy.sendall(LINE)
        busy.close()
        idle.close()
        def sshd() -> int:
            return sum(1 for d in srv.docs() if d["event"].get("dataset") == "sshd.log")
        wait_for(lambda: sshd() == 6, what="the busy client's 6 lines")
        # the idle client's half line is not lost either: delivered when its connection closed
        partial = [d for d in srv.docs() if d["event"]["original"] == LINE[:20].decode()]
        assert len(partial) == 1, [d["event"]["original"] for d in srv.docs()]


def test_connections_beyond_the_limit_are_refused(tmp_path):
    cfg = make_config(tmp_path / "out")
    cfg.listeners.syslog_tcp.max_connections = 2
    with LiveServer(cfg) as srv:
        port = srv.port("syslog_tcp")
        a = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        b = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        a.sendall(LINE)
        b.sendall(LINE)
        wait_for(lambda: len(srv.docs()) == 2, what="the first two clients' lines")
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        assert _closed_by_peer(c, TIMEOUT), "a third connection was accepted"
        c.close()
        a.sendall(LINE)  # the accepted ones are unaffected
        a.close()
        b.close()
        wait_for(lambda: len(srv.docs()) == 3, what="a third line from an accepted client")


def test_udp_losses_in_the_kernel_are_counted(tmp_path):
    """A burst into a tiny receive buffer overflows it in the kernel: those datagrams never
    reach us, but /metrics still accounts for every one sent."""
    cfg = make_config(tmp_path / "out")
    cfg.listeners.syslog_udp.receive_buffer = 4096  # the kernel rounds it up to its minimum
    sent = 3000
    with LiveServer(cfg) as srv:
        port = srv.port("syslog_udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(sent):
                s.sendto(LINE.replace(b"44633", str(i).encode()), ("127.0.0.1", port))

        def settled():
            c = srv.metrics()["listeners"]["syslog_udp"]
            return c if c["received"] + c["kernel_dropped"] == sent else None
        c = wait_for(settled, what="every datagram received or counted as dropped by the kernel")
        assert c["kernel_dropped"] > 0, c  # the burst did overflow: otherwise this test shows nothing
        wait_for(lambda: len(srv.docs()) == c["accepted"], what="the accepted datagrams in the output")
