"""Benchmark corpora built from the repository's own data (deterministic)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def mixed_lines() -> list[str]:
    """One copy of every line kind we ship: sample logs plus the corpus lines
    (fail2ban, postfix, sshd and other auth logs, Wazuh alerts)."""
    lines: list[str] = []
    for f in sorted((ROOT / "samples" / "logs").glob("*")):
        if f.suffix in (".log", ".json"):
            lines += [x for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    for f in sorted((DATA / "fail2ban-samples" / "logs").iterdir()):
        lines += [x for x in f.read_text(encoding="utf-8", errors="replace").splitlines()
                  if x.strip() and not x.startswith("#")]
    for sub in ("fail2ban-repo", "unlicense"):
        lines += [json.loads(x)["raw"].split("\n")[0]
                  for x in (DATA / "fail2ban-ownlog" / sub / "lines.jsonl").read_text().splitlines() if x.strip()]
    for f in sorted((DATA / "postfix-grok-patterns" / "cases").glob("*.yaml")):
        c = yaml.safe_load(f.read_text())
        m = re.search(r"%\{POSTFIX_(\w+)\}", c["pattern"])
        comp = {"TRIVIAL_REWRITE": "trivial-rewrite", "SCRIPT": "postfix-script"}.get(m.group(1), m.group(1).lower())
        lines.append(f"Oct 26 18:13:50 mail postfix/{comp}[1234]: {c['data']}")
    for x in (DATA / "wazuh" / "alerts" / "alerts.jsonl").read_text().splitlines():
        if x.strip():
            lines.append(json.loads(x)["raw"].replace("\n", "\\n"))
    return lines


def scaled(lines: list[str], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = [lines[i % len(lines)] for i in range(n)]
    rng.shuffle(out)
    return out


_LAST_TOKEN = re.compile(r"(\S+)\s*$")


def near_miss(lines: list[str]) -> list[str]:
    """Lines that almost match: the same text with its last token made wrong, so a
    pattern runs to the end before failing (where backtracking would explode)."""
    out = []
    for line in lines:
        if line.startswith("{"):
            out.append(line[:-1])  # truncated JSON
            continue
        out.append(_LAST_TOKEN.sub(lambda m: "#" + m.group(1)[::-1] + "%%", line))
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


if __name__ == "__main__":
    # `python bench/corpus.py N PATH`: write N mixed lines (a child process, so that the
    # caller never holds them: a forked child would inherit its memory high-water mark)
    import sys
    write(Path(sys.argv[2]), scaled(mixed_lines(), int(sys.argv[1])))
