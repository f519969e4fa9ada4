"""CloudEvents envelope: encode/decode, the reasons a message is refused, upcasting."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import ClassVar

import pytest

from libs.events.base import Event
from libs.events.catalog import all_event_classes
from libs.events.envelope import Envelope, InvalidEvent, child_traceparent, decode, decode_raw
from libs.events.models import ModelRegistered


def envelope() -> Envelope:
    return Envelope(data=ModelRegistered.model_validate(ModelRegistered.example), source="registry", actor="alice")


def test_round_trip_keeps_every_attribute():
    sent = envelope()
    got = decode(sent.headers(), sent.body())
    assert (got.id, got.type, got.source, got.actor, got.subject, got.data) == (
        sent.id, sent.type, sent.source, sent.actor, sent.subject, sent.data)
    assert got.time == sent.time and got.traceparent == sent.traceparent


def test_every_catalog_example_is_valid_and_round_trips():
    for cls in all_event_classes():
        event = cls.model_validate(cls.example)
        sent = Envelope(data=event, source="tests", actor="t")
        assert decode(sent.headers(), sent.body()).data == event, cls.event_type


@pytest.mark.parametrize("mutate, reason", [
    (lambda h, b: (dict(h, ce_type=""), b), "missing CloudEvents header"),
    (lambda h, b: (dict(h, ce_specversion="0.3"), b), "ce_specversion"),
    (lambda h, b: (dict(h, ce_id="nope"), b), "ce_id is not a UUID"),
    (lambda h, b: (dict(h, ce_time="yesterday"), b), "ce_time"),
    (lambda h, b: (dict(h, ce_time="2026-01-01T00:00:00"), b), "time zone"),
    (lambda h, b: (h, b"{oops"), "not JSON"),
    (lambda h, b: (h, b"[1]"), "not a JSON object"),
    (lambda h, b: (dict(h, ce_type="NoSuchEvent"), b), "unknown event type"),
    (lambda h, b: (h, b'{"model_id": "x"}'), "body invalid at"),
    (lambda h, b: (dict(h, ce_dataschema="urn:cairn:event:ModelRegistered:v9"), b), "newer"),
])
def test_invalid_messages_are_refused_with_a_reason(mutate, reason):
    sent = envelope()
    headers, body = mutate(sent.headers(), sent.body())
    with pytest.raises(InvalidEvent, match=reason):
        decode(headers, body)


def test_raw_decoding_accepts_unknown_types_for_the_audit_log():
    sent = envelope()
    raw = decode_raw(dict(sent.headers(), ce_type="SomethingNew"), b'{"x": 1}')
    assert raw.type == "SomethingNew" and raw.data == {"x": 1}


class _Renamed(Event):
    """Test-only event whose v1 body called ``title`` ``name``."""

    event_type: ClassVar[str] = "TestRenamed"
    topic: ClassVar[str] = "cairn.test.v1"
    class_version: ClassVar[int] = 2
    upcasters: ClassVar[dict] = {1: lambda body: {"model_id": body["model_id"], "title": body["name"]}}
    model_id: uuid.UUID
    title: str


def test_older_bodies_are_upcast():
    model_id = uuid.uuid4()
    headers = {"ce_specversion": "1.0", "ce_id": str(uuid.uuid4()), "ce_source": "old", "ce_type": "TestRenamed",
               "ce_time": datetime.now(timezone.utc).isoformat(), "ce_dataschema": "urn:cairn:event:TestRenamed:v1"}
    got = decode(headers, f'{{"model_id": "{model_id}", "name": "x"}}'.encode())
    assert got.data == _Renamed(model_id=model_id, title="x")


def test_child_traceparent_keeps_the_trace_id():
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = child_traceparent(parent)
    assert child[:36] == parent[:36] and child != parent
    assert child_traceparent("garbage").startswith("00-")
