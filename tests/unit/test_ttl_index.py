"""The Riemann-style TTL index, on a manual clock (no sleeping)."""

from __future__ import annotations

import logging
import math
import random

import orjson
import pytest

from streams.clock import ManualClock
from streams.commands.run import build_index
from streams.config import Config
from streams.event import Event
from streams.index import TTLIndex


def ev(host="h1", service="cpu", time=None, ttl=None, state="ok", metric=None, **kw) -> Event:
    return Event(time=time, host=host, service=service, state=state, ttl=ttl, metric=metric, **kw)


@pytest.fixture
def clock():
    return ManualClock(1000.0)


@pytest.fixture
def index(clock):
    return TTLIndex(clock)


def check_invariants(index: TTLIndex) -> None:
    """Every live entry queued exactly once, in its own bucket, never later than its deadline's."""
    assert sorted(index._heap) == sorted(index._buckets)
    seen = set()
    for bucket, queue in index._buckets.items():
        for item in queue:
            if item.event is not None:
                assert id(item) not in seen
                seen.add(id(item))
                assert index._entries[item.key] is item
                assert bucket <= item.deadline // index.resolution
    assert len(seen) == len(index)
    assert index._queued == sum(map(len, index._buckets.values()))


def test_matches_a_naive_full_scan_model(clock):
    """Random inserts, updates, deletes and reaper passes against a dict scanned in full."""
    rnd = random.Random(42)
    index = TTLIndex(clock, default_ttl=20, resolution=0.5)
    model: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (time, ttl)
    for step in range(4000):
        op = rnd.random()
        key = (f"h{rnd.randrange(30)}", f"s{rnd.randrange(10)}")
        if op < 0.75:
            t = clock.now() - rnd.choice([0, 0, 0.25, 3.5, 30])
            ttl = rnd.choice([None, 0, 0.5, 1, 2.5, 10, 40])
            index.insert(ev(*key, time=t, ttl=ttl))
            model[key] = (t, 20 if ttl is None else ttl)
            if step % 97 == 0:
                check_invariants(index)
        elif op < 0.8:
            index.insert(ev(*key, state="expired"))
            model.pop(key, None)
        else:
            clock.advance(rnd.choice([0, 0.05, 0.5, 1, 3]))
            now = clock.now()
            due = {k for k, (t, ttl) in model.items() if now - t > ttl}
            out = index.expire()
            assert {(e.host, e.service) for e in out} == due, step
            assert all(e.time == now and e.state == "expired" for e in out)
            for k in due:
                del model[k]
            check_invariants(index)
        assert len(index) == len(model)
    check_invariants(index)
    assert index.stats["stale_skipped"] > 0 and index.stats["requeued"] > 0


def test_take_due_unlinks_the_due_entries_and_hands_them_over(index, clock):
    kept = ev("a", "x", time=1000.0, ttl=100.0)
    due = [ev("b", f"s{i}", time=1000.0, ttl=1.0) for i in range(3)]
    index.insert_many([kept, *due])
    items = index.take_due(1002.0)
    assert [item.event for item in sorted(items, key=lambda i: i.key)] == due
    assert len(index) == 1 and index.get("a", "x") is kept
    assert index.stats["expired"] == 0  # counted by expire(), which also builds the events
    assert index.expire(1002.0) == []
    check_invariants(index)


def test_updates_are_lazy_and_release_the_replaced_event(index):
    first = ev(time=1000)
    index.insert(first)
    for t in range(1001, 1010):
        index.insert(ev(time=t))
    queued = [item for q in index._buckets.values() for item in q]
    assert len(queued) == 1  # one entry, rewritten in place: nothing queued per update
    assert queued[0].event is not first and queued[0].event.time == 1009
    check_invariants(index)


def test_a_deadline_moved_earlier_is_queued_again(index):
    index.insert(ev(time=1000, ttl=100))
    index.insert(ev(time=1000, ttl=5))
    assert index._queued == 2 and len(index) == 1  # the first reference is now stale
    check_invariants(index)
    index.insert(ev(service="other", time=1000, ttl=500))  # keeps the stale share under the rebuild bound
    assert len(index.expire(1006.0)) == 1
    assert index.stats["stale_skipped"] == 0  # the stale one sits in a later bucket, not met yet
    assert index.expire(1101.0) == [] and index.stats["stale_skipped"] == 1
    check_invariants(index)


def test_keeps_the_latest_event_per_host_and_service(index):
    index.insert(ev(metric=1.0, time=1000))
    index.insert(ev(metric=2.0, time=1001))
    index.insert(ev(service="mem", metric=3.0, time=1001))
    assert len(index) == 2
    assert index.get("h1", "cpu").metric == 2.0
    assert index.get("h1", "mem").metric == 3.0
    assert index.get("h2", "cpu") is None
    assert index.stats["inserted"] == 2 and index.stats["updated"] == 1


def test_last_insert_wins_even_with_an_older_time(index):
    # Riemann's index is a plain put: it does not compare event times
    index.insert(ev(metric=1.0, time=1005))
    index.insert(ev(metric=2.0, time=1000))
    assert index.get("h1", "cpu").metric == 2.0


def test_event_without_time_gets_the_clock_time(index, clock):
    e = ev()
    index.insert(e)
    assert index.get("h1", "cpu").time == clock.now() == e.time


def test_default_ttl_is_60s_and_configurable(clock):
    index = TTLIndex(clock)
    index.insert(ev(time=1000))
    assert index.expire(1060.0) == []
    assert len(index.expire(1060.5)) == 1
    short = TTLIndex(clock, default_ttl=5)
    short.insert(ev(time=1000))
    assert short.expire(1005.0) == []
    assert len(short.expire(1005.5)) == 1


def test_own_ttl_wins_over_default(index):
    index.insert(ev(service="short", time=1000, ttl=5))
    index.insert(ev(service="long", time=1000, ttl=120))
    index.insert(ev(service="default", time=1000))
    assert [e.service for e in index.expire(1010.0)] == ["short"]
    assert [e.service for e in index.expire(1061.0)] == ["default"]
    assert [e.service for e in index.expire(1121.0)] == ["long"]
    assert len(index) == 0


@pytest.mark.parametrize("ttl", [0.0, 10.0, 2.5])
def test_expiry_boundary_is_strictly_greater(index, ttl):
    index.insert(ev(time=1000.0, ttl=ttl))
    assert index.expire(1000.0 + ttl) == []  # now - time == ttl: still valid
    assert index.get("h1", "cpu") is not None
    assert len(index.expire(1000.0 + ttl + 0.001)) == 1


def test_expire_uses_the_clock_by_default(index, clock):
    index.insert(ev(time=1000, ttl=10))
    clock.advance(10)
    assert index.expire() == []
    clock.advance(0.5)
    assert [e.time for e in index.expire()] == [1010.5]


def test_expired_state_deletes_the_key_and_is_not_stored(index):
    index.insert(ev(time=1000))
    index.insert(ev(time=1001, state="expired"))
    assert index.get("h1", "cpu") is None and len(index) == 0
    index.insert(ev(service="never", state="expired"))  # absent key: nothing to delete, nothing stored
    assert len(index) == 0
    assert index.stats["deleted"] == 1
    assert index.expire(10_000.0) == []  # the deleted entry's queued item is stale


def test_expire_returns_new_events_with_only_host_service_state_time(index):
    stored = ev(time=1000, ttl=1, metric=3.5, description="d", tags=["t"], attributes={"a": "b"},
                message="raw", fields={"event": {"dataset": "x"}}, meta={"peer": "p"})
    index.insert(stored)
    out = index.expire(1002.0)
    assert len(out) == 1
    e = out[0]
    assert e is not stored
    assert (e.host, e.service, e.state, e.time) == ("h1", "cpu", "expired", 1002.0)
    assert (e.metric, e.ttl, e.description, e.message) == (None, None, None, None)
    assert e.tags == [] and e.attributes == {} and e.fields == {} and e.meta == {}
    assert stored.state == "ok"  # the stored event is left as it was
    assert len(index) == 0 and index.stats["expired"] == 1
    # fed back into the index, an expired event only deletes (here: nothing left to delete)
    index.insert(e)
    assert len(index) == 0


def test_updated_entry_with_later_deadline_does_not_expire_early(index):
    index.insert(ev(time=1000, ttl=10))    # deadline 1010
    index.insert(ev(time=1008, ttl=10))    # deadline 1018, still queued in 1010's bucket
    assert index.expire(1012.0) == []
    assert index.get("h1", "cpu").time == 1008
    assert index.stats["requeued"] == 1    # found not due there, moved to 1018's bucket
    check_invariants(index)
    assert index.expire(1018.0) == []
    assert len(index.expire(1018.5)) == 1
    assert index.expire(1100.0) == []  # and is reported once only


def test_updated_entry_with_earlier_deadline_expires_at_the_new_one(index):
    index.insert(ev(time=1000, ttl=100))
    index.insert(ev(time=1000, ttl=5))
    assert len(index.expire(1006.0)) == 1
    assert index.expire(1101.0) == []


def test_stale_references_stay_bounded(clock):
    index = TTLIndex(clock)
    for r in range(50):  # each round moves every deadline earlier: one stale reference per update
        for i in range(100):
            index.insert(ev(service=f"s{i}", time=1000, ttl=1000 - 10 * r))
        assert index._queued <= 3 * len(index)  # stale references never exceed twice the live ones
    assert index.stats["rebuilds"] >= 1
    check_invariants(index)
    for i in range(50):
        index.delete("h1", f"s{i}")
        assert index._queued <= 3 * len(index)
    assert len(index.expire(1000 + 510.5)) == 50


def test_expire_cost_follows_the_due_entries_not_the_index_size(clock):
    n = 20_000
    index = TTLIndex(clock)
    for i in range(n):  # deadlines spread over 1000..1100 s; 1 % is due at 1001
        index.insert(ev(service=f"s{i}", time=1000.0, ttl=(i * 7919 % n) * 100.0 / n))
    out = index.expire(1001.0)
    assert len(out) == n // 100
    # examined: the due entries plus the not yet due part of the current bucket, not n
    assert index.stats["examined"] <= len(out) + n // 100
    before = index.stats["examined"]
    assert index.expire(1001.0) == []  # nothing new is due: almost nothing is looked at
    assert index.stats["examined"] - before <= n // 500


def test_expire_skips_stale_items_without_scanning_live_ones(clock):
    index = TTLIndex(clock)
    for i in range(1000):
        index.insert(ev(service=f"s{i}", time=1000.0, ttl=1000.0))
    index.insert(ev(service="s0", time=1000.0, ttl=1.0))
    assert [e.service for e in index.expire(1002.0)] == ["s0"]
    assert index.stats["examined"] == 1


def test_full_index_evicts_the_earliest_deadline_and_counts_it(clock, caplog):
    index = TTLIndex(clock, max_entries=3)
    index.insert(ev(service="a", time=1000, ttl=30))
    index.insert(ev(service="b", time=1000, ttl=10))  # earliest deadline
    index.insert(ev(service="c", time=1000, ttl=20))
    with caplog.at_level(logging.WARNING, logger="streams.index"):
        index.insert(ev(service="d", time=1000, ttl=40))
    assert len(index) == 3
    assert index.get("h1", "b") is None
    assert {e.service for e in index.events()} == {"a", "c", "d"}
    assert index.stats["evicted"] == 1
    rec = [r for r in caplog.records if r.getMessage().startswith("index full")]
    assert len(rec) == 1 and rec[0].kind == "evicted" and rec[0].total == 1 and rec[0].max_entries == 3
    index.insert(ev(service="a", time=1001, ttl=30))  # an update never evicts
    assert index.stats["evicted"] == 1 and len(index) == 3


def test_eviction_skips_an_entry_whose_deadline_was_moved_later(clock):
    index = TTLIndex(clock, max_entries=3)
    index.insert(ev(service="a", time=1000, ttl=10))
    index.insert(ev(service="b", time=1000, ttl=20))
    index.insert(ev(service="c", time=1000, ttl=30))
    index.insert(ev(service="a", time=1005, ttl=100))  # still queued at 1010, due at 1105
    index.insert(ev(service="d", time=1000, ttl=40))
    assert {e.service for e in index.events()} == {"a", "c", "d"}
    assert index.stats["evicted"] == 1 and index.stats["requeued"] == 1
    check_invariants(index)


def test_eviction_logging_is_rate_limited(clock, caplog):
    index = TTLIndex(clock, max_entries=2, log_interval=60)
    with caplog.at_level(logging.WARNING, logger="streams.index"):
        for i in range(100):
            index.insert(ev(service=f"s{i}", time=1000 + i, ttl=60))
        clock.advance(61)
        index.insert(ev(service="late", time=1161, ttl=60))
    logs = [r for r in caplog.records if r.getMessage().startswith("index full")]
    assert index.stats["evicted"] == 99
    check_invariants(index)
    assert [r.total for r in logs] == [1, 99]
    assert logs[1].since_last_log == 98


def test_evicting_an_entry_already_due_reports_it_as_expired(clock):
    index = TTLIndex(clock, max_entries=2)
    index.insert(ev(service="silent", time=900, ttl=10))  # due since 910, not reaped yet
    index.insert(ev(service="b", time=1000))
    index.insert(ev(service="c", time=1000))
    assert index.get("h1", "silent") is None
    assert index.stats["evicted"] == 0
    out = index.expire()
    assert [(e.service, e.state) for e in out] == [("silent", "expired")]
    assert index.stats["expired"] == 1


@pytest.mark.parametrize("ttl, used, counter", [
    (-5.0, 60.0, "bad_ttl"),
    (math.nan, 60.0, "bad_ttl"),
    (-math.inf, 60.0, "bad_ttl"),
    ("30", 60.0, "bad_ttl"),
    (math.inf, 365 * 86400.0, "clamped_ttl"),
    (1e300, 365 * 86400.0, "clamped_ttl"),
    (365 * 86400.0 + 1, 365 * 86400.0, "clamped_ttl"),
])
def test_absurd_ttls_are_counted_and_the_event_is_still_indexed(index, ttl, used, counter):
    index.insert(ev(time=1000.0, ttl=ttl))
    stored = index.get("h1", "cpu")
    assert stored is not None and stored.ttl == used
    assert index.stats[counter] == 1
    assert index.deadline("h1", "cpu") == 1000.0 + used
    assert index.expire(1000.0 + used) == []
    assert len(index.expire(1000.0 + used + 1)) == 1


def test_max_ttl_is_configurable(clock):
    index = TTLIndex(clock, max_ttl=3600)
    index.insert(ev(time=1000, ttl=7200))
    assert index.get("h1", "cpu").ttl == 3600 and index.stats["clamped_ttl"] == 1
    index.insert(ev(service="ok", time=1000, ttl=3600))
    assert index.stats["clamped_ttl"] == 1


@pytest.mark.parametrize("ttl", [10, 10.0])  # an int time past floats: an int deadline, or OverflowError
@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf, "yesterday", 10**400])
def test_absurd_times_are_replaced_by_now(index, clock, t, ttl):
    index.insert(ev(time=t, ttl=ttl))
    assert index.get("h1", "cpu").time == clock.now()
    assert index.stats["bad_time"] == 1
    assert len(index.expire(clock.now() + 10.5)) == 1


def test_constructor_rejects_bad_configuration(clock):
    for kw in ({"default_ttl": -1}, {"default_ttl": math.nan}, {"max_ttl": math.inf}, {"max_entries": 0},
               {"resolution": 0}, {"default_ttl": 100, "max_ttl": 10}):
        with pytest.raises(ValueError):
            TTLIndex(clock, **kw)


def test_config_builds_an_index(clock):
    cfg = Config()
    cfg.index.default_ttl, cfg.index.max_entries = 5, 10
    index = build_index(cfg, clock).index
    assert (index.default_ttl, index.max_entries) == (5.0, 10)


def test_events_search_and_get(index):
    for i in range(5):
        index.insert(ev(host=f"h{i}", service="load", time=1000, metric=float(i)))
    assert sorted(e.host for e in index.events()) == [f"h{i}" for i in range(5)]
    assert sorted(e.host for e in index.search(lambda e: e.metric >= 3)) == ["h3", "h4"]
    assert ("h0", "load") in index
    for e in index.events():  # iterates a copy: mutating meanwhile is fine
        index.delete(e.host, e.service)
    assert len(index) == 0


# -- persistence ------------------------------------------------------------------------

def _filled(clock) -> TTLIndex:
    index = TTLIndex(clock)
    index.insert(ev(host="web1", service="http", time=990.0, ttl=30, metric=0.25, description="fine",
                    tags=["prod", "web"], attributes={"dc": "eu"}, message="not saved",
                    fields={"event": {"dataset": "syslog"}, "source": {"ip": "192.0.2.1"}}, meta={"peer": "x"}))
    index.insert(ev(host="db1", service="disk", time=1000.0))  # default ttl: deadline 1060
    index.insert(ev(host="old", service="gone", time=900.0, ttl=10))  # due at save time, not yet reaped
    index.insert(ev(host=None, service="nohost", time=1000.0, ttl=5))
    return index


def test_snapshot_round_trip(tmp_path, clock):
    path = tmp_path / "index.snap"
    src = _filled(clock)
    assert src.save(path) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["index.snap"]  # no temp file left behind
    dst = TTLIndex(ManualClock(1000.0))
    assert dst.load(path) == 4
    assert len(dst) == 4 and dst.stats["load_errors"] == 0
    got = dst.get("web1", "http")
    assert (got.time, got.ttl, got.metric, got.state, got.description) == (990.0, 30, 0.25, "ok", "fine")
    assert got.tags == ["prod", "web"] and got.attributes == {"dc": "eu"}
    assert got.fields == {"event": {"dataset": "syslog"}, "source": {"ip": "192.0.2.1"}}
    assert got.message is None and got.meta == {}  # never serialized
    assert dst.get(None, "nohost").ttl == 5
    for key in ("web1", "http"), ("db1", "disk"), ("old", "gone"):
        assert dst.deadline(*key) == src.deadline(*key)


def test_restart_still_reports_hosts_that_went_silent(tmp_path, clock):
    path = tmp_path / "index.snap"
    _filled(clock).save(path)
    later = ManualClock(2000.0)  # down for 1000 s: everything is past its TTL at load
    dst = TTLIndex(later)
    assert dst.load(path) == 4
    assert len(dst) == 4
    out = dst.expire()
    assert sorted((e.host or "", e.service) for e in out) == [
        ("", "nohost"), ("db1", "disk"), ("old", "gone"), ("web1", "http")]
    assert all(e.state == "expired" and e.time == 2000.0 for e in out)


def test_entries_become_due_after_load(tmp_path, clock):
    path = tmp_path / "index.snap"
    _filled(clock).save(path)
    c = ManualClock(1001.0)
    dst = TTLIndex(c)
    dst.load(path)
    assert {e.host for e in dst.expire()} == {"old"}
    c.set(1020.5)
    assert {e.host for e in dst.expire()} == {"web1", None}
    c.set(1060.5)
    assert {e.host for e in dst.expire()} == {"db1"}
    assert len(dst) == 0


def test_save_replaces_the_previous_snapshot_atomically(tmp_path, clock):
    path = tmp_path / "index.snap"
    index = _filled(clock)
    index.save(path)
    index.delete("db1", "disk")
    assert index.save(path) == 3
    assert TTLIndex(clock).load(path) == 3
    assert len(list(tmp_path.iterdir())) == 1


def test_unserializable_entry_is_skipped_and_counted(tmp_path, clock):
    index = _filled(clock)
    index.insert(ev(host="bad", service="x", time=1000, fields={"n": 2**70}))  # beyond 64-bit JSON ints
    path = tmp_path / "index.snap"
    assert index.save(path) == 4
    assert index.stats["save_errors"] == 1
    assert TTLIndex(clock).load(path) == 4


def test_missing_snapshot_is_an_empty_start(tmp_path, clock):
    index = TTLIndex(clock)
    assert index.load(tmp_path / "absent.snap") == 0
    assert index.stats["load_errors"] == 0


def test_unreadable_snapshot_path_is_logged_not_raised(tmp_path, clock, caplog):
    index = TTLIndex(clock)
    with caplog.at_level(logging.ERROR, logger="streams.index"):
        assert index.load(tmp_path) == 0  # a directory
    assert index.stats["load_errors"] == 1 and caplog.records


@pytest.mark.parametrize("damage", ["garbage", "cut_mid_line", "cut_at_line", "bad_line", "no_header"])
def test_corrupt_snapshot_keeps_the_readable_part(tmp_path, clock, caplog, damage):
    path = tmp_path / "index.snap"
    _filled(clock).save(path)
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) == 6  # header, 4 entries, end line
    expect = {
        "garbage": (b"\x00\xff\x13 not json at all\n" * 3, 0),
        "cut_mid_line": (b"".join(lines[:3]) + lines[3][:20], 2),
        "cut_at_line": (b"".join(lines[:4]), 3),
        "bad_line": (b"".join(lines[:2]) + b'{"host": 1, "service": []}\n' + b"".join(lines[3:]), 3),
        "no_header": (b"".join(lines[1:]), 4),
    }
    content, restored = expect[damage]
    path.write_bytes(content)
    index = TTLIndex(clock)
    with caplog.at_level(logging.ERROR, logger="streams.index"):
        assert index.load(path) == restored
    assert len(index) == restored
    assert index.stats["load_errors"] >= 1
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_empty_snapshot_file_is_damage_not_a_crash(tmp_path, clock):
    path = tmp_path / "index.snap"
    path.write_bytes(b"")
    index = TTLIndex(clock)
    assert index.load(path) == 0
    assert index.stats["load_errors"] >= 1


def test_load_does_not_replace_newer_entries(tmp_path, clock):
    path = tmp_path / "index.snap"
    _filled(clock).save(path)
    index = TTLIndex(clock)
    index.insert(ev(host="db1", service="disk", time=1500.0, metric=9.0))
    assert index.load(path) == 3
    assert index.get("db1", "disk").metric == 9.0


def test_snapshot_is_orjson_lines_with_riemann_fields(tmp_path, clock):
    path = tmp_path / "index.snap"
    _filled(clock).save(path)
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert docs[0]["snapshot"] == 1 and docs[-1] == {"snapshot_end": 4}
    assert set(docs[1]) == {"time", "host", "service", "state", "metric", "ttl", "description", "tags",
                            "attributes", "fields"}


def test_a_key_evicted_due_again_and_again_expires_once(clock):
    """A client with a late clock, the index full: each stale event is evicted at once as
    due. Its key must come out of the next expire() once, and the duplicates must not use
    up the room kept for other due entries (which would then be lost as `evicted`)."""
    index = TTLIndex(clock, max_entries=3)
    index.insert(ev(service="a", time=1000))
    index.insert(ev(service="b", time=1000))
    index.insert(ev(service="c", time=1000))
    for _ in range(5):
        index.insert(ev(service="late", time=900, ttl=10))
    index.insert(ev(service="silent", time=950, ttl=10))
    out = index.expire()
    assert sorted(e.service for e in out) == ["late", "silent"]
    assert index.stats["expired"] == 2 and index.stats["evicted"] == 0
    assert index.expire() == []


def test_a_key_deleted_after_its_due_eviction_does_not_expire(clock):
    """`state: "expired"` for a key deletes it (Riemann's index): a pending expiry of an
    entry evicted as due goes with it, as the entry itself would have."""
    index = TTLIndex(clock, max_entries=2)
    index.insert(ev(service="silent", time=900, ttl=10))
    index.insert(ev(service="b", time=1000))
    index.insert(ev(service="c", time=1000))  # "silent" evicted, already due
    index.insert(ev(service="silent", state="expired"))
    assert index.expire() == []


def test_a_due_entry_pushed_out_by_eviction_survives_a_restart(tmp_path, clock):
    """Evicted as due, reported by the next expire(): a snapshot taken in between (the
    one written at shutdown) must keep it, or its expired event is never emitted."""
    index = TTLIndex(clock, max_entries=2)
    index.insert(ev(host="gone", service="disk", time=900, ttl=10))
    index.insert(ev(service="b", time=1000))
    index.insert(ev(service="c", time=1000))
    path = tmp_path / "index.snap"
    index.save(path)
    dst = TTLIndex(ManualClock(1005.0))
    dst.load(path)
    assert ("gone", "disk") in {(e.host, e.service) for e in dst.expire()}


def test_batches_with_odd_events_match_the_naive_model(clock):
    """`insert_many` takes the usual event inline and hands the others (expiries, no time,
    absurd TTL or time) to the general path: random batches of both kinds, in any order,
    against a dict, with the counters each kind must move."""
    rnd = random.Random(7)
    index = TTLIndex(clock, default_ttl=20, max_ttl=100, resolution=0.5)
    model: dict[tuple[str, str], float] = {}  # key -> deadline
    counts = dict.fromkeys(("inserted", "updated", "deleted", "bad_ttl", "clamped_ttl", "bad_time"), 0)
    for step in range(600):
        batch = []
        for _ in range(rnd.randrange(1, 12)):
            key = (f"h{rnd.randrange(20)}", f"s{rnd.randrange(4)}")
            now = clock.now()
            kind = rnd.choice(["usual"] * 6 + ["expired", "no_time", "bad_ttl", "big_ttl", "bad_time"])
            t, ttl = now - rnd.choice([0, 0.25, 3.5, 30]), rnd.choice([None, 0.5, 2.5, 10, 40])
            if kind == "expired":
                batch.append(ev(*key, state="expired"))
                if model.pop(key, None) is not None:
                    counts["deleted"] += 1
                continue
            if kind == "no_time":
                t = None
            elif kind == "bad_ttl":
                ttl = rnd.choice([-1.0, math.nan, "30"])
                counts["bad_ttl"] += 1
            elif kind == "big_ttl":
                ttl = rnd.choice([math.inf, 1e300, 101.0])
                counts["clamped_ttl"] += 1
            elif kind == "bad_time":
                t = rnd.choice([math.nan, math.inf, "yesterday"])
                counts["bad_time"] += 1
            batch.append(ev(*key, time=t, ttl=ttl))
            used_t = now if t is None or kind == "bad_time" else t
            used_ttl = {"bad_ttl": 20.0, "big_ttl": 100.0}.get(kind, 20.0 if ttl is None else ttl)
            counts["updated" if key in model else "inserted"] += 1
            model[key] = used_t + used_ttl
        index.insert_many(iter(batch))
        assert {k: index.deadline(*k) for k in model} == model, step
        assert len(index) == len(model)
        assert {k: index.stats[k] for k in counts} == counts, step
        clock.advance(rnd.choice([0, 0.5, 1, 3]))
        now = clock.now()
        due = {k for k, deadline in model.items() if deadline < now}
        assert {(e.host, e.service) for e in index.expire()} == due, step
        for k in due:
            del model[k]
        check_invariants(index)


def test_a_batch_cut_by_its_source_keeps_what_it_indexed(index):
    """The events before a failure of the iterable are indexed and counted."""
    def events():
        yield ev("a", time=1000.0)
        yield ev("a", time=1001.0)
        yield ev("b", time=1000.0)
        raise OSError("source gone")

    with pytest.raises(OSError):
        index.insert_many(events())
    assert len(index) == 2 and index.get("a", "cpu").time == 1001.0
    assert index.stats["inserted"] == 2 and index.stats["updated"] == 1


@pytest.mark.parametrize("rebuild_by", ["earlier deadlines", "deletes"])
def test_a_rebuild_in_the_middle_of_a_batch_loses_no_later_event(index, rebuild_by):
    """Stale references pile up within one batch until the buckets are rebuilt; the events
    after that point must be queued in the new buckets, or they would never expire."""
    if rebuild_by == "earlier deadlines":  # each moves "a" earlier: a new reference, the old one stale
        batch = [ev("a", time=1000.0, ttl=ttl) for ttl in (50, 40, 30, 20, 10)]
    else:
        batch = [ev(h, time=1000.0, ttl=50) for h in "abcd"] + [ev(h, state="expired") for h in "bcd"]
    index.insert_many([*batch, ev("late", time=1000.0, ttl=5)])
    assert index.stats["rebuilds"] == 1
    check_invariants(index)
    assert [(e.host, e.service) for e in index.expire(1006.0)] == [("late", "cpu")]
