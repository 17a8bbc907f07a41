"""Riemann `Msg` decoding by the C-backed `protobuf` package (upb), when it is installed.

Profiled under `streams run`, the pure decoder of `streams.protocols.riemann` was the
largest single cost of a Riemann event. upb parses a batch of 100 events in well under a
microsecond per event; with the turning of its messages into `Event`s, a decode costs
about half of the pure decoder's (batches of 100 collectd-like events, one core).
`msg_decoder()` picks this decoder when `protobuf` runs on upb (its pure-Python backend
would be slower than ours) and the pure one otherwise.

The results are the pure decoder's, exactly: that decoder stays the reference, and the
payload goes back to it whenever upb's reading could differ from ours:
- upb rejects the payload (the pure decoder then raises with its own reason and offset);
- a byte upb did not turn into a field we read: unknown fields, a known field with the
  wrong wire type (upb keeps it as an unknown field, we reject it), the deprecated
  `Msg.states`, an optional field present twice, a non-minimal varint. Re-encoding never
  takes more bytes than the input, so after `DiscardUnknownFields()` these show as
  `ByteSize()` below the payload's length;
- an `Attribute` without its required `key` (`IsInitialized()` is false);
- invalid UTF-8: upb checks it as it parses (see `_message_class`) and rejects the payload.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..event import Event
from .riemann import Msg, decode_msg

Decoder = Callable[[bytes], Msg]


@functools.cache
def msg_decoder() -> Decoder:
    """The fastest decoder available: `decode_upb` with upb, else the pure `decode_msg`."""
    try:
        from google.protobuf.internal import api_implementation
    except ImportError:
        return decode_msg
    if api_implementation.Type() != "upb":
        return decode_msg
    return functools.partial(decode_upb, _message_class())


def decode_upb(message_class: Any, payload: bytes) -> Msg:
    """`decode_msg(payload)` by upb (see the module doc for when the pure decoder answers)."""
    from google.protobuf.message import DecodeError

    pb = message_class()
    try:
        pb.ParseFromString(payload)
    except DecodeError:
        return decode_msg(payload)   # raises with our reason
    pb.DiscardUnknownFields()
    if not pb.IsInitialized() or pb.ByteSize() != len(payload):
        return decode_msg(payload)
    return _msg(pb)


def _msg(pb: Any) -> Msg:
    has = pb.HasField
    msg = Msg(ok=pb.ok if has("ok") else None, error=pb.error if has("error") else None,
              query=pb.query.string if has("query") else None)
    new = Event.from_parse
    events = msg.events
    for p in pb.events:
        # a field that is set to a value other than ""/0 needs no HasField() call; written out
        # field by field, not as a getattr/setattr loop: this runs for every event received
        ev = new({})
        has = p.HasField
        if (t := p.time_micros) or has("time_micros"):
            ev.time = t / 1e6
        elif (t := p.time) or has("time"):
            ev.time = float(t)
        if (v := p.host) or has("host"):
            ev.host = v
        if (v := p.service) or has("service"):
            ev.service = v
        if (v := p.state) or has("state"):
            ev.state = v
        if (v := p.description) or has("description"):
            ev.description = v
        if (m := p.metric_d) or has("metric_d"):
            ev.metric = m
        elif (m := p.metric_sint64) or has("metric_sint64"):
            ev.metric = m
        elif (m := p.metric_f) or has("metric_f"):
            ev.metric = m
        if (v := p.ttl) or has("ttl"):
            ev.ttl = v
        # each read of a repeated field builds a wrapper (~0.6 us): read each once
        tags = p.tags[:]
        if tags:
            ev.tags = tags
        attributes = p.attributes
        if attributes:
            attrs = ev.attributes
            for a in attributes:
                attrs[a.key] = a.value
        events.append(ev)
    return msg


def _message_class() -> Any:
    """`Msg` built from a descriptor at run time (the schema of riemann.proto): nothing
    generated, no protoc. Written in edition 2023 terms only to have upb check UTF-8 as
    it parses (`utf8_validation = VERIFY`; proto2 would hand invalid strings over as
    bytes); presence and the required `Attribute.key` are proto2's."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F, features = descriptor_pb2.FieldDescriptorProto, descriptor_pb2.FeatureSet
    s, rep = F.TYPE_STRING, F.LABEL_REPEATED
    schema = {
        "Attribute": [("key", 1, s), ("value", 2, s)],
        "Query": [("string", 1, s)],
        "Event": [("time", 1, F.TYPE_INT64), ("state", 2, s), ("service", 3, s), ("host", 4, s),
                  ("description", 5, s), ("tags", 7, s, rep), ("ttl", 8, F.TYPE_FLOAT),
                  ("attributes", 9, "Attribute", rep), ("time_micros", 10, F.TYPE_INT64),
                  ("metric_sint64", 13, F.TYPE_SINT64), ("metric_d", 14, F.TYPE_DOUBLE),
                  ("metric_f", 15, F.TYPE_FLOAT)],
        "Msg": [("ok", 2, F.TYPE_BOOL), ("error", 3, s), ("query", 5, "Query"), ("events", 6, "Event", rep)],
    }
    fdp = descriptor_pb2.FileDescriptorProto(name="streams_riemann.proto", package="streams.riemann",
                                             syntax="editions", edition=descriptor_pb2.EDITION_2023)
    fdp.options.features.utf8_validation = features.VERIFY
    for name, fields in schema.items():
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, *label in fields:
            f = m.field.add(name=fname, number=number, label=label[0] if label else F.LABEL_OPTIONAL)
            if isinstance(ftype, str):
                f.type, f.type_name = F.TYPE_MESSAGE, f".streams.riemann.{ftype}"
            else:
                f.type = ftype
            if (name, fname) == ("Attribute", "key"):
                f.options.features.field_presence = features.LEGACY_REQUIRED
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("streams.riemann.Msg"))
