"""A Server-Sent Events reader (the subset the gateway sends: id, event, data, comments)."""
from __future__ import annotations

import json
from typing import Iterable, Iterator

from libs.sdk.types import TrainingEvent


def parse_events(lines: Iterable[str]) -> Iterator[TrainingEvent]:
    """Events from the stream's lines; comments (``: keep-alive``) are skipped, a blank line ends an event.
    ``data`` is decoded as JSON (a non-JSON payload is kept as ``{"raw": text}``)."""
    event_id, kind, data = "", "message", []
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"raw": text}
                yield {"id": event_id, "event": kind, "data": payload if isinstance(payload, dict) else {"value": payload}}
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)
