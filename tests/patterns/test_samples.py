"""Every sample case parses to its expected fields; every top-level pattern has a case."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from streams import PATTERNS_DIR, SAMPLES_DIR
from streams.parse.dispatch import LineParser

from ..corpus import MISSING as _MISSING
from ..corpus import get as _get

CASES = sorted((SAMPLES_DIR / "cases").rglob("*.yaml"))


def get(doc, path):
    return _get(doc, path, _MISSING)


@cache
def line_parser(year, timezone) -> LineParser:
    return LineParser(year=year, timezone=timezone)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_case(case: dict):
    p = line_parser(case.get("year"), case.get("timezone") or "UTC")
    ev = p.parse(case["line"])
    return ev, ev.to_doc()


@pytest.mark.parametrize("path", CASES, ids=[str(c.relative_to(SAMPLES_DIR / "cases")) for c in CASES])
def test_case(path):
    case = load(path)
    ev, doc = run_case(case)
    assert ev.meta.get("rule") == case.get("rule"), f"matched rule {ev.meta.get('rule')!r}"
    for key, want in (case.get("expected") or {}).items():
        got = get(doc, key)
        assert got is not _MISSING, f"{key} missing in {doc}"
        if isinstance(got, tuple):
            got = list(got)
        assert got == want, f"{key}: want {want!r}, got {got!r}"
    for key in case.get("absent") or ():
        assert get(doc, key) is _MISSING, f"{key} should be absent, got {get(doc, key)!r}"
    # one host field: a line that names its host names it as ECS host.name too; a Wazuh
    # alert without one is about its agent
    named = get(doc, "host.hostname")
    if named is _MISSING and get(doc, "agent.name") is not _MISSING:
        named = get(doc, "agent.name")
    assert get(doc, "host.name") == named, "host.name is not the host the line names"


def test_every_rule_has_a_case():
    covered = {load(c).get("rule") for c in CASES}
    parser = LineParser()
    rules = {rule for _, rule in parser.native.rules()}
    missing = sorted(rules - covered)
    assert not missing, f"top-level patterns without a sample case in samples/cases: {missing}"
    assert PATTERNS_DIR.is_dir()
