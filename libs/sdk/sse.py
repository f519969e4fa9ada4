"""A Server-Sent Events reader (the subset the gateway sends: id, event, data, comments)."""
from __future__ import annotations

import json
from typing import Iterable, Iterator

from libs.sdk.types import TrainingEvent


class EventParser:
    """Feed it the stream's lines one by one; a blank line completes an event, which ``feed`` returns.
    Comments (``: keep-alive``) are skipped. ``data`` is decoded as JSON (else ``{"raw": text}``)."""

    def __init__(self) -> None:
        self.last_id = ""
        self._kind, self._data = "message", []

    def feed(self, line: str) -> TrainingEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            event = self._complete() if self._data else None
            self._kind, self._data = "message", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            self.last_id = value
        elif name == "event":
            self._kind = value
        elif name == "data":
            self._data.append(value)
        return None

    def _complete(self) -> TrainingEvent:
        text = "\n".join(self._data)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {"raw": text}
        return {"id": self.last_id, "event": self._kind,
                "data": payload if isinstance(payload, dict) else {"value": payload}}


def parse_events(lines: Iterable[str]) -> Iterator[TrainingEvent]:
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
