"""`pip wheel .` builds the native core (maturin) into an abi3 wheel that carries what the
package reads at run time (the grok patterns, the Elasticsearch templates), and that wheel
installs and runs where no Rust toolchain is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "streams"
LINE = "Nov 24 00:05:02 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 44633 ssh2\n"


def test_the_wheel_carries_the_native_core_and_the_data_and_runs_without_rust(tmp_path):
    # built from a copy: the build writes into the tree it builds (native/target)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "out", "target", "*.egg-info", "__pycache__", ".*_cache", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=900)
    (wheel,) = tmp_path.glob("streams-*.whl")
    assert "-abi3-" in wheel.name   # one wheel for every CPython >= 3.11
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p for d in ("patterns", "mappings") for p in (PACKAGE / d).rglob("*")
            if p.is_file() and p.suffix in (".grok", ".yaml", ".json")]
    assert len(data) > 30
    missing = [p.relative_to(ROOT).as_posix() for p in [*data, *PACKAGE.rglob("*.py")]
               if p.relative_to(ROOT).as_posix() not in names]
    assert not missing, missing
    assert [n for n in names if n.startswith("streams/_native") and n.endswith(".so")]

    # installed alone (its dependencies from this environment), run with no cargo on PATH
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    assert shutil.which("cargo", path=env["PATH"]) is None
    (tmp_path / "in.log").write_text(LINE)
    r = subprocess.run([sys.executable, "-c", "import streams, streams._native as n; print(streams.__file__)"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(str(target)), r.stderr
    r = subprocess.run([sys.executable, "-m", "streams.cli", "parse", "--year", "2026", "in.log"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["event"]["outcome"] == "failure" and doc["source"]["ip"] == "81.2.69.142"
    assert os.path.exists(target / "streams" / "patterns" / "sshd.grok")
