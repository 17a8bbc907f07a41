#!/usr/bin/env python3
"""`streams run` ingest throughput, end to end: from the first byte sent until every
document is in the output NDJSON (the bulk sink's `sent` counter on `GET /metrics`,
checked afterwards against the lines of the output files).

The server (`python -m streams.cli run`) is pinned to core 1 (`taskset -c 1`), the
senders (this process, and rsyslogd) to core 0. A fresh server per scenario, every
listener on port 0, GeoIP off (`--geoip` uses MaxMind's test City database). Next to the
wall-clock rate, each scenario reports messages per second of the server's own CPU time
(`/CPU-s`, user + system from /proc): on a shared machine the other tenants disturb it
less, so old and new code compare better on it.

1. syslog over TCP, octet-counted: lines of samples/logs/auth.log + mail.log (with a
   `<PRI>` header, as a forwarder sends them), repeated, sent as fast as possible;
2. RELP from a private rsyslogd (imfile -> omrelp, windowSize="1024", `%rawmsg%`
   template), when rsyslogd and rsyslog-relp are installed;
3. Riemann TCP, batches of 100 events, the client waiting for each `ok` reply;
4. syslog over UDP at increasing paced rates; share lost (listener `dropped`: queue full;
   `lost_in_kernel`: sent but never received by the listener);
5. peer figures: the private syslog-ng 3.38 (deploy/dev/install-syslog-ng-private), pinned like
   the server, receiving the same octet-counted stream as 1. (`network(transport("framed"))`),
   first byte sent until its file holds every line, with its CPU time meanwhile (/CPU-s):
   a. same parsing (issue 15's goal, `≥ 1.0×`): no parsing at the source, then the log path
      bench/syslog_ng.py's syslog_ng_config gives syslog-ng in parse_bench/replay_bench
      (syslog-parser, the product's regexp-parser patterns dispatched on the program) ->
      `file()` with format-json; the lines holding each product's fields are counted after;
   b. plain, a reference: RFC 3164 parsing at the source -> `file()`, default template;
   the ratios streams / syslog-ng (wall clock and per CPU second) to both are reported.

    python3 bench/ingest_bench.py [--syslog 200000] [--relp 100000] [--riemann 200000]
                                  [--udp-rates 2000,5000,10000,30000,100000] [--udp-seconds 2] [--geoip]
                                  [--syslog-ng | --no-syslog-ng]

Prints a table and writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from measure import cpu_seconds  # noqa: E402
from syslog_ng import (  # noqa: E402
    SYSLOG_NG_MODULES,
    SYSLOG_NG_PATTERNS,
    AppendedLines,
    syslog_ng_available,
    syslog_ng_config,
)

from streams.event import Event  # noqa: E402
from streams.protocols.riemann import encode_msg, frame, ok_reply  # noqa: E402
from tests.integration import RunProcess, config_toml  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLES = ROOT / "samples" / "logs"
CITY_TEST_DB = ROOT / "tests" / "data" / "geoip" / "GeoIP2-City-Test.mmdb"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
SERVER_CORE, CLIENT_CORE = "1", 0
STALL = 30.0        # seconds without progress before a scenario is declared stuck


# ---------------------------------------------------------------- server

class Server(RunProcess):
    """`python -m streams.cli run` in a subprocess pinned to one core."""

    def __init__(self, work: Path, geoip: bool) -> None:
        out = work / "out"
        conf = work / "streams.toml"
        conf.write_text(config_toml(out, CITY_TEST_DB if geoip else None) + "\n[parse]\nyear = 2026\n")
        pin = shutil.which("taskset") and (os.cpu_count() or 1) > 1
        super().__init__(conf, out, ["taskset", "-c", SERVER_CORE] if pin else [])

    def metrics(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/metrics", timeout=10) as r:
            return json.loads(r.read())

    def written(self) -> int:
        return self.metrics()["sinks"]["elasticsearch_files"]["sent"]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far: per message, a figure the
        other tenants of a shared machine disturb less than the wall clock."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_written(self, n: int, what: str) -> float:
        """Poll /metrics until `n` documents are written; the time it happened (and the
        server's CPU time then, in `cpu_at_written`)."""
        last, last_change = -1, time.monotonic()
        while True:
            w = self.written()
            now = time.perf_counter()
            if w >= n:
                self.cpu_at_written = self.cpu_seconds()
                return now
            if w != last:
                last, last_change = w, time.monotonic()
            elif time.monotonic() - last_change > STALL:
                raise RuntimeError(f"{what}: stuck at {w}/{n} documents written for {STALL}s; "
                                   f"metrics: {json.dumps(self.metrics()['listeners'])}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what}: streams run exited ({self.proc.returncode}): {self.seen[-10:]}")
            time.sleep(0.02)

    def output_docs(self) -> int:
        n = 0
        for f in (self.out / "elasticsearch").glob("*.ndjson"):
            with open(f, "rb") as fh:
                n += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        return n // 2

    def stop(self) -> int | None:
        """The exit code after SIGTERM, or None when it had to be killed."""
        return self.proc.returncode if stop_process(self.proc, 30) else None


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> bool:
    """SIGTERM, then SIGKILL if it does not go within `timeout` seconds; False if killed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return False
    return True


@contextlib.contextmanager
def server(work: Path, geoip: bool) -> Iterator[Server]:
    s = Server(work, geoip)
    try:
        yield s
    finally:
        s.stop()


def finish(srv: Server, n: int, t0: float, t1: float, cpu0: float, **extra) -> dict:
    docs = srv.output_docs()
    m = srv.metrics()
    tags: dict[str, int] = {}
    cpu = srv.cpu_at_written - cpu0
    return {"messages": n, "seconds": round(t1 - t0, 3), "msg_per_s": round(n / (t1 - t0)),
            "server_cpu_seconds": round(cpu, 2), "msg_per_server_cpu_s": round(n / cpu) if cpu else None,
            "docs_in_output": docs, "missing": n - docs, "datasets": m.get("datasets", tags), **extra}


# ---------------------------------------------------------------- corpus

def sample_lines() -> list[str]:
    """auth.log with facility auth (<38>), mail.log with facility mail (<22>), interleaved."""
    auth = [f"<38>{x}" for x in (SAMPLES / "auth.log").read_text().splitlines() if x.strip()]
    mail = [f"<22>{x}" for x in (SAMPLES / "mail.log").read_text().splitlines() if x.strip()]
    out = []
    for i in range(max(len(auth), len(mail))):
        if i < len(auth):
            out.append(auth[i])
        if i < len(mail):
            out.append(mail[i])
    return out


def repeated(lines: list[str], n: int) -> list[str]:
    return [lines[i % len(lines)] for i in range(n)]


# ---------------------------------------------------------------- scenarios

def octet_counted(n: int) -> bytes:
    lines = repeated(sample_lines(), n)
    return b"".join(b"%d %s" % (len(b), b) for b in (x.encode() for x in lines))


def bench_syslog_tcp(work: Path, n: int, geoip: bool) -> dict:
    payload = octet_counted(n)
    with server(work, geoip) as srv:
        s = socket.create_connection(("127.0.0.1", srv.ports["syslog_tcp"]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        view = memoryview(payload)
        cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
        for i in range(0, len(view), 65536):
            s.sendall(view[i:i + 65536])
        t_sent = time.perf_counter()
        t1 = srv.wait_written(n, "syslog tcp")
        s.close()
        return finish(srv, n, t0, t1, cpu0, bytes=len(payload), send_seconds=round(t_sent - t0, 3))


def riemann_events(k: int, i: int) -> list[Event]:
    now = time.time()
    return [Event(time=now, host=f"web{(i + j) % 16}.example.net", service=f"cpu-{j % 8} user",
                  state="ok" if j % 10 else "warning", metric=(i + j) % 100 / 3.0, ttl=60.0,
                  description="collectd cpu", tags=["collectd", "bench"],
                  attributes={"plugin": "cpu", "type": "percent"}) for j in range(k)]


def bench_riemann_tcp(work: Path, n: int, geoip: bool, batch: int = 100) -> dict:
    # distinct batches, encoded before timing
    frames = [frame(encode_msg(events=riemann_events(batch, i))) for i in range(64)]
    nbatches = n // batch
    n = nbatches * batch
    ok = ok_reply()
    with server(work, geoip) as srv:
        s = socket.create_connection(("127.0.0.1", srv.ports["riemann_tcp"]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
        for i in range(nbatches):
            s.sendall(frames[i % len(frames)])
            got = b""
            while len(got) < len(ok):
                chunk = s.recv(len(ok) - len(got))
                if not chunk:
                    raise RuntimeError(f"riemann: connection closed after {i} batches")
                got += chunk
            if got != ok:
                raise RuntimeError(f"riemann: reply {got!r} to batch {i}, not ok")
        t_acked = time.perf_counter()
        t1 = srv.wait_written(n, "riemann tcp")
        s.close()
        return finish(srv, n, t0, t1, cpu0, batch=batch, acked_seconds=round(t_acked - t0, 3),
                      acked_events_per_s=round(n / (t_acked - t0)))


def kernel_udp_drops(port: int) -> int | None:
    """The kernel's drop counter of the socket bound to `port` (/proc/net/udp, last column)."""
    try:
        rows = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for r in rows:
        f = r.split()
        if f[1].endswith(f":{port:04X}"):
            return int(f[-1])
    return None


def bench_udp(work: Path, rates: list[int], seconds: float, geoip: bool) -> list[dict]:
    lines = [x.encode() for x in sample_lines()]
    out = []
    with server(work, geoip) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        addr = ("127.0.0.1", srv.ports["syslog_udp"])
        written = 0
        for rate in rates:
            before = srv.metrics()["listeners"]["syslog_udp"]
            kdrops0 = kernel_udp_drops(addr[1])
            total = int(rate * seconds)
            tick = 0.001
            per_tick = rate * tick
            sent, k = 0, 0
            t0 = time.perf_counter()
            while sent < total:
                due = min(total, int((time.perf_counter() - t0) / tick * per_tick) + int(per_tick) + 1)
                while sent < due:
                    s.sendto(lines[k], addr)
                    k = (k + 1) % len(lines)
                    sent += 1
                wait = t0 + sent / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t_send = time.perf_counter() - t0
            # let the queue drain: written stops moving and the queue is empty
            last, still = -1, 0
            while still < 5:
                m = srv.metrics()
                w = m["sinks"]["elasticsearch_files"]["sent"]
                still = still + 1 if (w == last and m["queue"]["depth"] == 0) else 0
                last = w
                time.sleep(0.1)
            after = m["listeners"]["syslog_udp"]
            kdrops1 = kernel_udp_drops(addr[1])
            received = after["received"] - before["received"]
            dropped = after["dropped"] - before["dropped"]
            docs = w - written
            written = w
            out.append({"target_rate": rate, "sent": sent, "achieved_send_rate": round(sent / t_send),
                        "received": received, "dropped": dropped, "lost_in_kernel": sent - received,
                        "proc_net_udp_drops": None if kdrops0 is None or kdrops1 is None else kdrops1 - kdrops0,
                        "written": docs, "dropped_share": round(dropped / sent, 4),
                        "lost_share": round((sent - docs) / sent, 4)})
        s.close()
        out_docs = srv.output_docs()
    if out and out_docs != written:
        out[-1]["note"] = f"output holds {out_docs} documents, sink counter {written}"
    return out


def rsyslog_available() -> tuple[str | None, str]:
    exe = shutil.which("rsyslogd", path=SEARCH_PATH)
    if exe is None:
        return None, "rsyslogd not installed (deploy/dev/install-debian-packages)"
    dirs = glob.glob("/usr/lib/*/rsyslog") + ["/usr/lib/rsyslog", "/usr/lib64/rsyslog"]
    for mod in ("imfile", "omrelp"):
        if not any(Path(d, f"{mod}.so").exists() for d in dirs):
            return None, f"rsyslog module {mod} not installed (rsyslog / rsyslog-relp)"
    return exe, ""


def bench_relp(work: Path, n: int, geoip: bool, window: int) -> dict:
    exe, why = rsyslog_available()
    if exe is None:
        return {"skipped": why}
    lines = repeated([x.split(">", 1)[1] for x in sample_lines()], n)
    src = work / "input.log"
    src.write_text("".join(f"{x}\n" for x in lines))
    rwork = work / "rsyslog-work"
    rwork.mkdir()
    conf = work / "rsyslog.conf"
    with server(work, geoip) as srv:
        conf.write_text(
            f'global(workDirectory="{rwork}")\n'
            'module(load="imfile")\nmodule(load="omrelp")\n'
            'template(name="line" type="string" string="%rawmsg%")\n'
            f'input(type="imfile" File="{src}" Tag="bench:" ruleset="relp")\n'
            'ruleset(name="relp" queue.type="LinkedList" queue.size="200000") {\n'
            f'  action(type="omrelp" target="127.0.0.1" port="{srv.ports["relp"]}" template="line"'
            f' windowSize="{window}")\n'
            '}\n')
        check = subprocess.run([exe, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=20)
        if check.returncode != 0:
            return {"skipped": f"rsyslogd -N1 rejects the config: {check.stdout}{check.stderr}"}
        argv = [exe, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            argv = ["taskset", "-c", str(CLIENT_CORE), *argv]
        with open(work / "rsyslogd.out", "wb") as log:
            rs = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                t_start = time.perf_counter()
                # first byte: the RELP listener's first connection / message
                while True:
                    lst = srv.metrics()["listeners"]["relp"]
                    if lst["received"] > 0:
                        cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
                        break
                    if rs.poll() is not None:
                        raise RuntimeError(f"rsyslogd exited {rs.returncode}: "
                                           f"{(work / 'rsyslogd.out').read_text(errors='replace')}")
                    if time.perf_counter() - t_start > STALL:
                        raise RuntimeError("relp: nothing received from rsyslogd")
                    time.sleep(0.005)
                t1 = srv.wait_written(n, "relp from rsyslogd")
            finally:
                stop_process(rs, 15)
        lst = srv.metrics()["listeners"]["relp"]
        return finish(srv, n, t0, t1, cpu0, window=window, from_rsyslogd_start_seconds=round(t1 - t_start, 3),
                      relp_received=lst["received"], relp_errors=lst["errors"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SYSLOG_NG_PEERS = {   # the --syslog peers: key in ingest.json, the table's label, its goal column
    "parsing": ("syslog_ng_tcp_octet_parsing",
                "syslog-ng TCP octet-counted, same parsing -> format-json file", "peer (issue 15 goal)"),
    "plain": ("syslog_ng_tcp_octet_file",
              "syslog-ng TCP octet-counted, plain (RFC 3164 header only, no patterns) -> file",
              "reference, no parsing"),
}


def syslog_ng_peer_config(port: int, out: Path, parsing: bool) -> str:
    """The peer's configuration: the same listener either way, network() + transport("framed")
    (octet-counted framing; syslog() would parse the messages as RFC 5424, which these lines
    are not). `parsing`: no parsing at the source, then syslog_ng_config's log path (JSON?
    Fail2ban's own log? syslog-parser + the product's regexp-parser by program) -> file() with
    format-json, as parse_bench/replay_bench give syslog-ng. Plain: RFC 3164 parsing at the
    source into a file() with the default template, nothing more."""
    network = (f'network(ip(127.0.0.1) port({port}) transport("framed") max-connections(10)'
               " log-iw-size(10000)")
    if parsing:
        return syslog_ng_config(None, out, source=f"{network} flags(no-parse, store-raw-message))")
    return ("@version: 3.38\noptions { stats-freq(0); };\n"
            f"source s {{ {network}); }};\n"
            f'destination d {{ file("{out}"); }};\n'
            "log { source(s); destination(d); };\n")


def product_lines(out: Path) -> dict[str, int]:
    """Lines of the peer's format-json output holding each product's fields (what its
    regexp-parsers captured): the check that it parsed."""
    keys = {p: b'"%s":{' % p.encode() for p in SYSLOG_NG_PATTERNS}
    counts = dict.fromkeys(keys, 0)
    with open(out, "rb") as fh:
        for line in fh:
            for p, k in keys.items():
                if k in line:
                    counts[p] += 1
    return counts


def bench_syslog_ng(work: Path, n: int, parsing: bool) -> dict:
    """The same octet-counted stream as bench_syslog_tcp into syslog-ng pinned like the server:
    first byte sent until the file holds every line, and syslog-ng's CPU time meanwhile."""
    argv, env, why = syslog_ng_available(SYSLOG_NG_MODULES if parsing else ())
    if argv is None:
        return {"skipped": why}
    payload = octet_counted(n)
    port = free_port()
    out = work / "sng-out.log"
    conf = work / "syslog-ng.conf"
    conf.write_text(syslog_ng_peer_config(port, out, parsing))
    files = ["-f", str(conf), "-R", str(work / "sng.persist"), "-c", str(work / "sng.ctl"),
             "-p", str(work / "sng.pid")]
    check = subprocess.run([*argv, "--syntax-only", *files], capture_output=True, text=True, timeout=20, env=env)
    if check.returncode != 0:
        return {"skipped": f"syslog-ng --syntax-only rejects the config: {check.stdout}{check.stderr}"}
    cmd = [*argv, "-F", "--stderr", *files]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", SERVER_CORE, *cmd]
    log_path = work / "syslog-ng.out"
    with open(log_path, "wb") as log:
        sng = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=1)
                    break
                except OSError:
                    if sng.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"syslog-ng did not start: "
                                           f"{log_path.read_text(errors='replace')[-2000:]}") from None
                    time.sleep(0.05)
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            view = memoryview(payload)
            cpu0, t0 = cpu_seconds(sng.pid), time.perf_counter()   # taskset execs: sng.pid is syslog-ng
            for i in range(0, len(view), 65536):
                s.sendall(view[i:i + 65536])
            t_sent = time.perf_counter()
            written = AppendedLines(out)
            while True:
                lines = written.poll()
                t1 = time.perf_counter()
                if lines >= n:
                    cpu = cpu_seconds(sng.pid) - cpu0
                    break
                if sng.poll() is not None:
                    raise RuntimeError(f"syslog-ng exited ({sng.returncode}) at {lines}/{n} lines: "
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                if time.monotonic() - written.last_change > STALL:
                    raise RuntimeError(f"syslog-ng: stuck at {lines}/{n} lines in the file for {STALL}s")
                time.sleep(0.02)
            s.close()
        finally:
            stop_process(sng, 15)
    version = subprocess.run([*argv, "--version"], capture_output=True, text=True, env=env).stdout.split("\n")[0]
    res = {"messages": n, "seconds": round(t1 - t0, 3), "msg_per_s": round(n / (t1 - t0)),
           "server_cpu_seconds": round(cpu, 2), "msg_per_server_cpu_s": round(n / cpu) if cpu else None,
           "lines_in_file": lines, "missing": n - lines, "bytes": len(payload),
           "send_seconds": round(t_sent - t0, 3), "version": version, "pinned": cmd[0] == "taskset",
           "source": 'network(transport("framed"))' + (" flags(no-parse, store-raw-message)" if parsing else "")}
    if parsing:
        res.update(parsing="bench/syslog_ng.py syslog_ng_config's log path (syslog-parser + regexp-parser "
                           "by program, sshd/postfix/fail2ban)", destination="file() with format-json",
                   lines_with_product_fields=product_lines(out))
    else:
        res.update(parsing="RFC 3164 at the source only", destination="file(), default template")
    return res


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--syslog", type=int, default=200_000, help="syslog TCP messages (0: skip)")
    ap.add_argument("--relp", type=int, default=100_000, help="RELP messages via rsyslogd (0: skip)")
    ap.add_argument("--relp-window", type=int, default=1024)
    ap.add_argument("--riemann", type=int, default=200_000, help="Riemann events, batches of 100 (0: skip)")
    ap.add_argument("--udp-rates", default="2000,5000,10000,30000,100000", help="msg/s, comma separated ('' : skip)")
    ap.add_argument("--udp-seconds", type=float, default=2.0)
    ap.add_argument("--geoip", action="store_true", help=f"GeoIP on, with {CITY_TEST_DB.name}")
    ap.add_argument("--syslog-ng", action=argparse.BooleanOptionalAction,
                    default=syslog_ng_available()[0] is not None,
                    help="peer figure: the private syslog-ng receiving the --syslog stream into a file "
                         "(default: on when .cache/syslog-ng-root holds it)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})
    res: dict = {"python": platform.python_version(), "cpus": os.cpu_count(),
                 "server_pinned": bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1,
                 "geoip": str(CITY_TEST_DB) if args.geoip else None, "command": " ".join(sys.argv),
                 "loadavg_at_start": os.getloadavg()}   # other tenants of a shared machine
    rows: list[tuple[str, str, str, str]] = []

    def run(name: str, fn, *a):
        with tempfile.TemporaryDirectory(prefix=f"ingest-{name}-") as d:
            try:
                r = fn(Path(d), *a)
            except RuntimeError as e:
                r = {"error": str(e)}
        res[name] = r
        return r

    if args.syslog:
        r = run("syslog_tcp_octet", bench_syslog_tcp, args.syslog, args.geoip)
        rows.append(row("syslog TCP octet-counted", r, "≥ 1.0× syslog-ng (same parsing)"))
        if args.syslog_ng:
            ratios = []
            for kind in ("parsing", "plain"):
                key, label, goal = SYSLOG_NG_PEERS[kind]
                p = run(key, bench_syslog_ng, args.syslog, kind == "parsing")
                rows.append(row(label, p, goal))
                if "msg_per_s" in r and "msg_per_s" in p:
                    ratio = r["msg_per_s"] / p["msg_per_s"]
                    cpu = (r["msg_per_server_cpu_s"] / p["msg_per_server_cpu_s"]
                           if r.get("msg_per_server_cpu_s") and p.get("msg_per_server_cpu_s") else None)
                    suffix = "" if kind == "parsing" else "_plain"
                    res[f"ratio_streams_to_syslog_ng{suffix}"] = round(ratio, 3)
                    res[f"cpu_ratio_streams_to_syslog_ng{suffix}"] = None if cpu is None else round(cpu, 3)
                    what = "same parsing (goal)" if kind == "parsing" else "plain, no parsing"
                    ratios.append((f"ratio streams / syslog-ng {what}", "-",
                                   f"{ratio:.2f}x" + ("" if cpu is None else f" (per CPU-s {cpu:.2f}x)"),
                                   "≥ 1.0" if kind == "parsing" else ""))
            rows.extend(ratios)
    if args.relp:
        r = run("relp_rsyslog", bench_relp, args.relp, args.geoip, args.relp_window)
        rows.append(row(f"RELP rsyslog omrelp (window {args.relp_window})", r, "≥ 100,000, 0 lost"))
    if args.riemann:
        r = run("riemann_tcp_batch100", bench_riemann_tcp, args.riemann, args.geoip)
        rows.append(row("Riemann TCP, batches of 100", r, "≥ 150,000"))
    rates = [int(x) for x in args.udp_rates.split(",") if x.strip()]
    if rates:
        r = run("syslog_udp", bench_udp, rates, args.udp_seconds, args.geoip)
        for u in r if isinstance(r, list) else []:
            rows.append((f"syslog UDP @ {u['target_rate']:,}/s ({u['achieved_send_rate']:,} sent/s)",
                         f"{u['sent']:,}", f"dropped {u['dropped_share']:.1%}, lost {u['lost_share']:.1%} (kernel)",
                         "loss onset"))
        if isinstance(r, dict):
            rows.append(("syslog UDP", "-", r.get("error", "?"), ""))
    res["loadavg_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(res, indent=2) + "\n")
    w = max(len(x[0]) for x in rows) if rows else 10
    rw = max(len(x[2]) for x in rows) if rows else 32
    print(f"{'scenario':<{w}}  {'messages':>9}  {'result':<{rw}}  goal")
    for name, n, result, goal in rows:
        print(f"{name:<{w}}  {n:>9}  {result:<{rw}}  {goal}")
    print(f"\nload average at start {res['loadavg_at_start'][0]:.2f}, at end {res['loadavg_at_end'][0]:.2f}; "
          f"written to {RESULTS / 'ingest.json'}")


def row(name: str, r: dict, goal: str) -> tuple[str, str, str, str]:
    if "skipped" in r:
        return name, "-", "skipped: " + r["skipped"], goal
    if "error" in r:
        return name, "-", "ERROR: " + r["error"][:200], goal
    miss = f", {r['missing']} missing" if r["missing"] else ""
    cpu = f", {r['msg_per_server_cpu_s']:,}/CPU-s" if r.get("msg_per_server_cpu_s") else ""
    return name, f"{r['messages']:,}", f"{r['msg_per_s']:,} msg/s ({r['seconds']} s{cpu}){miss}", goal


if __name__ == "__main__":
    main()
