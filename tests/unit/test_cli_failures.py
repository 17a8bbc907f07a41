"""What a careless operator can do to the command line: each case ends in its documented exit
code and one clear error line (a JSON log line on stderr), never a traceback.

Run as `python -m streams.cli` subprocesses, as an operator would. Servers are absent on
purpose: a closed port is a real socket nobody listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams import SAMPLES_DIR

ROOT_USER = os.geteuid() == 0
LINE = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 1 ssh2\n"
LISTENERS = ("relp", "syslog_udp", "syslog_tcp", "syslog_tls", "riemann_tcp", "riemann_udp", "http")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def d(tmp_path):
    """A folder with a log, a plain file, a folder and assorted bad inputs."""
    (tmp_path / "a.log").write_text(LINE)
    (tmp_path / "afile").write_text("just a file\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "bad.toml").write_text("[parse\n")
    (tmp_path / "typo.toml").write_text("[parse]\nyeer = 2026\n")
    (tmp_path / "fake.mmdb").write_text("not a MaxMind database\n")
    return tmp_path


def cli(*args: str, timeout: float = 120) -> tuple[int, list[dict]]:
    r = subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in r.stderr, r.stderr
    try:
        return r.returncode, [json.loads(x) for x in r.stderr.splitlines()]
    except json.JSONDecodeError:
        raise AssertionError(f"stderr is not JSON log lines:\n{r.stderr}") from None


def one_error(lines: list[dict], *words: str) -> str:
    errors = [x["msg"] for x in lines if x["level"] == "error"]
    assert len(errors) == 1, lines
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def replay(d: Path, *args: str) -> tuple[int, list[dict]]:
    return cli("replay", "-q", "--no-progress", "--no-geoip", "-o", str(d / "out"), *args)


# -- configuration file ------------------------------------------------------------------------

@pytest.mark.parametrize("config, words", [
    ("missing.toml", ["missing.toml", "No such file"]),
    ("adir", ["adir", "directory"]),
    ("bad.toml", ["bad.toml", "line 1"]),
    ("typo.toml", ["typo.toml", "yeer"]),
    ("afile/streams.toml", ["afile/streams.toml", "Not a directory"]),   # unreadable, even as root
])
@pytest.mark.parametrize("command", ["replay", "run", "setup"])
def test_a_config_file_that_cannot_be_used(d, config, words, command):
    path = str(d / config)
    args = {"replay": ["replay", "-q", "--config", path, str(d / "a.log")],
            "run": ["run", "--no-geoip", "--config", path, "-o", str(d / "out")],
            "setup": ["setup", "elasticsearch", "--config", path, "--url", f"127.0.0.1:{closed_port()}"]}[command]
    rc, lines = cli(*args)
    assert rc == 2
    one_error(lines, *words)


@pytest.mark.skipif(ROOT_USER, reason="root reads a file whatever its mode")
def test_an_unreadable_config_file(d):
    (d / "secret.toml").write_text("[parse]\n")
    (d / "secret.toml").chmod(0)
    rc, lines = replay(d, "--config", str(d / "secret.toml"), str(d / "a.log"))
    assert rc == 2
    one_error(lines, "Permission denied")


@pytest.mark.parametrize("text, words", [("[parse]\nmax_line = 0\n", "max_line"),
                                         ("[output.elasticsearch]\nstall_timeout = -1\n", "stall_timeout")])
def test_a_config_value_out_of_range(d, text, words):
    # max_line = 0 emptied every line: all of them skipped as empty, exit 0
    (d / "range.toml").write_text(text)
    rc, lines = replay(d, "--config", str(d / "range.toml"), str(d / "a.log"))
    assert rc == 2
    one_error(lines, "range.toml", words)


# -- output folder -------------------------------------------------------------------------------

@pytest.mark.parametrize("output, words", [("afile", ["afile", "a file is in the way"]),
                                           ("afile/out", ["afile/out", "Not a directory"])])
@pytest.mark.parametrize("command", ["replay", "run"])
def test_an_output_folder_that_cannot_be_made(d, output, words, command):
    # was: a FileExistsError / NotADirectoryError traceback, exit 1
    out = str(d / output)
    args = (["replay", "-q", "--no-geoip", "-o", out, str(d / "a.log")] if command == "replay"
            else ["run", "--no-geoip", "-o", out])
    rc, lines = cli(*args)
    assert rc == 2
    one_error(lines, *words)


@pytest.mark.skipif(ROOT_USER, reason="root writes into any folder")
def test_an_output_folder_that_is_not_writable(d):
    (d / "ro").mkdir(mode=0o500)
    rc, lines = replay(d, "--output", str(d / "ro"), str(d / "a.log"))
    assert rc == 2
    one_error(lines, "not writable")


def test_an_output_inside_the_folder_in_the_way(d):
    (d / "out").mkdir()
    (d / "out" / "elasticsearch").write_text("a file where the index files go\n")
    rc, lines = replay(d, str(d / "a.log"))
    assert rc == 2
    one_error(lines, "cannot prepare the outputs", "elasticsearch")


def test_an_output_file_that_cannot_be_written_is_exit_3(d):
    # a full disk, simulated with /dev/full behind the index file
    (d / "out" / "elasticsearch").mkdir(parents=True)
    (d / "out" / "elasticsearch" / "streams-sshd.log-2026.11.24.ndjson").symlink_to("/dev/full")
    rc, lines = replay(d, "--year", "2026", str(d / "a.log"))
    assert rc == 3
    one_error(lines, "cannot write the outputs", "No space left")
    assert json.loads((d / "out" / "summary.json").read_text())["output_failures"]


def test_metric_points_that_cannot_be_written_are_exit_3(d):
    (d / "out" / "graphite.txt").mkdir(parents=True)   # in the way, as a full disk would be
    rc, lines = replay(d, "--year", "2026", str(d / "a.log"))
    assert rc == 3
    one_error(lines, "cannot write the metric points", "graphite.txt")


# -- inputs ------------------------------------------------------------------------------------------

def test_a_missing_input(d):
    rc, lines = replay(d, str(d / "missing.log"), str(d / "a.log"))
    assert rc == 1
    one_error(lines, "missing.log", "No such file")
    rc, lines = cli("parse", str(d / "missing.log"))
    assert rc == 1
    one_error(lines, "missing.log")


def test_a_folder_given_to_parse(d):
    rc, lines = cli("parse", str(d / "adir"))
    assert rc == 1
    one_error(lines, "adir", "Is a directory")


@pytest.mark.parametrize("where, words", [("missing", "not a directory"), ("afile", "not a directory")])
def test_a_patterns_dir_that_is_not_one(d, where, words):
    rc, lines = cli("parse", "--patterns-dir", str(d / where), str(d / "a.log"))
    assert rc == 2
    one_error(lines, where, words)


def test_a_bad_pattern_file(d):
    (d / "adir" / "x.grok").write_text("X %{NOPE}\n")
    rc, lines = replay(d, "--patterns-dir", str(d / "adir"), str(d / "a.log"))
    assert rc == 2
    one_error(lines, "x.grok", "NOPE")


@pytest.mark.parametrize("db, words", [("fake.mmdb", "not a readable MaxMind DB"), ("missing.mmdb", "No such file")])
def test_a_geoip_database_that_is_not_one(d, db, words):
    rc, lines = cli("replay", "-q", "-o", str(d / "out"), "--geoip-city", str(d / db), str(d / "a.log"))
    assert rc == 2
    one_error(lines, db, words)


def test_an_unknown_time_zone(d):
    rc, lines = cli("parse", "--timezone", "Mars/Olympus", str(d / "a.log"))
    assert rc == 2
    one_error(lines, "Mars/Olympus")


# -- server addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("output, target, words", [
    ("elasticsearch", "ftp://127.0.0.1:9200", ["ftp", "http or https"]),
    ("elasticsearch", "http://", ["no host"]),
    ("elasticsearch", "127.0.0.1:99999", ["99999"]),
    ("graphite", "127.0.0.1:99999", ["99999", "HOST:PORT"]),
    ("graphite", "http://127.0.0.1:2003", ["not a URL"]),
    ("graphite", "carbon", ["HOST:PORT"]),
    ("kafka", "localhost:9092", ["unknown output"]),
])
def test_an_output_address_that_cannot_work(d, output, target, words):
    rc, lines = replay(d, "--to", output, target, str(d / "a.log"))
    assert rc == 2
    one_error(lines, f"--to {output}", *words)


def test_an_elasticsearch_url_without_a_scheme_is_http(d):
    # was: a 25-line traceback from the client (URL must include a 'scheme'), exit 1
    port = closed_port()
    rc, lines = replay(d, "--stall-timeout", "0.5", "--to", "elasticsearch", f"127.0.0.1:{port}", str(d / "a.log"))
    assert rc == 3
    one_error(lines, "took no document")
    assert any(x.get("url") == f"http://127.0.0.1:{port}" for x in lines)


def test_a_bad_address_in_the_config_file(d):
    (d / "es.toml").write_text('[output.elasticsearch]\nurl = "ftp://es:9200"\n')
    rc, lines = cli("run", "--no-geoip", "--config", str(d / "es.toml"), "-o", str(d / "out"))
    assert rc == 2
    one_error(lines, "[output.elasticsearch] url", "ftp")


def test_setup_against_a_closed_port_and_a_bad_url():
    rc, lines = cli("setup", "elasticsearch", "--url", f"localhost:{closed_port()}")
    assert rc == 1
    one_error(lines, "not reachable", "http://localhost:")
    rc, lines = cli("setup", "elasticsearch", "--url", "ftp://localhost:9200")
    assert rc == 2
    one_error(lines, "--url", "ftp")


def test_query_against_a_closed_port_and_a_bad_url():
    rc, lines = cli("query", "--url", f"http://127.0.0.1:{closed_port()}", 'service = "x"')
    assert rc == 1
    one_error(lines, "cannot query", "refused")
    rc, lines = cli("query", "--url", "ftp://127.0.0.1:5556", 'service = "x"')
    assert rc == 2
    one_error(lines, "--url", "ftp")


# -- run's listeners -------------------------------------------------------------------------------

def listeners_config(d: Path, **ports: int) -> Path:
    p = d / "listeners.toml"
    p.write_text("".join(f"[listeners.{name}]\nport = {ports.get(name, 0)}\n" for name in LISTENERS if name != "syslog_tls")
                 + "[index]\npersist = false\n")
    return p


def test_run_with_a_port_already_in_use(d):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = listeners_config(d, http=busy.getsockname()[1])
        rc, lines = cli("run", "--no-geoip", "--config", str(cfg), "-o", str(d / "out"))
    assert rc == 2
    one_error(lines, "cannot listen", "address already in use")


def test_run_with_a_port_out_of_range(d):
    # was: an OverflowError traceback from bind(), exit 1
    rc, lines = cli("run", "--no-geoip", "--config", str(listeners_config(d, relp=70000)), "-o", str(d / "out"))
    assert rc == 2
    one_error(lines, "[listeners.relp] port", "70000")


@pytest.mark.skipif(ROOT_USER, reason="root may listen on a privileged port")
def test_run_on_a_privileged_port(d):
    rc, lines = cli("run", "--no-geoip", "--config", str(listeners_config(d, http=80)), "-o", str(d / "out"))
    assert rc == 2
    one_error(lines, "cannot listen", "Permission denied")


# -- usage -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["replay"], ["parse", "--max-line", "0"], ["parse", "--max-line", "99999999999"], ["replay", "--stall-timeout", "-1", "x"],
                                  ["replay", "--stall-timeout", "nan", "x"], ["frobnicate"]])
def test_usage_errors_are_exit_2_without_traceback(args):
    r = subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "error:" in r.stderr


def test_samples_still_replay_cleanly(tmp_path):
    """The control case: nothing above is an error for a good command line."""
    rc, lines = cli("replay", "-q", "--no-progress", "--no-geoip", "-o", str(tmp_path / "o"),
                    str(SAMPLES_DIR / "logs" / "auth.log"))
    assert rc == 0 and not [x for x in lines if x["level"] == "error"]


def test_the_command_line_and_the_config_file_bound_max_line_alike():
    from streams import cli, config
    assert cli.MAX_LINE_LIMIT == config.MAX_LINE_LIMIT
