"""The private syslog-ng 3.38 the benchmarks measure as a peer (unpacked by
deploy/dev/install-syslog-ng-private, as tests/integration/test_syslog_ng_sender.py runs it),
and the configuration they give it: file() source -> JSON line? json-parser : Fail2ban's own
log? its head + the Fail2ban patterns : syslog-parser + the product's regexp-parser by program
[-> geoip2() on the source address the patterns captured] -> file() with format-json
(bench/parse_bench.py without GeoIP, bench/replay_bench.py with it; bench/ingest_bench.py
gives it a network() source instead of the file())."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from measure import cpu_seconds, pin_elsewhere, stop

SYSLOG_NG_ROOT = Path(__file__).resolve().parents[1] / ".cache" / "syslog-ng-root"
SYSLOG_NG_MODULES = ("regexp-parser", "json-plugin", "syslogformat", "affile")  # what syslog_ng_config needs
GEOIP2_MODULE = "geoip2-plugin"   # its geoip2() parser (Debian's syslog-ng-mod-geoip2)
STALL = 60.0            # seconds without progress before a syslog-ng run is declared stuck
VALGRIND_STALL = 300.0  # the same under valgrind (start-up alone takes a while there)


def syslog_ng_available(modules: tuple[str, ...] = ()) -> tuple[list[str] | None, dict[str, str], str]:
    """(argv prefix, environment, "") of the private syslog-ng, or (None, {}, why not);
    `modules`: plugins the caller's configuration needs (`regexp-parser`, ...)."""
    exe = SYSLOG_NG_ROOT / "usr" / "sbin" / "syslog-ng"
    found = sorted(glob.glob(str(SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng" / "[0-9]*")))
    if not exe.exists() or not found:
        return None, {}, f"syslog-ng not unpacked into {SYSLOG_NG_ROOT} (deploy/dev/install-syslog-ng-private)"
    for mod in modules:
        if not Path(found[-1], f"lib{mod}.so").exists():
            return None, {}, f"syslog-ng module {mod} missing in {found[-1]}"
    libs = [str(SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng"),
            *glob.glob(str(SYSLOG_NG_ROOT / "usr" / "lib" / "*-linux-gnu")),
            *glob.glob(str(SYSLOG_NG_ROOT / "lib" / "*-linux-gnu"))]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*libs, os.environ.get("LD_LIBRARY_PATH", "")])}
    return [str(exe), "--no-caps", f"--module-path={found[-1]}"], env, ""


# What streams extracts for the corpus' main products (sshd 31 %, Postfix 27 %, Fail2ban's
# own log 15 % of the distinct lines), as PCRE with named groups. One regexp-parser per
# product, its patterns tried in order (syslog-ng stops at the first match), dispatched on
# the program as streams does. Group names cannot hold dots: the parser's prefix gives
# `sshd.user`, which format-json nests as {"sshd": {"user": ...}}.
SYSLOG_NG_PATTERNS: dict[str, list[str]] = {
    "sshd": [
        r"^Failed (?<method>[\w/-]+) for (?:(?<invalid_user>invalid user) )?(?<user>.*?) from "
        r"(?<source_address>\S+)(?: port (?<source_port>\d+))?(?: ssh\d?)?(?:: (?<auth_info>.*))?$",
        r"^(?<pam_module>pam_\w+)\(sshd:auth\): authentication failure; logname=(?<pam_logname>\S*) "
        r"uid=(?<pam_uid>\d*) euid=(?<pam_euid>\d*) tty=(?<pam_tty>\S*) ruser=(?<pam_ruser>\S*) "
        r"rhost=(?<source_address>\S*)(?:\s+user=(?<user>\S*))?\s*$",
        r"^[Ii]nvalid user (?<user>.*?) from (?<source_address>\S+)(?: port (?<source_port>\d+))?"
        r"(?<preauth> \[preauth\])?$",
        r"^(?<close>Connection closed by|Connection reset by|Disconnected from) (?:(?<invalid_user>invalid) "
        r"|authenticating )?user (?<user>.*?) (?<source_address>\S+) port (?<source_port>\d+)(?<preauth> \[preauth\])?$",
        r"^(?<close>Connection closed by|Connection reset by|Disconnected from) (?<source_address>\S+) "
        r"port (?<source_port>\d+)(?<preauth> \[preauth\])?$",
        r"^Accepted (?<method>[\w/-]+) for (?<user>.*?) from (?<source_address>\S+)(?: port (?<source_port>\d+))?"
        r"(?: ssh\d?)?(?:: (?<key_type>\w+) (?<key_fingerprint>\S+)(?: (?<auth_info>.*))?)?$",
        r"^Received disconnect from (?<source_address>\S+)(?: port (?<source_port>\d+))?: ?(?<disconnect_code>\d+): "
        r"(?<reason>.*?)(?<preauth> \[preauth\])?$",
        r"^(?<pam_module>pam_\w+)\(sshd:session\): session (?<session_action>opened|closed) for user "
        r"(?<user>[^\s(]+)(?:\(uid=(?<uid>\d+)\))?(?: by (?<by>.*))?$",
    ],
    "postfix": [
        r"^connect from (?<client_hostname>[^\[\s]+)\[(?<client_ip>[^\]]+)\](?::(?<client_port>\d+))?$",
        r"^disconnect from (?<client_hostname>[^\[\s]+)\[(?<client_ip>[^\]]+)\](?::(?<client_port>\d+))?"
        r"(?: (?<command_counters>.*))?$",
        r"^(?<level>warning): (?<client_hostname>[^\[\s]+)\[(?<client_ip>[^\]]+)\]: SASL (?<sasl_method>[\w-]+) "
        r"authentication failed(?:: (?<sasl_failure_reason>[^,]*))?(?:, sasl_username=(?<sasl_username>\S*))?$",
        r"^(?<queueid>[0-9A-Za-z]+): to=<(?<to>[^>]*)>,(?: orig_to=<(?<orig_to>[^>]*)>,)? relay=(?<relay>[^,]+),"
        r"(?: conn_use=\d+,)? delay=(?<delay>[\d.]+), delays=(?<delays>[\d./]+), dsn=(?<dsn>[\d.]+), "
        r"status=(?<status>\w+)(?: \((?<smtp_response>.*)\))?$",
        r"^(?<queueid>[0-9A-Za-z]+): message-id=<?(?<message_id>[^<>]*)>?$",
        r"^(?<queueid>[0-9A-Za-z]+): client=(?<client_hostname>[^\[\s]+)\[(?<client_ip>[^\]]+)\]"
        r"(?::(?<client_port>\d+))?(?:, (?<keyvalue_data>.*))?$",
        r"^(?<queueid>[0-9A-Za-z]+): from=<(?<from>[^>]*)>, size=(?<size>\d+), nrcpt=(?<nrcpt>\d+) \(queue active\)$",
        r"^(?<queueid>[0-9A-Za-z]+): (?<message>removed)$",
        r"^(?<tls_trustlevel>\w+) TLS connection established (?:from|to) (?<peer_hostname>[^\[\s]+)"
        r"\[(?<peer_ip>[^\]]+)\](?::(?<peer_port>\d+))?: (?<tls_handshake>.*)$",
        r"^(?<queueid>NOQUEUE|[0-9A-Za-z]+): (?<action>[a-z][\w-]*): (?<smtp_stage>\S+)(?: from "
        r"(?<client_hostname>[^\[\s]+)\[(?<client_ip>[^\]]+)\](?::\d+)?)?: (?<status_code>\d{3}) "
        r"(?<status_ext>\d\.\d+\.\d+) (?<reason>.*?)(?:; (?<keyvalue_data>.*))?$",
    ],
    "fail2ban": [
        r"^(?:(?<level>[A-Z]+) +)?\[(?<jail>[^\]]+)\] +(?<action>Found|Ban|Unban|Restore Ban) (?<address>\S+)"
        r"(?: - (?<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d))?\s*$",
        r"^(?:(?<level>[A-Z]+) +)?\[(?<jail>[^\]]+)\] +(?<address>\S+) already banned$",
    ],
}
# Fail2ban's own log (`2026-11-24 00:05:03,693 fail2ban.filter [812]: INFO [sshd] Found ...`) is
# no syslog line: its head is parsed by this pattern (as streams' _F2B_OWN) and date-parser,
# then the fail2ban patterns run on the rest.
SYSLOG_NG_F2B_HEAD = (r"^(?<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[,.]\d+)?) (?<logger>fail2ban(?:\.[\w-]+)*) *"
                      r"(?:\[(?<pid>\d+)\])? *: +(?:(?<level>[A-Z]+) +)?(?<body>.*)$")
SYSLOG_NG_PRODUCTS = {  # product -> the programs it is dispatched on: (name, prefix match)
    "sshd": [("sshd", False), ("sshd-session", False)],
    "postfix": [("postfix/", True), ("postfix-", True)],   # postfix-incoming/smtpd: a second instance
    "fail2ban": [("fail2ban", True)],
}
# The source address each product's patterns capture: what geoip2() looks up (streams looks up
# source.ip, which its rules set from the same captures).
SYSLOG_NG_SOURCE_ADDRESS = {"sshd": "source_address", "postfix": "client_ip", "fail2ban": "address"}
# streams' source.geo.* (ECS layout, streams/enrich/geoip.py) from geoip2()'s names (its prefix
# ".geo."): the same fields in the output, as strings (format-json writes the MaxMind record's
# numbers as text).
SYSLOG_NG_GEO_PAIRS = {
    "source.geo.location.lat": "location.latitude", "source.geo.location.lon": "location.longitude",
    "source.geo.timezone": "location.time_zone", "source.geo.country_iso_code": "country.iso_code",
    "source.geo.country_name": "country.names.en", "source.geo.city_name": "city.names.en",
    "source.geo.region_name": "subdivisions.0.names.en", "source.geo.continent_code": "continent.code",
    "source.geo.postal_code": "postal.code",
}


def _sng_patterns(patterns: list[str]) -> str:
    for p in patterns:
        assert "'" not in p, p   # single-quoted syslog-ng strings: no escapes, no quote inside
    return "\n    ".join(f"'{p}'" for p in patterns)


def file_source(corpus: Path) -> str:
    """The source driver syslog_ng_config reads `corpus` with: file(), no parsing at the source."""
    return (f'file("{corpus}" flags(no-parse, store-raw-message) follow-freq(1) log-fetch-limit(1000) '
            "log-iw-size(10000))")


def syslog_ng_config(corpus: Path | None, out: Path, geoip_db: Path | None = None, source: str | None = None) -> str:
    """file() (no parsing at the source) -> JSON line? json-parser : Fail2ban's own log?
    its head + the fail2ban patterns : syslog-parser + the product's regexp-parser by program
    -> file() with format-json. A parser that fails inside `if { }` lets the line go on
    unchanged (it is written too, without the product's fields).

    With `geoip_db`: after a product's patterns captured a source address, geoip2() looks it
    up in that City database and the output carries SYSLOG_NG_GEO_PAIRS as source.geo.*
    (an address not in the database, or no address: the line goes on without them).

    With `source`: that source driver (e.g. `network(... transport("framed") flags(no-parse,
    store-raw-message))`, bench/ingest_bench.py) instead of file_source(corpus); it must not
    parse either (flags(no-parse, store-raw-message)), the log path's syslog-parser does."""
    if source is None:
        if corpus is None:
            raise ValueError("syslog_ng_config: a corpus file or a source driver")
        source = file_source(corpus)
    parsers, branches = [], []

    def parse(product: str) -> str:
        text = f"if {{ parser(p_{product}); }};"
        if geoip_db is not None:
            addr = f"${{{product}.{SYSLOG_NG_SOURCE_ADDRESS[product]}}}"
            text += f' if ("{addr}" ne "") {{ parser(p_geo_{product}); }};'
        return text

    for product, patterns in SYSLOG_NG_PATTERNS.items():
        parsers.append(f'parser p_{product} {{ regexp-parser(prefix("{product}.") patterns(\n    '
                       f"{_sng_patterns(patterns)})); }};")
        if geoip_db is not None:
            assert '"' not in str(geoip_db), geoip_db
            parsers.append(f'parser p_geo_{product} {{ geoip2("${{{product}.{SYSLOG_NG_SOURCE_ADDRESS[product]}}}" '
                           f'prefix(".geo.") database("{geoip_db}")); }};')
        conds = " or ".join(f'program("{name}" type(string){" flags(prefix)" if prefix else ""})'
                            for name, prefix in SYSLOG_NG_PRODUCTS[product])
        branches.append(f"{'elif' if branches else 'if'} ({conds}) {{ {parse(product)} }}")
    parsers.append(f'parser p_f2b_head {{ regexp-parser(prefix(".f2b.") patterns(\n    '
                   f"{_sng_patterns([SYSLOG_NG_F2B_HEAD])})); }};")
    keys = " ".join(f"--key {p}.*" for p in SYSLOG_NG_PATTERNS)
    geo = "".join(f"--pair {k}=${{.geo.{v}}} " for k, v in SYSLOG_NG_GEO_PAIRS.items()) if geoip_db else ""
    template = ("$(format-json --omit-empty-values --pair @timestamp=$ISODATE "
                "--pair event.original=$RAWMSG --pair host.hostname=$HOST "
                "--pair process.name=$PROGRAM --pair process.pid=$PID "
                "--pair log.logger=${.f2b.logger} --pair log.level=${.f2b.level} "
                f"--pair message=$MESSAGE {geo}{keys} --key json.*)\\n")
    return "\n".join([
        "@version: 3.38",
        "options { stats-freq(0); use-dns(no); dns-cache(no); use-fqdn(no); keep-hostname(yes);",
        "          chain-hostnames(no); frac-digits(3); log-msg-size(65536); };",
        f"source s_corpus {{ {source}; }};",
        *parsers,
        f'destination d_json {{ file("{out}" template("{template}")); }};',
        "log {",
        "  source(s_corpus);",
        '  if (message("{" type(string) flags(prefix))) {',
        '    if { parser { json-parser(prefix("json.")); };',
        '         rewrite { set("${json.full_log}" value("MESSAGE") condition("${json.full_log}" ne "")); }; }; }',
        "  elif { parser(p_f2b_head);",
        '         parser { date-parser(format("%Y-%m-%d %H:%M:%S,%f" "%Y-%m-%d %H:%M:%S") template("${.f2b.ts}")); };',
        '         rewrite { set("${.f2b.body}" value("MESSAGE")); set("${.f2b.pid}" value("PID")); };',
        f"         {parse('fail2ban')} }}",
        "  else {",
        "    parser { syslog-parser(); };",
        *(f"    {b}" for b in branches), "    ;",
        "  };",
        "  destination(d_json);",
        "  flags(flow-control);",
        "};",
        ""])


def expected_docs(lines: list[str]) -> int:
    """The lines syslog-ng reads from the file `write(lines)` made: a corpus line holding a
    newline is two lines there; syslog-ng skips an empty line."""
    return sum(1 for x in lines for piece in x.split("\n") if piece)


def modules(geoip_db: Path | None = None) -> tuple[str, ...]:
    """The plugins syslog_ng_config(..., geoip_db) needs."""
    return SYSLOG_NG_MODULES + ((GEOIP2_MODULE,) if geoip_db is not None else ())


def syslog_ng_version() -> str:
    argv, env, why = syslog_ng_available()
    if argv is None:
        return why
    return subprocess.run([*argv, "--version"], capture_output=True, text=True, env=env).stdout.split("\n")[0]


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _vmhwm_mib(pid: int) -> float | None:
    try:
        for x in Path(f"/proc/{pid}/status").read_text().splitlines():
            if x.startswith("VmHWM:"):
                return round(int(x.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class AppendedLines:
    """The lines of a file another process appends to, counted by reading only what was
    appended since the last look; `last_change`: when the count last moved."""

    def __init__(self, path: Path) -> None:
        self.path, self.pos, self.lines, self.last_change = path, 0, 0, time.monotonic()

    def poll(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                chunk = fh.read()
            if chunk:
                self.pos += len(chunk)
                self.lines += chunk.count(b"\n")
                self.last_change = time.monotonic()
        return self.lines


def run_syslog_ng(work: Path, corpus: Path, n_docs: int, core: int | None, wrapper: list[str] | None = None,
                  stall: float = STALL, geoip_db: Path | None = None) -> dict:
    """One fresh syslog-ng (its own persist file, so it reads the corpus from the start):
    Popen -> the output file holds n_docs lines (polled from another core), then SIGTERM.
    With n_docs 0: until it logged its start-up. `wrapper` (valgrind, perf stat) runs it;
    its CPU seconds and peak RSS (VmHWM) are syslog-ng's own (the pid in its pid file), read
    when the last line is in."""
    argv, env, why = syslog_ng_available(modules(geoip_db))
    if argv is None:
        raise RuntimeError(why)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out.ndjson"
    conf = work / "syslog-ng.conf"
    conf.write_text(syslog_ng_config(corpus, out, geoip_db))
    files = ["-f", str(conf), "-R", str(work / "persist"), "-c", str(work / "ctl"), "-p", str(work / "pid")]
    check = subprocess.run([*argv, "--syntax-only", *files], capture_output=True, text=True, timeout=30, env=env)
    if check.returncode != 0:
        raise RuntimeError(f"syslog-ng --syntax-only rejects the config: {check.stdout}{check.stderr}")
    cmd = [*(wrapper or []), *argv, "-F", "--stderr", *files]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    log_path = work / "syslog-ng.stderr"
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        sng = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        old = pin_elsewhere(core) if core is not None else None
        pid = None
        try:
            written = AppendedLines(out)
            while True:
                pid = pid or _pid(work / "pid")
                if n_docs == 0:
                    if b"syslog-ng starting up" in log_path.read_bytes():
                        t1 = time.perf_counter()
                        pid = pid or _pid(work / "pid") or sng.pid
                        cpu, rss = cpu_seconds(pid), _vmhwm_mib(pid)
                        break
                else:
                    t1 = time.perf_counter()
                    if written.poll() >= n_docs:
                        pid = pid or sng.pid
                        cpu, rss = cpu_seconds(pid), _vmhwm_mib(pid)
                        break
                if sng.poll() is not None:
                    raise RuntimeError(f"syslog-ng exited ({sng.returncode}) at {written.lines}/{n_docs} lines: "
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                if time.monotonic() - written.last_change > stall:
                    raise RuntimeError(f"syslog-ng: stuck at {written.lines}/{n_docs} lines for {stall:.0f}s")
                time.sleep(0.005)
        finally:
            stop(sng, pid=pid)
            if old is not None:
                os.sched_setaffinity(0, old)
    return {"seconds": t1 - t0, "cpu_seconds": cpu, "peak_rss_mib": rss, "docs": written.lines, "out": out}


