"""CloudEvents 1.0 in Kafka binary mode: attributes as ``ce_*`` headers, the event body as JSON.

Extension attributes: ``ce_actor`` (the principal who caused the event). ``traceparent`` is the W3C
trace context header. The Kafka key is the event's subject (a model id), so one model's events stay ordered.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from uuid import UUID, uuid4

import orjson
from pydantic import ValidationError

from libs.events.base import Event, event_class

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_DATASCHEMA = re.compile(r"^urn:cairn:event:(?P<type>[A-Za-z0-9]+):v(?P<version>\d+)$")
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


class InvalidEvent(ValueError):
    """A message that is not a valid Cairn event; the reason says why. It belongs on a dead-letter topic."""


def new_traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """Same trace, new span: what a producer does when it acts on a received event or request."""
    if parent and _TRACEPARENT.match(parent):
        return f"00-{parent[3:35]}-{os.urandom(8).hex()}-{parent[-2:]}"
    return new_traceparent()


@dataclass(frozen=True)
class Envelope:
    """One event with its CloudEvents attributes."""

    data: Event
    source: str
    actor: str
    id: UUID = field(default_factory=uuid4)
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    traceparent: str = field(default_factory=new_traceparent)

    @property
    def type(self) -> str:
        return self.data.event_type

    @property
    def topic(self) -> str:
        return self.data.topic

    @property
    def subject(self) -> str:
        return self.data.subject()

    def headers(self) -> dict[str, str]:
        return {
            "ce_specversion": SPECVERSION,
            "ce_id": str(self.id),
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_subject": self.subject,
            "ce_time": self.time.astimezone(timezone.utc).isoformat(),
            "ce_dataschema": self.data.dataschema(),
            "ce_actor": self.actor,
            "content-type": CONTENT_TYPE,
            "traceparent": self.traceparent,
        }

    def body(self) -> bytes:
        return self.data.model_dump_json().encode()


@dataclass(frozen=True)
class RawEvent:
    """An event whose attributes are valid but whose body is only known to be a JSON object.
    The audit log records these, including types newer than this code knows."""

    id: UUID
    type: str
    source: str
    subject: str | None
    time: datetime
    actor: str | None
    traceparent: str | None
    dataschema: str | None
    data: dict[str, Any]
    topic: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def normalize_headers(headers: Mapping[str, bytes | str] | list[tuple[str, bytes]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        return {k: _text(v) for k, v in items}
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"header is not UTF-8: {exc}") from None


def decode_raw(headers: Mapping[str, bytes | str] | list[tuple[str, bytes]], body: bytes) -> RawEvent:
    """Check the CloudEvents attributes and that the body is a JSON object."""
    h = normalize_headers(headers)
    missing = [name for name in REQUIRED if not h.get(name)]
    if missing:
        raise InvalidEvent(f"missing CloudEvents header(s): {', '.join(missing)}")
    if h["ce_specversion"] != SPECVERSION:
        raise InvalidEvent(f"unsupported ce_specversion {h['ce_specversion']!r}")
    try:
        event_id = UUID(h["ce_id"])
    except ValueError:
        raise InvalidEvent(f"ce_id is not a UUID: {h['ce_id']!r}") from None
    try:
        time = datetime.fromisoformat(h["ce_time"])
    except ValueError:
        raise InvalidEvent(f"ce_time is not RFC 3339: {h['ce_time']!r}") from None
    if time.tzinfo is None:
        raise InvalidEvent("ce_time has no time zone")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("body is not a JSON object")
    traceparent = h.get("traceparent")
    return RawEvent(
        id=event_id,
        type=h["ce_type"],
        source=h["ce_source"],
        subject=h.get("ce_subject"),
        time=time,
        actor=h.get("ce_actor"),
        traceparent=traceparent if traceparent and _TRACEPARENT.match(traceparent) else None,
        dataschema=h.get("ce_dataschema"),
        data=data,
    )


def decode(headers: Mapping[str, bytes | str] | list[tuple[str, bytes]], body: bytes) -> Envelope:
    """Decode a message into a typed envelope, upcasting older bodies. Raises InvalidEvent."""
    raw = decode_raw(headers, body)
    cls = event_class(raw.type)
    if cls is None:
        raise InvalidEvent(f"unknown event type {raw.type!r}")
    data = raw.data
    if raw.dataschema:
        match = _DATASCHEMA.match(raw.dataschema)
        if not match or match["type"] != raw.type:
            raise InvalidEvent(f"ce_dataschema {raw.dataschema!r} does not name {raw.type}")
        version = int(match["version"])
        if version > cls.class_version:
            raise InvalidEvent(f"{raw.type} v{version} is newer than this consumer knows (v{cls.class_version})")
        data = cls.upcast(data, version)
    try:
        event = cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidEvent(f"{raw.type} body invalid at {where}: {first['msg']}") from None
    return Envelope(
        data=event,
        source=raw.source,
        actor=raw.actor or "unknown",
        id=raw.id,
        time=raw.time,
        traceparent=raw.traceparent or new_traceparent(),
    )
