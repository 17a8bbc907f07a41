"""Syslog over TLS (RFC 5425) into `streams run`: a Python `ssl` client, a plain-TCP client
whose handshake fails next to a good one, configuration errors, and rsyslog's omfwd with
its TLS stream drivers (gtls from rsyslog-gnutls, ossl from rsyslog-openssl); then client
certificates (`ca_file`, `require_client_cert`): accepted when signed by the configured
CA, refused (counted, logged, others unaffected) when missing or signed by another CA.

The certificates are made by the `openssl` CLI for each test module: a self-signed server
certificate, and a small PKI (a CA signing the server and a client certificate, a second
CA signing another client certificate, a self-signed client certificate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.config import ConfigError, load_config

from . import TIMEOUT, LiveServer, assert_sshd_failure, make_config, wait_for
from .test_real_senders import ARRIVAL, rsyslog_module, rsyslogd, write_lines

OPENSSL = shutil.which("openssl")


def need_openssl() -> str:
    if OPENSSL is None:
        msg = "the `openssl` command is not installed (Debian package openssl)"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI is set, so this is a failure", pytrace=False)
        pytest.skip(msg)
    return OPENSSL


def self_signed(d: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 in `d`: (certificate, key)."""
    openssl = need_openssl()
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls-cert"))


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


# ------------------------------------------------------------- client certificates

@dataclass(frozen=True)
class Pki:
    ca: Path                       # the CA of the listener's `ca_file`
    server: tuple[Path, Path]      # (certificate, key) signed by `ca`, for localhost / 127.0.0.1
    client: tuple[Path, Path]      # signed by `ca`
    other_ca: tuple[Path, Path]    # signed by another CA (which the listener does not know)
    self_signed: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    openssl = need_openssl()
    d = tmp_path_factory.mktemp("tls-pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60, cwd=d)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def ca(name: str) -> tuple[Path, Path]:
        run("req", "-x509", *key, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
            "-subj", f"/CN=streams test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return d / f"{name}.pem", d / f"{name}.key"

    def leaf(name: str, signer: tuple[Path, Path] | None, usage: str, san: str, serial: int) -> tuple[Path, Path]:
        ext = d / f"{name}.ext"
        ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
                       f"subjectAltName={san}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        if signer is None:
            run("req", "-x509", *key, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
                "-subj", f"/CN={name}", "-addext", f"extendedKeyUsage={usage}")
        else:
            run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", str(signer[0]), "-CAkey", str(signer[1]),
                "-set_serial", str(serial), "-days", "1", "-extfile", str(ext),
                "-out", f"{name}.pem")
        return d / f"{name}.pem", d / f"{name}.key"

    good, other = ca("ca"), ca("other-ca")
    return Pki(
        ca=good[0],
        server=leaf("localhost", good, "serverAuth", "DNS:localhost,IP:127.0.0.1", 1001),
        client=leaf("client-1", good, "clientAuth", "DNS:client-1", 1002),
        other_ca=leaf("client-2", other, "clientAuth", "DNS:client-2", 1003),
        self_signed=leaf("client-3", None, "clientAuth", "DNS:client-3", 0),
    )


def mtls_config(out: Path, pki: Pki, city_db: Path | None = None, require: bool = True):
    cfg = make_config(out, city_db)
    t = cfg.listeners.syslog_tls
    t.port = 0
    t.cert_file, t.key_file = pki.server
    t.ca_file = pki.ca
    t.require_client_cert = require
    return cfg


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, city_db, pki):
    with LiveServer(mtls_config(tmp_path_factory.mktemp("run-mtls") / "out", pki, city_db)) as s:
        yield s


def mtls_context(pki: Pki, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if client is not None:
        ctx.load_cert_chain(*client)
    return ctx


def mtls_connect(port: int, pki: Pki, client: tuple[Path, Path] | None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return mtls_context(pki, client).wrap_socket(raw, server_hostname="localhost")


def refused(port: int, pki: Pki, client: tuple[Path, Path] | None, user: str) -> tuple[int, str]:
    """Connect, send a message, read until the server closes: (our port, how it ended).
    Under TLS 1.3 the client's side of the handshake is over before the server has checked
    its certificate, so the refusal only shows on the next read. asyncio closes without
    sending the fatal TLS alert (CPython gh-98078, fixed in later versions), so the client
    sees either an alert (SSLError) or just the connection closing."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    local = raw.getsockname()[1]
    try:
        with mtls_context(pki, client).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(octet_counted(rfc5424(user, 1)))
            while s.recv(4096):
                pass
            return local, "closed"
    except (ssl.SSLError, ConnectionError) as e:
        return local, f"{type(e).__name__}: {e}"
    finally:
        raw.close()


@contextlib.contextmanager
def tls_log() -> Iterator[list[logging.LogRecord]]:
    """The records of the TLS listener's logger (a handler on it: propagation may be off)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("streams.ingest.tls")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def tls_stats(server: LiveServer) -> dict:
    return server.metrics()["listeners"]["syslog_tls"]


def test_client_certificate_signed_by_the_ca_is_accepted(mtls_server, pki):
    port = mtls_server.port("syslog_tls")
    before = tls_stats(mtls_server)
    oc = {f"mtls-ok-oc-{i}": 45000 + i for i in range(4)}
    lf = {f"mtls-ok-lf-{i}": 45100 + i for i in range(4)}
    with mtls_connect(port, pki, pki.client) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        s.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in oc.items()))
    with mtls_connect(port, pki, pki.client) as s:
        s.sendall(b"".join(rfc3164(u, p) + b"\n" for u, p in lf.items()))
    sent = {**oc, **lf}
    wait_for(lambda: len(by_user(mtls_server, "mtls-ok-")) >= len(sent), what=f"{len(sent)} documents over mTLS")
    check_sshd(by_user(mtls_server, "mtls-ok-"), sent)
    after = tls_stats(mtls_server)
    assert after["tls_handshake_failed"] == before["tls_handshake_failed"]
    assert after["errors"] == before["errors"]


@pytest.mark.parametrize("case,reason", [
    ("none", "peer did not return a certificate"),
    ("other_ca", "certificate verify failed"),
    ("self_signed", "certificate verify failed"),
])
def test_bad_client_certificate_is_refused_counted_logged_and_others_go_on(mtls_server, pki, case, reason):
    port = mtls_server.port("syslog_tls")
    client = None if case == "none" else getattr(pki, case)
    before = tls_stats(mtls_server)
    first = {f"mtls-{case}-ok-{i}": 46000 + i for i in range(3)}
    second = {f"mtls-{case}-ok-{i}": 46000 + i for i in range(3, 6)}
    third = {f"mtls-{case}-ok-{i}": 46000 + i for i in range(6, 9)}
    with tls_log() as records, mtls_connect(port, pki, pki.client) as good:
        good.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in first.items()))
        local, how = refused(port, pki, client, f"mtls-{case}-refused")
        wait_for(lambda: tls_stats(mtls_server)["tls_handshake_failed"] > before["tls_handshake_failed"],
                 what="the refused handshake to be counted")
        good.sendall(b"".join(octet_counted(rfc5424(u, p)) for u, p in second.items()))
        with mtls_connect(port, pki, pki.client) as late:     # a new good client after the refusal
            late.sendall(b"".join(rfc3164(u, p) + b"\n" for u, p in third.items()))
    sent = {**first, **second, **third}
    wait_for(lambda: len(by_user(mtls_server, f"mtls-{case}-ok-")) >= len(sent),
             what=f"{len(sent)} documents over mTLS next to a refused client")
    check_sshd(by_user(mtls_server, f"mtls-{case}-ok-"), sent)
    assert by_user(mtls_server, f"mtls-{case}-refused") == {}, how
    after = tls_stats(mtls_server)
    assert after["tls_handshake_failed"] == before["tls_handshake_failed"] + 1
    assert after["errors"] == before["errors"] + 1
    failed = [r for r in records if r.getMessage().startswith("TLS handshake failed")]
    assert len(failed) == 1, [r.getMessage() for r in records]
    assert failed[0].levelno == logging.WARNING
    assert failed[0].listener == "syslog_tls" and failed[0].peer == f"127.0.0.1:{local}"
    assert reason in failed[0].getMessage().lower(), failed[0].getMessage()


def test_optional_client_certificate(tmp_path, city_db, pki):
    """`ca_file` without `require_client_cert`: a client without a certificate is served,
    one whose certificate the CA did not sign is refused and counted."""
    with LiveServer(mtls_config(tmp_path / "out", pki, city_db, require=False)) as server:
        port = server.port("syslog_tls")
        sent = {"opt-none-0": 47000, "opt-good-0": 47001}
        with mtls_connect(port, pki, None) as s:
            s.sendall(octet_counted(rfc5424("opt-none-0", 47000)))
        with mtls_connect(port, pki, pki.client) as s:
            s.sendall(octet_counted(rfc5424("opt-good-0", 47001)))
        refused(port, pki, pki.other_ca, "opt-bad-0")
        wait_for(lambda: len(by_user(server, "opt-")) >= len(sent) and tls_stats(server)["tls_handshake_failed"],
                 what="2 documents and one refused handshake")
        check_sshd(by_user(server, "opt-"), sent)
        m = tls_stats(server)
        assert m["tls_handshake_failed"] == 1 and m["errors"] == 1


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_rsyslog_omfwd_tls_client_certificate(tmp_path, city_db, pki, driver):
    """rsyslog authenticates the server (x509/name) and presents its client certificate
    (DefaultNetstreamDriverCertFile/KeyFile): accepted. The same rsyslog without a
    certificate is refused, counted, and delivers nothing."""
    module, package = DRIVERS[driver]
    rsyslog_module(module, package)
    lines = [f"Failed password for invalid user mtls-{driver}-{i} from 81.2.69.160 port {48000 + i} ssh2"
             for i in range(PER_DRIVER)]

    def body(src: Path, port: int, with_cert: bool) -> str:
        own = (f' DefaultNetstreamDriverCertFile="{pki.client[0]}" DefaultNetstreamDriverKeyFile="{pki.client[1]}"'
               if with_cert else "")
        return (f'global(DefaultNetstreamDriverCAFile="{pki.ca}"{own})\n'
                f'input(type="imfile" File="{src}" Tag="sshd[4007]:" ruleset="tls")\n'
                f'ruleset(name="tls") {{\n'
                f'  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
                f'TCP_Framing="octet-counted" StreamDriver="{driver}" StreamDriverMode="1" '
                f'StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" '
                f'template="RSYSLOG_SyslogProtocol23Format")\n}}')

    with LiveServer(mtls_config(tmp_path / "out", pki, city_db)) as server:
        port = server.port("syslog_tls")
        without, with_cert = tmp_path / "without-cert", tmp_path / "with-cert"
        without.mkdir()
        with_cert.mkdir()
        src = write_lines(without / "input.log", lines[:1])
        with rsyslogd(without, body(src, port, False)) as rs:
            wait_for(lambda: rs.alive() and tls_stats(server)["tls_handshake_failed"] >= 1, timeout=ARRIVAL,
                     what=f"rsyslog ({driver}) without a client certificate to be refused")
        assert by_user(server, f"mtls-{driver}-") == {}
        refusals = tls_stats(server)["tls_handshake_failed"]
        assert tls_stats(server)["errors"] == refusals

        src = write_lines(with_cert / "input.log", lines)
        with rsyslogd(with_cert, body(src, port, True)) as rs:
            wait_for(lambda: rs.alive() and len(by_user(server, f"mtls-{driver}-")) >= len(lines), timeout=ARRIVAL,
                     what=f"{len(lines)} documents sent by rsyslog omfwd with a client certificate ({driver})")
        docs = by_user(server, f"mtls-{driver}-")
        assert sorted(d["message"] for d in docs.values()) == sorted(lines)
        check_sshd(docs, {f"mtls-{driver}-{i}": 48000 + i for i in range(PER_DRIVER)})
        m = tls_stats(server)
        assert m["tls_handshake_failed"] == refusals and m["errors"] == refusals
