"""Wazuh alerts: the corpus contract in-process (rule.id, rule.level, agent.name,
agent.id, manager.name, source.ip; malformed alerts kept and tagged) and the layout rules
(Wazuh's fields at the top level, never overwritten by ours)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from streams.parse.dispatch import LineParser

from ..corpus import get

DATA = Path(__file__).resolve().parent.parent / "data" / "wazuh" / "alerts" / "alerts.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]




@pytest.fixture(scope="module")
def parser():
    return LineParser(year=2024)


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_alert_contract(parser, row):
    line = row["raw"].replace("\n", "\\n")  # as the evaluator feeds it: one line
    doc = parser.parse(line).to_doc()
    assert get(doc, "event.dataset") == "wazuh.alerts"
    alert = row["expected"].get("alert")
    if not isinstance(alert, dict):
        assert "_jsonparsefailure" in doc["tags"]
        return
    for path in ("rule.id", "rule.level", "agent.name", "agent.id", "manager.name"):
        want = get(alert, path)
        if want is not None:
            assert str(get(doc, path)) == str(want), path
    srcip = get(alert, "data.srcip")
    if srcip:
        assert ipaddress.ip_address(get(doc, "source.ip")) == ipaddress.ip_address(srcip)
    # Wazuh's own top-level fields stay as Wazuh wrote them
    for key in ("id", "timestamp", "location", "full_log", "decoder", "GeoLocation"):
        if key in alert:
            assert doc[key] == alert[key], key
    assert get(doc, "event.severity") == alert["rule"]["level"]
    assert "tags" not in doc


def test_raw_newlines_are_recovered(parser):
    row = next(r for r in ROWS if any("unescaped" in n for n in r["notes"]))
    ev = parser.parse(row["raw"])  # the newlines left raw inside the JSON string
    doc = ev.to_doc()
    assert "_wazuh_json_recovered" in doc["tags"]
    assert get(doc, "rule.id") == "750"
    assert "\nMode: scheduled" in doc["full_log"]


def test_timestamp_from_alert_not_syslog_header(parser):
    row = next(r for r in ROWS if r["id"] == "datadog-rule-2904")
    doc = parser.parse(row["raw"]).to_doc()
    assert doc["@timestamp"] == "2024-09-19T02:55:04.210Z"  # 08:25:04.210+0530
    assert doc["timestamp"] == "2024-09-19T08:25:04.210+0530"
    assert get(doc, "log.syslog.priority") == 132
    assert get(doc, "host.hostname") == "ub20"


def test_alert_fields_win_over_ours(parser):
    line = ('{"timestamp":"2024-01-01T00:00:00.000+0000","rule":{"level":3,"id":"1"},"agent":{"id":"001","name":"a"},'
            '"manager":{"name":"m"},"id":"1.2","message":"wazuh text","source":{"ip":"not-ours"},'
            '"data":{"srcip":"192.0.2.1","dstuser":"bob"},"location":"x"}')
    doc = parser.parse(line).to_doc()
    assert doc["message"] == "wazuh text"
    assert doc["source"] == {"ip": "not-ours"}
    assert doc["id"] == "1.2" and doc["location"] == "x"
    assert get(doc, "user.name") == "bob"
    assert doc["event"]["original"] == line


def test_truncated_alert_is_kept_and_identified(parser):
    line = '{"timestamp":"2024-01-01T00:00:00.000+0000","rule":{"level":5,"description":"x","id":"5503","groups":["pam"],'
    doc = parser.parse(line).to_doc()
    assert doc["tags"] == ["_jsonparsefailure", "_wazuh_partial"]
    assert get(doc, "rule.id") == "5503" and get(doc, "event.severity") == 5
    assert doc["event"]["original"] == line


def test_plain_json_is_not_wazuh(parser):
    doc = parser.parse('{"a": 1}').to_doc()
    assert get(doc, "event.dataset") == "json" and doc["json"] == {"a": 1}


def test_csyslogd_default_format(parser):
    doc = parser.parse("<132>Sep 18 16:05:21 wazuh-mgr ossec: Alert Level: 10; Rule: 5712 - sshd: brute force; "
                       "Location: (web01) 10.0.0.5->/var/log/secure; srcip: 172.17.1.1; user: paco; "
                       "May 11 12:29:18 web01 sshd[17584]: Invalid user paco from 172.17.1.1 port 56404").to_doc()
    assert get(doc, "rule.id") == "5712" and get(doc, "rule.level") == 10
    assert get(doc, "rule.description") == "sshd: brute force"
    assert get(doc, "agent.name") == "web01" and get(doc, "agent.ip") == "10.0.0.5"
    assert get(doc, "manager.name") == "wazuh-mgr"
    assert doc["location"] == "/var/log/secure"
    assert get(doc, "source.ip") == "172.17.1.1" and get(doc, "user.name") == "paco"
    assert doc["full_log"].startswith("May 11 12:29:18 web01 sshd")
    assert "wazuh" not in doc


def test_old_csyslogd_json_format(parser):
    doc = parser.parse('<132>Sep 18 16:05:21 mgr ossec: {"crit":5,"id":5503,"component":"(web01) any->/var/log/secure",'
                       '"classification":"pam,syslog,","description":"PAM: User login failed.","src_ip":"1.2.3.4"}').to_doc()
    assert get(doc, "rule.id") == "5503" and get(doc, "rule.level") == 5
    assert get(doc, "rule.groups") == ["pam", "syslog"]
    assert get(doc, "agent.name") == "web01" and doc["location"] == "/var/log/secure"
    assert get(doc, "source.ip") == "1.2.3.4"


def test_an_alerts_json_line_is_about_its_agent():
    """alerts.json names no host: host.name is the agent's, so the metrics go per agent, as
    they did before every document got a host.name (and not under the manager's name)."""
    from streams.enrich.metrics import DerivedMetrics
    from streams.parse.dispatch import LineParser

    line = ('{"timestamp":"2026-11-24T00:05:02.563+0000","rule":{"level":5,"id":"5710","groups":["sshd"]},'
            '"agent":{"id":"003","name":"web3"},"manager":{"name":"wazuh-manager"},"location":"/var/log/auth.log"}')
    doc = LineParser().parse(line).to_doc()
    assert doc["host"] == {"name": "web3"}
    m = DerivedMetrics()
    m.observe(doc)
    assert any(".web3." in path for path, _, _ in m.lines())
