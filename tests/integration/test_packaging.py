"""A wheel carries the data the package reads at run time: the grok patterns and the
Elasticsearch templates live at the top of the source tree, not inside `streams/`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_patterns_and_mappings(tmp_path):
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "out", "*.egg-info", "__pycache__", ".*_cache", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("streams-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [p for d in ("patterns", "mappings") for p in (ROOT / d).rglob("*")
              if p.is_file() and p.suffix in (".grok", ".yaml", ".json")]
    assert len(wanted) > 30
    missing = [str(p.relative_to(ROOT)) for p in wanted if f"streams/{p.relative_to(ROOT).as_posix()}" not in names]
    assert not missing, missing
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "streams").rglob("*.py")]
    assert [m for m in modules if m not in names] == []  # pyproject.toml lists the packages by hand
