"""Syslog over TLS (RFC 5425) into `streams run`: a Python `ssl` client, a plain-TCP client
whose handshake fails next to a good one, configuration errors, and rsyslog's omfwd with
its TLS stream drivers (gtls from rsyslog-gnutls, ossl from rsyslog-openssl).

The certificate is a self-signed one made by the `openssl` CLI for each test module.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import ConfigError, load_config

from . import TIMEOUT, LiveServer, assert_sshd_failure, make_config, wait_for
from .test_real_senders import ARRIVAL, rsyslog_module, rsyslogd, write_lines

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    if OPENSSL is None:
        msg = "the `openssl` command is not installed (Debian package openssl)"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI is set, so this is a failure", pytrace=False)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("tls-cert")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def tls_config(out: Path, cert: tuple[Path, Path], city_db: Path | None = None):
    cfg = make_config(out, city_db)
    t = cfg.listeners.syslog_tls
    t.port = 0
    t.cert_file, t.key_file = cert
    return cfg


@pytest.fixture(scope="module")
def server(tmp_path_factory, city_db, cert):
    with LiveServer(tls_config(tmp_path_factory.mktemp("run-tls") / "out", cert, city_db)) as s:
        yield s


def client_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


def tls_connect(port: int, cert: tuple[Path, Path]) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return client_context(cert).wrap_socket(raw, server_hostname="localhost")


def by_user(server: LiveServer, prefix: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in server.docs():
        user = (d.get("user") or {}).get("name", "")
        if user.startswith(prefix):
            assert user not in out, f"duplicate document for {user}"
            out[user] = d
    return out


def rfc5424(user: str, port: int) -> bytes:
    return (f"<38>1 2026-03-01T10:00:00.000Z gw sshd 4007 - - Failed password for invalid user {user} "
            f"from 81.2.69.160 port {port} ssh2").encode()


def rfc3164(user: str, port: int) -> bytes:
    return f"<38>Mar  1 10:00:00 gw sshd[4007]: Failed password for invalid user {user} from 81.2.69.160 " \
           f"port {port} ssh2".encode()


def octet_counted(msg: bytes) -> bytes:
    return b"%d %s" % (len(msg), msg)


def check_sshd(docs: dict[str, dict], sent: dict[str, int]) -> None:
    assert set(docs) == set(sent)
    for user, d in docs.items():
        assert_sshd_failure(d, sent[user])


def test_tls_octet_counted_5424_and_lf_3164(server, cert):
    port = server.port("syslog_tls")
    oc = {f"tls-oc-{i}": 41000 + i for i in range(5)}
    lf = {f"tls-lf-{i}": 42000 + i for i in range(5)}
    with tls_connect(port, cert) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        s.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in oc.items()))
    with tls_connect(port, cert) as s:
        s.sendall(b"".join(rfc3164(u, p) + b"\n" for u, p in lf.items()))
    sent = {**oc, **lf}
    wait_for(lambda: len(by_user(server, "tls-")) >= len(sent), what=f"{len(sent)} documents over TLS")
    docs = by_user(server, "tls-")
    check_sshd(docs, sent)
    for u in oc:
        assert docs[u]["log"]["syslog"]["version"] == 1
    m = server.metrics()["listeners"]["syslog_tls"]
    assert m["accepted"] >= len(sent) and m["tls_handshake_failed"] == 0


def test_plain_tcp_to_tls_port_is_an_error_and_others_go_on(server, cert):
    port = server.port("syslog_tls")
    before = server.metrics()["listeners"]["syslog_tls"]
    first = {f"mixed-ok-{i}": 43000 + i for i in range(3)}
    second = {f"mixed-ok-{i}": 43000 + i for i in range(3, 6)}
    with tls_connect(port, cert) as good:
        good.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in first.items()))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as plain:
            plain.sendall(rfc3164("mixed-plain-0", 1) + b"\n")
            plain.settimeout(TIMEOUT)
            try:
                while plain.recv(4096):   # the server answers (a TLS alert, or nothing) and closes
                    pass
            except ConnectionResetError:
                pass
        wait_for(lambda: server.metrics()["listeners"]["syslog_tls"]["tls_handshake_failed"] > before[
            "tls_handshake_failed"], what="the failed handshake to be counted")
        good.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in second.items()))
    sent = {**first, **second}
    wait_for(lambda: len(by_user(server, "mixed-ok-")) >= len(sent), what=f"{len(sent)} documents over TLS")
    check_sshd(by_user(server, "mixed-ok-"), sent)
    assert by_user(server, "mixed-plain-") == {}
    after = server.metrics()["listeners"]["syslog_tls"]
    assert after["tls_handshake_failed"] == before["tls_handshake_failed"] + 1
    assert after["errors"] == before["errors"] + 1


def test_tls_listener_is_off_without_a_certificate(tmp_path):
    with LiveServer(make_config(tmp_path / "out")) as s:
        assert "syslog_tls" not in s.service.ports
        assert "syslog_tls" not in s.metrics()["listeners"]


def test_missing_certificate_is_a_configuration_error(tmp_path, cert):
    conf = tmp_path / "streams.toml"
    conf.write_text(f'[listeners.syslog_tls]\ncert_file = "{tmp_path / "nope.pem"}"\nkey_file = "{cert[1]}"\n')
    with pytest.raises(ConfigError, match="cert_file: cannot read .*nope.pem"):
        load_config(conf)
    conf.write_text('[listeners.syslog_tls]\nkey_file = "k.pem"\n')
    with pytest.raises(ConfigError, match="key_file is set but cert_file is not"):
        load_config(conf)


def run_exit(tmp_path: Path, toml: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "streams.toml"
    conf.write_text(toml + f'\n[output]\ndir = "{tmp_path / "out"}"\n[geoip]\nenabled = false\n'
                    + "".join(f"[listeners.{n}]\nport = 0\n" for n in
                              ("relp", "syslog_udp", "syslog_tcp", "riemann_tcp", "riemann_udp", "http")))
    return subprocess.run([sys.executable, "-m", "streams.cli", "run", "--config", str(conf)],
                          capture_output=True, text=True, timeout=30)


def test_run_exits_2_on_missing_or_bad_certificate(tmp_path, cert):
    r = run_exit(tmp_path, f'[listeners.syslog_tls]\nport = 0\ncert_file = "{tmp_path / "nope.pem"}"\n')
    assert r.returncode == 2, r.stderr
    assert "nope.pem" in r.stderr and "cannot read" in r.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    r = run_exit(tmp_path, f'[listeners.syslog_tls]\nport = 0\ncert_file = "{garbage}"\n')
    assert r.returncode == 2, r.stderr
    assert "cannot load the certificate" in r.stderr and "garbage.pem" in r.stderr


# ------------------------------------------------------- rsyslogd omfwd over TLS

DRIVERS = {"gtls": ("lmnsd_gtls", "rsyslog-gnutls"), "ossl": ("lmnsd_ossl", "rsyslog-openssl")}
PER_DRIVER = 20


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_rsyslog_omfwd_tls(tmp_path, city_db, cert, driver):
    module, package = DRIVERS[driver]
    rsyslog_module(module, package)
    lines = [f"Failed password for invalid user omfwd-{driver}-{i} from 81.2.69.160 port {44000 + i} ssh2"
             for i in range(PER_DRIVER)]
    src = write_lines(tmp_path / "input.log", lines)
    with LiveServer(tls_config(tmp_path / "out", cert, city_db)) as server:
        body = (f'global(DefaultNetstreamDriverCAFile="{cert[0]}")\n'
                f'input(type="imfile" File="{src}" Tag="sshd[4007]:" ruleset="tls")\n'
                f'ruleset(name="tls") {{\n'
                f'  action(type="omfwd" target="127.0.0.1" port="{server.port("syslog_tls")}" protocol="tcp" '
                f'TCP_Framing="octet-counted" StreamDriver="{driver}" StreamDriverMode="1" '
                f'StreamDriverAuthMode="anon" template="RSYSLOG_SyslogProtocol23Format")\n}}')
        with rsyslogd(tmp_path, body) as rs:
            wait_for(lambda: rs.alive() and len(by_user(server, f"omfwd-{driver}-")) >= len(lines), timeout=ARRIVAL,
                     what=f"{len(lines)} documents sent by rsyslog omfwd over TLS ({driver})")
        docs = by_user(server, f"omfwd-{driver}-")
        assert sorted(d["message"] for d in docs.values()) == sorted(lines)
        check_sshd(docs, {f"omfwd-{driver}-{i}": 44000 + i for i in range(PER_DRIVER)})
        for d in docs.values():
            assert d["log"]["syslog"]["version"] == 1
        m = server.metrics()["listeners"]["syslog_tls"]
        assert m["tls_handshake_failed"] == 0 and m["errors"] == 0
