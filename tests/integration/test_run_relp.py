"""RELP into `streams run` with a Python client that speaks as librelp does: every
`rsp 200` must arrive only once its message is in the output file."""

from __future__ import annotations

import socket
import threading

import pytest

from . import TIMEOUT, LiveServer, make_config, read_docs

OFFERS = b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"


class RelpClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.txnr = 0

    def send(self, command: str, data: bytes = b"") -> int:
        return self.send_all([(command, data)])[0]

    def send_all(self, frames: list[tuple[str, bytes]]) -> list[int]:
        """The frames in one write (the server reads them together); their txnrs."""
        out, txnrs = [], []
        for command, data in frames:
            self.txnr += 1
            head = f"{self.txnr} {command} {len(data)}".encode()
            out.append(head + b" " + data + b"\n" if data else head + b"\n")
            txnrs.append(self.txnr)
        self.sock.sendall(b"".join(out))
        return txnrs

    def frame(self) -> tuple[int, str, bytes] | None:
        """The next frame from the server (txnr, command, data), None at EOF."""
        while True:
            parts = self.buf.split(b" ", 3)
            if len(parts) >= 3:
                txnr, cmd, rest = int(parts[0]), parts[1].decode(), b" ".join(parts[2:])
                digits = rest.split(b" ", 1)[0].split(b"\n", 1)[0]
                n = int(digits)
                start = len(digits) + (1 if n else 0)
                if len(rest) >= start + n + 1:
                    data = rest[start:start + n]
                    assert rest[start + n:start + n + 1] == b"\n"
                    self.buf = rest[start + n + 1:]
                    return txnr, cmd, data
            chunk = self.sock.recv(65536)
            if not chunk:
                assert self.buf == b"", self.buf
                return None
            self.buf += chunk

    def open(self) -> bytes:
        t = self.send("open", OFFERS)
        txnr, cmd, data = self.frame()
        assert (txnr, cmd) == (t, "rsp")
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, city_db):
    with LiveServer(make_config(tmp_path_factory.mktemp("run-relp") / "out", city_db, batch_size=3)) as s:
        yield s


def originals(server: LiveServer) -> list[str]:
    return [d["event"]["original"] for _, d in read_docs(server.out)]


def line(i: int, tag: str) -> bytes:
    return (f"<38>1 2026-03-01T10:00:{i % 60:02d}.000Z gw sshd 812 - - Failed password for invalid user "
            f"{tag}{i} from 81.2.69.160 port {2000 + i} ssh2\n").encode()   # RFC 5424 template's own LF


def test_relp_session_acks_only_written_messages(server):
    c = RelpClient(server.port("relp"))
    answer = c.open()
    assert answer.startswith(b"200 OK\n")
    assert b"relp_version=0" in answer and b"commands=syslog" in answer
    msgs = {c.send("syslog", line(i, "relp-")): line(i, "relp-") for i in range(20)}   # a window of 20
    acked = []
    while len(acked) < len(msgs):
        txnr, cmd, data = c.frame()
        assert cmd == "rsp" and data == b"200 OK"
        expected = msgs[txnr].decode().rstrip("\n")
        assert expected in originals(server), f"rsp 200 for txnr {txnr} before its document was written"
        acked.append(txnr)
    assert acked == sorted(msgs)   # replies in txnr order
    t = c.send("close")
    assert c.frame() == (t, "rsp", b"")
    assert c.frame() is None       # the server closes after answering close
    c.close()
    docs = [d for _, d in read_docs(server.out) if d["user"]["name"].startswith("relp-")]
    assert sorted(d["user"]["name"] for d in docs) == sorted(f"relp-{i}" for i in range(20))
    for d in docs:
        assert d["event"]["dataset"] == "sshd.log"
        assert d["source"]["ip"] == "81.2.69.160"
        assert d["source"]["geo"]["country_iso_code"] == "GB"
        assert not d["event"]["original"].endswith("\n")


def test_a_window_read_at_once_is_acked_in_order_close_last(server):
    """The acks of one batch leave in one write; the `close` that came in the same read
    as the messages is answered after all of them."""
    c = RelpClient(server.port("relp"))
    c.open()
    sent = c.send_all([("syslog", line(i, "window-")) for i in range(40)] + [("close", b"")])
    replies = [c.frame() for _ in sent]
    assert replies == [(t, "rsp", b"200 OK") for t in sent[:-1]] + [(sent[-1], "rsp", b"")]
    assert c.frame() is None
    c.close()
    assert len([o for o in originals(server) if "window-" in o]) == 40


def test_relp_protocol_error_closes_only_that_session(server):
    good = RelpClient(server.port("relp"))
    good.open()
    bad = RelpClient(server.port("relp"))
    bad.open()
    bad.sock.sendall(b"5 syslog 3 abc\n")          # txnr out of sequence: fatal, nothing to answer
    assert bad.frame() is None
    bad.close()
    t = good.send("syslog", line(1, "after-error-"))
    assert good.frame() == (t, "rsp", b"200 OK")
    good.close()
    assert server.metrics()["listeners"]["relp"]["errors"] >= 1


def test_relp_refuses_open_without_syslog_command(server):
    c = RelpClient(server.port("relp"))
    t = c.send("open", b"relp_version=0\ncommands=foo")
    txnr, cmd, data = c.frame()
    assert (txnr, cmd) == (t, "rsp") and data.startswith(b"500 ")
    assert c.frame() is None
    c.close()


def test_shutdown_sends_serverclose_after_acks(tmp_path, city_db):
    with LiveServer(make_config(tmp_path / "out", city_db)) as s:
        c = RelpClient(s.port("relp"))
        c.open()
        sent = [c.send("syslog", line(i, "bye-")) for i in range(5)]
        got = [c.frame() for _ in sent]
        assert [g[0] for g in got] == sent
        stopper = threading.Thread(target=s.stop)   # the server waits for us to close after serverclose
        stopper.start()
        assert c.frame() == (0, "serverclose", b"")
        assert c.frame() is None
        c.close()
        stopper.join(TIMEOUT)
    assert len([o for o in originals(s) if "bye-" in o]) == 5
