"""Real servers for the integration tests: an Elasticsearch node, a Graphite carbon-cache and a
Kafka broker.

They are started once per test session through the project's own scripts,
`deploy/dev/elasticsearch`, `deploy/dev/carbon` and `deploy/dev/kafka`, on free ports of 127.0.0.1, with their data
under `.cache/run/test-*`, and stopped (and removed) at the end. Fixtures:

- `es_server`: an `ElasticsearchServer` (`url`, `port`, `stop()`, `start()`, `restart()`, `kill()`,
  `stopped()` context manager) for fault tests: stop and start keep the port and the data.
- `elasticsearch_url`: its URL, e.g. `http://127.0.0.1:40123`.
- `carbon`: a `CarbonServer` (`host`, `port` = TCP, `udp_port`, `data_dir`, `send()`, `fetch()`,
  `wait_points()`, and the same `stop()`/`start()`/`restart()`).
- `kafka`: a `KafkaServer` (`bootstrap` = `127.0.0.1:PORT`, `topics(...)` = kafka-topics, the same
  `stop()`/`start()`/`restart()`/`kill()`); its controller listens on another port of the script's
  choosing (PORT+1 or a free one).

`STREAMS_TEST_ES_URL=http://HOST:PORT` or `STREAMS_TEST_CARBON=HOST:PORT` (with
`STREAMS_TEST_CARBON_DIR=` its whisper directory, for `fetch()`) or `STREAMS_TEST_KAFKA=HOST:PORT`
use servers already running
instead; those cannot be stopped by fault tests, which then skip.

Nothing is skipped for a missing Java, Maven or carbon: the fixture fails with the script's
message, since CI must prove the real thing. One exception: the Kafka broker is skipped with a
reason when neither its jars are installed nor Java >= 17 and mvn are there, and CI is not set. The scripts install what is missing (Maven Central
through mvn, Debian packages through apt-get); `scripts/test` runs the installs up front.

Register the fixtures once per session (`pytest_plugins = ["tests.integration.servers"]` in
tests/conftest.py): then, as soon as the collected tests need Elasticsearch, it is started in the
background while the other tests run (it takes ~15 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ES_SCRIPT = REPO / "deploy" / "dev" / "elasticsearch"
CARBON_SCRIPT = REPO / "deploy" / "dev" / "carbon"
KAFKA_SCRIPT = REPO / "deploy" / "dev" / "kafka"
RUN = REPO / ".cache" / "run"
START_TIMEOUT = 600.0     # a cold install (mvn download, apt-get) is part of the first start


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (what bind(0) and outgoing connections get)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, kind: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (carbon listens on both).

    Taken below the kernel's ephemeral range when there is room: the port is free only when picked,
    and the server binds it later (Elasticsearch ~15 s later, while other tests open sockets on
    port 0; stop()/start() reuse it), so a port the kernel hands out to others could be lost."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(50):
        if low > 21024:
            port = rng.randrange(20000, low)
        else:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        if _bindable(port, socket.SOCK_STREAM) and _bindable(port, socket.SOCK_DGRAM):
            return port
    raise RuntimeError("no port free for both TCP and UDP")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _script(script: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a deploy/dev script; a failure fails the test with the script's own message."""
    try:
        p = subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                           timeout=START_TIMEOUT, env={**os.environ, **(env or {})}, cwd=REPO)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{script.relative_to(REPO)} {' '.join(args)} did not finish in {START_TIMEOUT:.0f} s:\n"
                    f"{e.stderr or ''}", pytrace=False)
    if p.returncode != 0:
        pytest.fail(f"{script.relative_to(REPO)} {' '.join(args)} failed (exit {p.returncode}); "
                    f"the integration tests need this real server, so this is a failure, not a skip:\n"
                    f"{p.stderr}{p.stdout}", pytrace=False)
    return p.stdout


def _reap_stale_runs() -> None:
    """Stops the servers of earlier test sessions that died without stopping them."""
    if not RUN.is_dir():
        return
    for d in RUN.glob("test-*"):
        owner = d / "owner"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and _pid_alive(pid):
            continue
        kind, _, port = d.name.removeprefix("test-").partition("-")
        script, var = {"es": (ES_SCRIPT, "ES_RUN_DIR"), "carbon": (CARBON_SCRIPT, "CARBON_RUN_DIR"),
                       "kafka": (KAFKA_SCRIPT, "KAFKA_RUN_DIR")}.get(kind, (None, ""))
        if script is not None and port.isdigit():
            subprocess.run(["bash", str(script), "clean", port], capture_output=True, timeout=120,
                           env={**os.environ, var: str(d)}, cwd=REPO)
        shutil.rmtree(d, ignore_errors=True)


class _Managed:
    """A server run by one of the deploy/dev scripts, in its own run dir, on a fixed port."""

    script: Path
    kind: str
    env_var: str

    def __init__(self, port: int | None = None, external: str | None = None) -> None:
        self.external = external
        self.port = port if port is not None else free_port()
        self.run_dir = RUN / f"test-{self.kind}-{self.port}"
        self._lock = threading.Lock()
        self._used = False       # a run dir of ours to remove at the end

    @property
    def _env(self) -> dict[str, str]:
        return {self.env_var: str(self.run_dir)}

    def _managed_only(self, what: str) -> None:
        if self.external:
            pytest.skip(f"cannot {what} the external {self.kind} server {self.external}")

    def start(self) -> None:
        """Starts it (a no-op when running); keeps the data of an earlier start on this port."""
        self._managed_only("start")
        with self._lock:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "owner").write_text(str(os.getpid()))
            self._used = True
            _script(self.script, "start", str(self.port), env=self._env)

    def stop(self) -> None:
        """Stops it gracefully (SIGTERM, waits); the data stays for start()."""
        self._managed_only("stop")
        with self._lock:
            _script(self.script, "stop", str(self.port), env=self._env)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as in a crash (no flush); start() brings it back on the same data."""
        self._managed_only("kill")
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.stop()   # removes the stale pid file

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """`with server.stopped(): ...` -- down inside the block, up again after it (even on error)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def pid(self) -> int | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        pid = self.pid()
        return pid is not None and _pid_alive(pid)

    def close(self) -> None:
        """End of session: stop and remove the run dir."""
        if self.external or not self._used:
            return
        with self._lock:
            subprocess.run(["bash", str(self.script), "clean", str(self.port)], capture_output=True,
                           timeout=120, env={**os.environ, **self._env}, cwd=REPO)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self._used = False

    def _read_pid(self, name: str) -> int | None:
        try:
            return int((self.run_dir / name).read_text().strip())
        except (OSError, ValueError):
            return None


class ElasticsearchServer(_Managed):
    script = ES_SCRIPT
    kind = "es"
    env_var = "ES_RUN_DIR"

    def __init__(self, port: int | None = None, external: str | None = None) -> None:
        super().__init__(port, external)
        self.url = external.rstrip("/") if external else f"http://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return self._read_pid("es.pid")

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "streams-dev.log"

    def health(self, timeout: float = 5.0) -> dict:
        with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=timeout) as r:
            return json.loads(r.read())


class CarbonServer(_Managed):
    script = CARBON_SCRIPT
    kind = "carbon"
    env_var = "CARBON_RUN_DIR"

    def __init__(self, port: int | None = None, external: str | None = None,
                 data_dir: Path | None = None) -> None:
        host = "127.0.0.1"
        if external:
            host, _, p = external.rpartition(":")
            port = int(p)
        super().__init__(port if port is not None else free_port(), external)
        self.host = host or "127.0.0.1"
        self.udp_port = self.port          # carbon listens for the plaintext protocol on both
        self._data_dir = data_dir

    @property
    def tcp_port(self) -> int:
        return self.port

    @property
    def data_dir(self) -> Path:
        if self.external:
            if self._data_dir is None:
                pytest.skip("STREAMS_TEST_CARBON_DIR (the external carbon's whisper dir) is not set")
            return self._data_dir
        return self.run_dir / "whisper"

    def pid(self) -> int | None:
        return self._read_pid("carbon.pid")

    def whisper_file(self, path: str) -> Path:
        """The whisper file of a metric path such as `streams.test.x`."""
        return self.data_dir.joinpath(*path.split(".")).with_suffix(".wsp")

    def send(self, *lines: str | tuple[str, float, float], udp: bool = False) -> None:
        """Sends plaintext lines (`"path value ts"` or `(path, value, ts)`)."""
        text = "".join((f"{ln[0]} {ln[1]} {int(ln[2])}" if isinstance(ln, tuple) else ln.rstrip("\n")) + "\n"
                       for ln in lines).encode()
        if udp:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(text, (self.host, self.udp_port))
        else:
            with socket.create_connection((self.host, self.port), timeout=10) as s:
                s.sendall(text)

    def fetch(self, path: str, from_: float, until: float | None = None) -> list[tuple[int, float]]:
        """The points stored for a metric path in [from_, until] (epoch seconds), as (time, value),
        empty points left out; [] while carbon has not created the file yet."""
        f = self.whisper_file(path)
        if not f.exists():
            return []
        until = time.time() if until is None else until
        try:
            import whisper  # PyPI `whisper` in the venv
        except ImportError:      # Debian's python3-whisper, which graphite-carbon pulls in
            code = ("import json, sys, whisper; (s, e, st), v = whisper.fetch(sys.argv[1], float(sys.argv[2]),"
                    " float(sys.argv[3])); print(json.dumps([[s, e, st], v]))")
            p = subprocess.run(["/usr/bin/python3", "-c", code, str(f), str(from_), str(until)],
                               capture_output=True, text=True, timeout=30, check=True)
            (start, _end, step), values = json.loads(p.stdout)
        else:
            fetched = whisper.fetch(str(f), from_, until)
            if fetched is None:
                return []
            (start, _end, step), values = fetched
        return [(start + i * step, v) for i, v in enumerate(values) if v is not None]

    def wait_points(self, path: str, from_: float, until: float | None = None, count: int = 1,
                    timeout: float = 15.0) -> list[tuple[int, float]]:
        """fetch() until at least `count` points are there (carbon writes about 1 s after receipt)."""
        deadline = time.monotonic() + timeout
        while True:
            points = self.fetch(path, from_, until)
            if len(points) >= count or time.monotonic() > deadline:
                return points
            time.sleep(0.2)


class KafkaServer(_Managed):
    script = KAFKA_SCRIPT
    kind = "kafka"
    env_var = "KAFKA_RUN_DIR"

    def __init__(self, port: int | None = None, external: str | None = None) -> None:
        if external:
            port = int(external.rpartition(":")[2])
        super().__init__(port, external)
        self.bootstrap = external or f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return self._read_pid("kafka.pid")

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "server.log"

    def topics(self, *args: str, timeout: float = 120.0) -> str:
        """Runs kafka-topics (org.apache.kafka.tools.TopicCommand, through `deploy/dev/kafka topics`)
        against this broker, e.g. `topics("--create", "--topic", "raw", "--partitions", "2")`;
        returns its output, fails the test with it on an error."""
        host, _, port = self.bootstrap.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            pytest.skip(f"kafka-topics only runs against a local broker, not {self.bootstrap}")
        p = subprocess.run(["bash", str(self.script), "topics", port, *args], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, **self._env}, cwd=REPO)
        if p.returncode != 0:
            pytest.fail(f"kafka-topics {' '.join(args)} failed (exit {p.returncode}):\n{p.stderr}{p.stdout}",
                        pytrace=False)
        return p.stdout


def _kafka_missing_tools() -> str | None:
    """Why the broker cannot be installed here (no jars cached, and no Java >= 17 or no mvn), or None."""
    if os.environ.get("STREAMS_TEST_KAFKA"):
        return None
    if any(REPO.glob(".cache/kafka-*/.complete")):
        java_ok = subprocess.run(["bash", str(KAFKA_SCRIPT), "java"], capture_output=True, timeout=60).returncode == 0
        return None if java_ok else "no Java >= 17 (deploy/dev/kafka java)"
    missing = []
    if subprocess.run(["bash", str(KAFKA_SCRIPT), "java"], capture_output=True, timeout=60).returncode != 0:
        missing.append("Java >= 17")
    if shutil.which("mvn") is None:
        missing.append("mvn (Debian: maven)")
    return f"no {' and no '.join(missing)} to install the Kafka broker" if missing else None


# One server of each kind per session, whichever module asks first; stopped at the session's end.
_servers: dict[str, _Managed] = {}
_servers_lock = threading.Lock()
_prestart: dict[str, threading.Thread] = {}
_prestart_error: dict[str, BaseException] = {}


def _new_server(kind: str) -> _Managed:
    if kind == "es":
        return ElasticsearchServer(external=os.environ.get("STREAMS_TEST_ES_URL") or None)
    if kind == "kafka":
        return KafkaServer(external=os.environ.get("STREAMS_TEST_KAFKA") or None)
    ext = os.environ.get("STREAMS_TEST_CARBON") or None
    data = os.environ.get("STREAMS_TEST_CARBON_DIR")
    return CarbonServer(external=ext, data_dir=Path(data) if data else None)


def _get_server(kind: str, config: pytest.Config) -> _Managed:
    thread = _prestart.pop(kind, None)
    if thread is not None:
        thread.join()
        err = _prestart_error.pop(kind, None)
        if err is not None:
            raise err
    return _ensure_server(kind, config)


def _ensure_server(kind: str, config: pytest.Config) -> _Managed:
    with _servers_lock:
        if not _servers:
            _reap_stale_runs()      # before this session's first run dir exists
        if kind not in _servers:
            _servers[kind] = _new_server(kind)
            config.add_cleanup(_servers[kind].close)
        server = _servers[kind]
    if server.external is None and not server.is_running():
        server.start()
    return server


@pytest.hookimpl(trylast=True)     # after -k/-m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """When this module is a plugin: starts Elasticsearch in the background as soon as a collected
    test needs it, so that its ~15 s start overlaps the tests that run before."""
    wanted = {n for item in items for n in getattr(item, "fixturenames", ())}
    if not wanted & {"es_server", "elasticsearch_url"} or "es" in _servers or "es" in _prestart:
        return

    def run() -> None:
        try:
            _ensure_server("es", config)
        except BaseException as e:  # pytest.fail's exception too: raised again in the fixture
            _prestart_error["es"] = e

    def finish() -> None:   # a session ending before any test took the server: no orphan node
        t = _prestart.pop("es", None)
        if t is not None:
            t.join(START_TIMEOUT)
            _prestart_error.pop("es", None)
        if "es" in _servers:
            _servers["es"].close()

    thread = threading.Thread(target=run, name="prestart-elasticsearch", daemon=True)
    _prestart["es"] = thread
    config.add_cleanup(finish)
    thread.start()


@pytest.fixture(scope="session")
def es_server(pytestconfig: pytest.Config) -> ElasticsearchServer:
    server = _get_server("es", pytestconfig)
    assert isinstance(server, ElasticsearchServer)
    return server


@pytest.fixture(scope="session")
def elasticsearch_url(es_server: ElasticsearchServer) -> str:
    return es_server.url


@pytest.fixture(scope="session")
def carbon(pytestconfig: pytest.Config) -> CarbonServer:
    server = _get_server("carbon", pytestconfig)
    assert isinstance(server, CarbonServer)
    return server


@pytest.fixture(scope="session")
def kafka(pytestconfig: pytest.Config) -> KafkaServer:
    """A Kafka broker for the session. Skipped (with the reason) only when Java or mvn is missing
    and CI is not set; in CI, or when they are there, a broker that does not start fails."""
    why = _kafka_missing_tools()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    server = _get_server("kafka", pytestconfig)
    assert isinstance(server, KafkaServer)
    return server
