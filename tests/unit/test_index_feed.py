"""What enters the index: Riemann events as they are, and one entry per monitored log
source and host (Fail2ban banned count per jail, Postfix active queue)."""

from __future__ import annotations

import pytest

from streams.event import Event
from streams.index.feed import IndexFeed


def f2b(action, ip, jail="sshd", host="mx1"):
    return {"host": {"hostname": host}, "event": {"dataset": "fail2ban.log", "action": action},
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


def test_postfix_queue_and_sender_fallback():
    feed = IndexFeed(["postfix", "logs"])
    active = {"event": {"dataset": "postfix.log", "action": "queue_active"}, "postfix": {"queueid": "A1"}}
    removed = {"event": {"dataset": "postfix.log"}, "postfix": {"queueid": "A1", "message": "removed"}}
    entries = feed.derive(Event(), active, 1.0, sender="192.0.2.7")
    assert [(e.host, e.service, e.metric) for e in entries] == [("192.0.2.7", "postfix queue", 1.0),
                                                               ("192.0.2.7", "log postfix.log", None)]
    assert feed.derive(Event(), removed, 2.0, sender="192.0.2.7")[0].metric == 0.0
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
    active = {"host": {"hostname": "mx1"}, "event": {"dataset": "postfix.log", "action": "queue_active"},
              "postfix": {"queueid": "A1"}}
    deleted = {"host": {"hostname": "mx1"}, "event": {"dataset": "postfix.log", "action": "removed"},
               "postfix": {"queueid": "A1", "postsuper_action": "removed"}}
    assert feed.derive(Event(), active, 1.0)[0].metric == 1.0
    assert feed.derive(Event(), deleted, 2.0)[0].metric == 0.0
