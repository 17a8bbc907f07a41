"""A Python Riemann client into `streams run`: bernhard (PyPI), in its own virtualenv with
`protobuf<4` (its generated code needs it) and `setuptools<70` (it imports pkg_resources).

The virtualenv lives in `.cache/riemann-py-venv` at the repository root (gitignored) and
is reused once it works. Creating it needs the network: without it the test is skipped,
or fails when the environment variable CI is set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from . import TIMEOUT, LiveServer, make_config, read_docs, wait_for

VENV = Path(__file__).resolve().parents[2] / ".cache" / "riemann-py-venv"
REQUIREMENTS = ["protobuf<4", "setuptools<70", "bernhard==0.2.6"]
READY = VENV / ".ready"          # written once the packages are installed and import

T1 = 1_700_000_000               # 2023-11-14T22:13:20Z, an explicit event time
# (transport, event as bernhard takes it, expected document minus @timestamp and event)
SENDS = [
    ("tcp", {"service": "py tcp float", "host": "web1", "state": "ok", "metric_f": 1.5, "ttl": 60.0,
             "description": "disk almost full", "tags": ["web", "prod"],
             "attributes": {"rack": "r1", "env": "test"}, "time": T1},
     {"host": {"name": "web1"}, "service": {"state": "ok"}, "tags": ["web", "prod"],
      "riemann": {"metric": 1.5, "ttl": 60.0, "description": "disk almost full",
                  "attributes": {"rack": "r1", "env": "test"}}}),
    ("tcp", {"service": "py tcp double", "host": "web2", "metric_d": -0.1, "state": "critical"},
     {"host": {"name": "web2"}, "service": {"state": "critical"}, "riemann": {"metric": -0.1}}),
    ("tcp", {"service": "py tcp sint64", "host": "web2", "metric_sint64": -(2 ** 40), "tags": ["big"]},
     {"host": {"name": "web2"}, "tags": ["big"], "riemann": {"metric": -(2 ** 40)}}),
    ("tcp", {"service": "py tcp no metric", "state": "expired", "description": "gone"},
     {"service": {"state": "expired"}, "riemann": {"description": "gone"}}),
    ("udp", {"service": "py udp float", "host": "web3", "metric_f": 0.25, "ttl": 2.5, "tags": ["udp"],
             "attributes": {"k": "v"}, "time": T1 + 1},
     {"host": {"name": "web3"}, "tags": ["udp"],
      "riemann": {"metric": 0.25, "ttl": 2.5, "attributes": {"k": "v"}}}),
    ("udp", {"service": "py udp sint64", "host": "web3", "metric_sint64": 7},
     {"host": {"name": "web3"}, "riemann": {"metric": 7}}),
]
BATCH = 50                       # one more TCP message carrying this many events

SENDER = textwrap.dedent("""
    import json, sys
    import bernhard
    spec = json.load(sys.stdin)
    tcp = bernhard.Client(host="127.0.0.1", port=spec["tcp"])
    udp = bernhard.Client(host="127.0.0.1", port=spec["udp"], transport=bernhard.UDPTransport)
    oks = [(tcp if t == "tcp" else udp).send(ev) for t, ev in spec["events"]]
    oks.append(tcp.send(*spec["batch"]))
    tcp.disconnect()
    udp.disconnect()
    print(json.dumps([t == "udp" or ok for (t, _), ok in zip(spec["events"], oks)] + [oks[-1]]))
""")


def unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI is set, so this is a failure", pytrace=False)
    pytest.skip(why)


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def bernhard_python() -> Path:
    """The python of the bernhard virtualenv, created (or repaired) on first use."""
    python = VENV / "bin" / "python"
    if READY.exists() and python.exists():
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    r = run([sys.executable, "-m", "venv", str(VENV)])
    if r.returncode != 0:
        unavailable(f"cannot create a virtualenv for bernhard: {r.stderr.strip()[-500:]}")
    r = run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *REQUIREMENTS])
    if r.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        unavailable(f"cannot install {' '.join(REQUIREMENTS)} (no network?): {r.stderr.strip()[-500:]}")
    r = run([str(python), "-c", "import bernhard"], timeout=TIMEOUT)
    assert r.returncode == 0, f"bernhard does not import in {VENV}:\n{r.stderr}"
    READY.write_text(" ".join(REQUIREMENTS) + "\n")
    return python


def test_bernhard_tcp_and_udp(tmp_path, bernhard_python):
    batch = [{"service": f"py batch {i}", "host": "batcher", "metric_sint64": i} for i in range(BATCH)]
    with LiveServer(make_config(tmp_path / "out")) as server:
        spec = {"tcp": server.port("riemann_tcp"), "udp": server.port("riemann_udp"),
                "events": [[t, ev] for t, ev, _ in SENDS], "batch": batch}
        r = subprocess.run([str(bernhard_python), "-c", SENDER], input=json.dumps(spec),
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, f"bernhard sender failed:\n{r.stdout}{r.stderr}"
        assert json.loads(r.stdout) == [True] * (len(SENDS) + 1), f"ok replies: {r.stdout}"
        wait_for(lambda: len(server.docs()) >= len(SENDS) + BATCH, what="the events sent by bernhard")
        counters = server.metrics()["listeners"]
    now = dt.datetime.now(dt.UTC)
    docs = [d for _, d in read_docs(tmp_path / "out")]
    assert Counter(d["service"]["name"] for d in docs) == Counter(
        [ev["service"] for _, ev, _ in SENDS] + [ev["service"] for ev in batch])
    got = {d["service"]["name"]: d for d in docs}
    for _, ev, want in SENDS:
        d = dict(got[ev["service"]])
        ts = dt.datetime.fromisoformat(d.pop("@timestamp").replace("Z", "+00:00"))
        if "time" in ev:
            assert ts == dt.datetime.fromtimestamp(ev["time"], dt.UTC), (ev, ts)
        else:
            assert abs((now - ts).total_seconds()) < 120, "stamped with the receive time"
        assert d.pop("event") == {"dataset": "riemann"}
        assert d == {**want, "service": {"name": ev["service"], **want.get("service", {})}}, ev
    for i in range(BATCH):
        d = got[f"py batch {i}"]
        assert d["host"] == {"name": "batcher"} and d["riemann"] == {"metric": i}
    n_tcp = sum(t == "tcp" for t, _, _ in SENDS)
    assert counters["riemann_tcp"]["received"] == n_tcp + BATCH, counters["riemann_tcp"]
    assert counters["riemann_udp"]["received"] == len(SENDS) - n_tcp, counters["riemann_udp"]
