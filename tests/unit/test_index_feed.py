"""What enters the index: Riemann events as they are, and one entry per monitored log
source and host (Fail2ban banned count per jail, Postfix active queue)."""

from __future__ import annotations

import pytest

from streams.clock import ManualClock
from streams.event import Event
from streams.index.feed import IndexFeed
from streams.index.ttl import DEFAULT_TTL, TTLIndex


def f2b(action, ip, jail="sshd", host="mx1"):
    return {"host": {"name": host}, "event": {"dataset": "fail2ban.log", "action": action},
            "fail2ban": {"jail": jail}, "source": {"ip": ip}}


def test_riemann_events_enter_as_they_are():
    ev = Event(host="web1", service="cpu", metric=0.5)
    assert IndexFeed().derive(ev, {}, 10.0) == [ev]
    assert IndexFeed(["fail2ban"]).derive(ev, {}, 10.0) == []


def test_fail2ban_banned_count_per_jail():
    feed = IndexFeed()
    log = Event()
    for action, ip in [("ban", "192.0.2.1"), ("ban", "192.0.2.2"), ("already_banned", "192.0.2.2"),
                       ("restore_ban", "192.0.2.3"), ("unban", "192.0.2.1"), ("found", "192.0.2.9")]:
        (entry,) = feed.derive(log, f2b(action, ip), 50.0)
    assert (entry.host, entry.service, entry.metric, entry.state, entry.time) == ("mx1", "fail2ban sshd", 2.0, "ok", 50.0)
    (other,) = feed.derive(log, f2b("ban", "192.0.2.1", jail="postfix"), 51.0)
    assert other.service == "fail2ban postfix" and other.metric == 1.0


def test_postfix_queue_per_host():
    feed = IndexFeed(["postfix", "logs"])
    host = {"name": "192.0.2.7"}   # a line that named no host: the pipeline gave it its sender
    active = {"event": {"dataset": "postfix.log", "action": "queue_active"}, "postfix": {"queueid": "A1"}}
    removed = {"event": {"dataset": "postfix.log"}, "postfix": {"queueid": "A1", "message": "removed"}}
    entries = feed.derive(Event(), {**active, "host": host}, 1.0)
    assert [(e.host, e.service, e.metric) for e in entries] == [("192.0.2.7", "postfix queue", 1.0),
                                                               ("192.0.2.7", "log postfix.log", None)]
    assert feed.derive(Event(), {**removed, "host": host}, 2.0)[0].metric == 0.0
    assert feed.derive(Event(), active, 3.0) == []  # no host at all: nothing to key on


def test_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="unknown index sources"):
        IndexFeed(["riemann", "kafka"])


def test_fail2ban_stop_repeals_the_bans():
    """Fail2ban >= 0.11 logs "Repeal Ban <ip>" (not "Unban") for each ban it lifts when a
    jail stops; at the next start only the bans still running come back ("Restore Ban")."""
    feed = IndexFeed()
    for action, ip in [("ban", "192.0.2.1"), ("ban", "192.0.2.2"),
                       ("repeal_ban", "192.0.2.1"), ("repeal_ban", "192.0.2.2"),  # stop
                       ("restore_ban", "192.0.2.2")]:                              # start
        (entry,) = feed.derive(Event(), f2b(action, ip), 60.0)
    assert entry.metric == 1.0 and entry.description == "1 banned"


def test_postfix_queue_forgets_messages_deleted_with_postsuper():
    """`postsuper -d` removes queue files itself (qmgr logs no "removed" for them)."""
    feed = IndexFeed(["postfix"])
    active = {"host": {"name": "mx1"}, "event": {"dataset": "postfix.log", "action": "queue_active"},
              "postfix": {"queueid": "A1"}}
    deleted = {"host": {"name": "mx1"}, "event": {"dataset": "postfix.log", "action": "removed"},
               "postfix": {"queueid": "A1", "postsuper_action": "removed"}}
    assert feed.derive(Event(), active, 1.0)[0].metric == 1.0
    assert feed.derive(Event(), deleted, 2.0)[0].metric == 0.0


# -- a count is a state: its entry lives while the state holds ---------------------------


class Indexed:
    """The feed into a real TTL index on a manual clock, as IndexService wires them."""

    def __init__(self, feed: IndexFeed, **index_kw) -> None:
        self.clock = ManualClock(1_000.0)
        self.index = TTLIndex(self.clock, **index_kw)
        self.feed = feed

    def line(self, doc: dict) -> None:
        self.index.insert_many(self.feed.derive(Event(), doc, self.clock.now()))

    def after(self, seconds: float) -> list[tuple[str, str]]:
        """What the reaper expires once `seconds` have passed."""
        self.clock.advance(seconds)
        return [(e.host, e.service) for e in self.index.expire()]

    def metric(self, host: str, service: str) -> float | None:
        entry = self.index.get(host, service)
        return None if entry is None else entry.metric


def test_fail2ban_entry_does_not_expire_while_bans_are_held():
    ix = Indexed(IndexFeed())
    ix.line(f2b("ban", "192.0.2.1"))
    assert ix.after(DEFAULT_TTL + 1) == [] and ix.after(7 * 86400) == []  # Fail2ban is silent while it bans
    assert ix.metric("mx1", "fail2ban sshd") == 1.0
    ix.line(f2b("unban", "192.0.2.1"))
    assert ix.metric("mx1", "fail2ban sshd") == 0.0
    assert ix.after(DEFAULT_TTL + 1) == [("mx1", "fail2ban sshd")]  # nothing held: the default TTL again


def test_a_silent_host_with_bans_still_expires_after_the_held_ttl():
    ix = Indexed(IndexFeed(held_ttl=86400.0), max_ttl=86400.0)
    ix.line(f2b("ban", "192.0.2.1"))
    assert ix.after(86400) == []
    assert ix.after(1) == [("mx1", "fail2ban sshd")]


def test_jail_stopped_and_fail2ban_exit_lift_the_bans():
    ix = Indexed(IndexFeed())
    for jail in ("sshd", "postfix", "recidive"):
        ix.line(f2b("ban", "192.0.2.1", jail=jail))
    ix.line(f2b("ban", "192.0.2.1", host="mx2"))
    stopped = {"host": {"name": "mx1"}, "event": {"dataset": "fail2ban.log", "action": "jail_stopped"},
               "fail2ban": {"jail": "sshd"}}
    ix.line(stopped)  # Fail2ban < 0.11 logs no Unban for the bans a stop lifts
    assert ix.metric("mx1", "fail2ban sshd") == 0.0 and ix.metric("mx1", "fail2ban postfix") == 1.0
    ix.line({"host": {"name": "mx1"}, "event": {"dataset": "fail2ban.log", "action": "server_stopped"}})
    assert [ix.metric("mx1", f"fail2ban {j}") for j in ("sshd", "postfix", "recidive")] == [0.0, 0.0, 0.0]
    assert ix.metric("mx2", "fail2ban sshd") == 1.0  # another host's Fail2ban still runs
    assert sorted(ix.after(DEFAULT_TTL + 1)) == [("mx1", "fail2ban postfix"), ("mx1", "fail2ban recidive"),
                                                 ("mx1", "fail2ban sshd")]
    ix.line(f2b("restore_ban", "192.0.2.1"))  # the next start restores what its database kept
    assert ix.metric("mx1", "fail2ban sshd") == 1.0


def test_postfix_queue_entry_does_not_expire_while_messages_wait():
    ix = Indexed(IndexFeed(["postfix"]))
    active = {"host": {"name": "mx1"}, "event": {"dataset": "postfix.log", "action": "queue_active"},
              "postfix": {"queueid": "A1"}}
    removed = {"host": {"name": "mx1"}, "event": {"dataset": "postfix.log"},
               "postfix": {"queueid": "A1", "message": "removed"}}
    ix.line(active)
    assert ix.after(5 * 86400) == [] and ix.metric("mx1", "postfix queue") == 1.0  # a deferred message waits days
    ix.line(removed)
    assert ix.after(DEFAULT_TTL + 1) == [("mx1", "postfix queue")]


def test_the_counts_go_on_after_a_restart(tmp_path):
    """The snapshot keeps what a count is made of: after a restart the next ban counts from
    the addresses still banned, not from 0 (the restored gauge fell to 1)."""
    from streams.clock import ManualClock
    from streams.index import TTLIndex
    from streams.index.service import IndexService

    def service():
        clock = ManualClock(100.0)
        return IndexService(TTLIndex(clock), IndexFeed(), clock, tmp_path / "index.snapshot")

    def ban(svc, ip, t):
        doc = {"host": {"name": "mx1"}, "event": {"dataset": "fail2ban.log", "action": "ban"},
               "fail2ban": {"jail": "sshd"}, "source": {"ip": ip}}
        svc.observe(Event(), doc, t)
        return svc.query('service = "fail2ban sshd"')[0].metric

    first = service()
    assert [ban(first, f"192.0.2.{i}", 100.0 + i) for i in range(3)] == [1.0, 2.0, 3.0]
    first.save()
    second = service()
    second.restore()
    assert ban(second, "192.0.2.9", 200.0) == 4.0


@pytest.mark.parametrize("sources", [("fail2ban", "postfix"), ("fail2ban", "postfix", "logs")])
def test_live_batches_feed_the_index_as_documents_do(tmp_path, sources):
    """The live pipeline feeds the index from the native batch's side records: the same
    entries as the per-document feed gives for the same lines' documents."""
    from streams.index.service import IndexService
    from streams.parse.dispatch import LineParser
    from streams.pipeline.live import LivePipeline, Received
    from streams.telemetry import Telemetry
    lines = [
        "2026-11-24 00:47:24,273 fail2ban.actions [812]: NOTICE  [sshd] Ban 81.2.69.142",
        "2026-11-24 00:47:25,273 fail2ban.actions [812]: NOTICE  [sshd] Ban 81.2.69.143",
        "2026-11-24 00:48:25,273 fail2ban.actions [812]: NOTICE  [sshd] Unban 81.2.69.142",
        "2026-11-24 00:49:00,000 fail2ban.actions [812]: NOTICE  [postfix-sasl] Ban 175.16.199.3",
        "Nov 24 00:50:01 mx1 postfix/qmgr[1234]: A58820D8D0: from=<a@example.org>, size=100, nrcpt=1 (queue active)",
        "Nov 24 00:50:02 mx1 postfix/qmgr[1234]: 08FD8A4251: from=<b@example.org>, size=100, nrcpt=1 (queue active)",
        "Nov 24 00:50:03 mx1 postfix/qmgr[1234]: A58820D8D0: removed",
        "Nov 24 00:50:04 mx1 sshd[4007]: Failed password for root from 81.2.69.142 port 44633 ssh2",
    ]

    def entries(svc):
        return sorted((e.host, e.service, e.metric, e.ttl) for e in svc.query("true"))

    clock = ManualClock(1764000000.0)
    live_svc = IndexService(TTLIndex(clock), IndexFeed(sources), clock)
    p = LivePipeline(LineParser(year=2026), tmp_path, Telemetry(), index=live_svc, clock=clock)
    p.process([Received("relp", 1764000000.0, text=t, peer=("192.0.2.7", 514)) for t in lines])
    doc_svc = IndexService(TTLIndex(clock), IndexFeed(sources), clock)
    parser = LineParser(year=2026)
    for t in lines:
        doc = parser.parse(t).to_doc()
        doc.setdefault("host", {}).setdefault("name", "192.0.2.7")
        doc_svc.observe(Event(), doc, 1764000000.0)
    got = entries(live_svc)
    assert got == entries(doc_svc)
    assert ("192.0.2.7", "fail2ban sshd", 1.0, pytest.approx(live_svc.feed.held_ttl)) in got
    assert ("mx1", "postfix queue", 1.0, pytest.approx(live_svc.feed.held_ttl)) in got
    assert any(s.startswith("log ") for _, s, _, _ in got) == ("logs" in sources)
