from streams.event import Event


def test_roundtrip_riemann_and_ecs():
    ev = Event(time=1700000000.5, host="web1", service="cpu", state="ok", metric=0.5, ttl=60.0,
               description="d", tags=["a"], attributes={"k": "v"}, message="m",
               fields={"event": {"dataset": "x"}, "host": {"hostname": "web1.example"}}, meta={"peer": "1.2.3.4"})
    doc = Event.from_json(ev.to_json()).to_doc()
    assert doc["@timestamp"] == "2023-11-14T22:13:20.500Z"
    assert doc["host"] == {"hostname": "web1.example", "name": "web1"}
    assert doc["service"] == {"name": "cpu", "state": "ok"}
    assert doc["riemann"] == {"metric": 0.5, "ttl": 60.0, "description": "d", "attributes": {"k": "v"}}
    back = Event.from_json(ev.to_json())
    assert (back.host, back.service, back.state, back.metric, back.ttl, back.tags) == ("web1", "cpu", "ok", 0.5, 60.0, ["a"])
    assert back.meta == {}  # meta is never serialized


def test_slots():
    ev = Event()
    try:
        ev.nope = 1
    except AttributeError:
        pass
    else:
        raise AssertionError("Event must be slotted")
