"""rsyslog's own parser test cases (tests/data/syslog/rsyslog-parse1) and the syslog
header of CrowdSec's hub tests: the header split agrees with rsyslog/CrowdSec."""

from __future__ import annotations

import json

import pytest

from streams.parse.dispatch import LineParser

from .test_samples import _MISSING, get

# Where we part from rsyslog on purpose:
DEVIATIONS = {
    # rsyslog invents PRI 13 (user.notice) for a line without PRI; a file line has no
    # priority, so we set none rather than a made-up one.
    ("Feb 18 16:01:59 serverX -- MARK --", "log.syslog.priority"),
    ("Feb 18 16:01:59 serverX -- MARK --", "log.syslog.facility.name"),
    ("Feb 18 16:01:59 serverX -- MARK --", "log.syslog.severity.name"),
    # `~H` is rsyslog's test notation for "the receiving host's name": a parser of a
    # line on its own has no receiving host.
    ("<14>Aug 30 23:00:05 ", "host.hostname"),
    ("<14>Aug 30 23:00:05", "host.hostname"),
    ("<14>2010-08-30T23:00:05Z ", "host.hostname"),
}
# rsyslog renders control characters as #011 in programname/msg; we keep the TAB, and
# the tag ends at the first whitespace (a TAB included).
_RSYSLOG_ESCAPED = "#011"


def rsyslog_cases():
    rows = [json.loads(x) for x in (open_data("syslog/rsyslog-parse1/cases.jsonl")) if x.strip()]
    return [r for r in rows if r.get("expected")]


def open_data(rel):
    from pathlib import Path
    return (Path(__file__).parent.parent / "data" / rel).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def parser_2008():
    return LineParser(year=2008)


@pytest.mark.parametrize("case", rsyslog_cases(), ids=lambda r: r["input"][:40])
def test_rsyslog_parse1(case, parser_2008):
    doc = parser_2008.parse(case["input"]).to_doc()
    e = case["expected"]
    checks = {"log.syslog.priority": e["pri"], "log.syslog.facility.name": e["facility"],
              "log.syslog.severity.name": e["severity"], "host.hostname": e["hostname"],
              "process.name": e["programname"], "message": e["msg"]}
    for path, want in checks.items():
        if want in (None, "") or (case["input"], path) in DEVIATIONS or _RSYSLOG_ESCAPED in want:
            continue
        got = get(doc, path)
        assert got is not _MISSING, f"{path} missing"
        assert str(got).strip().lower() == str(want).strip().lower(), path
    assert doc["event"]["original"] == case["input"]


def crowdsec_cases():
    return [json.loads(x) for x in open_data("crowdsec-hub/cases.jsonl") if x.strip()]


@pytest.fixture(scope="module")
def parser_2023():
    return LineParser(year=2023)


@pytest.mark.parametrize("case", crowdsec_cases(), ids=lambda r: f"{r['test']}-{r['line_index']}")
def test_crowdsec_syslog_header(case, parser_2023):
    raw = case["expected"].get("s00-raw/crowdsecurity/syslog-logs") or {}
    if not raw.get("Success"):
        pytest.skip("not a syslog line for CrowdSec either")
    doc = parser_2023.parse(case["raw"]).to_doc()
    parsed, meta = raw.get("Parsed") or {}, raw.get("Meta") or {}
    assert str(get(doc, "process.name")) == parsed["program"]
    if parsed.get("pid"):
        assert str(get(doc, "process.pid")) == parsed["pid"]
    if meta.get("machine"):
        assert get(doc, "host.hostname") == meta["machine"]
    assert doc["message"] == parsed["message"]
