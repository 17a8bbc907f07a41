"""Metrics derived from documents: what is counted, under which path, and the live flush
that leaves the bucket still filling alone."""

from __future__ import annotations

from streams.enrich.metrics import DerivedMetrics

T = "2026-11-24T00:00:05.000Z"  # epoch 1795478405


def paths(points):
    return {p: v for p, v, _ in points}


def test_fail2ban_postfix_and_wazuh_counts():
    m = DerivedMetrics(60)
    m.observe({"@timestamp": T, "host": {"name": "mx1"}, "event": {"dataset": "fail2ban.log", "action": "ban"},
               "fail2ban": {"jail": "sshd"}, "source": {"geo": {"country_iso_code": "GB"}}})
    for status in ("sent", "sent", "deferred"):
        m.observe({"@timestamp": T, "host": {"name": "mx1"}, "event": {"dataset": "postfix.log"},
                   "postfix": {"status": status}})
    m.observe({"@timestamp": T, "host": {"name": "mx1"}, "event": {"dataset": "postfix.log", "outcome": "failure"},
               "postfix": {"action": "reject", "status_code": 550}})
    m.observe({"@timestamp": T, "host": {"name": "web.example.org"}, "agent": {"name": "web.example.org"},
               "event": {"dataset": "wazuh.alerts"}, "rule": {"level": 10, "groups": ["syslog", "sshd"]}})
    got = paths(m.lines())
    assert got["streams.mx1.fail2ban_log.jail.sshd.ban"] == 1
    assert got["streams.mx1.fail2ban_log.country.GB.ban"] == 1
    assert got["streams.mx1.postfix_log.delivery.sent"] == 2
    assert got["streams.mx1.postfix_log.delivery.deferred"] == 1
    assert got["streams.mx1.postfix_log.reject.550"] == 1
    assert got["streams.mx1.postfix_log.failures"] == 1
    # a Wazuh alert's host is its agent (the parser says so); dots in a host name never make path levels
    assert got["streams.web_example_org.wazuh_alerts.level.10"] == 1
    assert got["streams.web_example_org.wazuh_alerts.group.sshd"] == 1
    assert {ts for _, _, ts in m.lines()} == {1795478400}


def test_points_and_arrival_buckets_flush_only_ended_intervals():
    m = DerivedMetrics(10)
    doc = {"host": {"name": "h"}, "event": {"dataset": "sshd.log"}}
    m.observe(doc, 100)
    m.observe(doc, 110)
    m.point("web1", "riemann", "cpu load", 0.5, 105.7)
    first = m.take(110)  # the interval [110, 120) is still filling
    assert [(p, v, ts) for p, v, ts in first] == [("streams.h.sshd_log.events", 1, 100),
                                                   ("streams.web1.riemann.cpu_load", 0.5, 105)]
    assert m.take(110) == []
    assert m.take() == [("streams.h.sshd_log.events", 1, 110)]
    assert len(m) == 0


def test_undated_document_is_not_counted_by_event_time():
    m = DerivedMetrics(60)
    m.observe({"event": {"dataset": "x"}})
    m.observe({"@timestamp": "not a time", "event": {"dataset": "x"}})
    assert list(m.lines()) == []
