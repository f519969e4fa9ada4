"""Security events (topic ``cairn.security.v1``), emitted by the gateway: keys and refused requests."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from libs.events import topics
from libs.events.base import Event

Role = Literal["viewer", "editor", "auditor", "admin"]


class ApiKeyCreated(Event):
    """Sent when an API key is issued. The secret is never part of any event."""

    event_type: ClassVar[str] = "ApiKeyCreated"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {"key_id": "k3f9a1c2b7d4", "name": "ci-bot", "role": "editor"}

    key_id: str
    name: str
    role: Role

    def subject(self) -> str:
        return f"apikey:{self.key_id}"


class ApiKeyRevoked(Event):
    """Sent when an API key is revoked; requests with it are refused from then on."""

    event_type: ClassVar[str] = "ApiKeyRevoked"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {"key_id": "k3f9a1c2b7d4", "name": "ci-bot"}

    key_id: str
    name: str

    def subject(self) -> str:
        return f"apikey:{self.key_id}"


class AccessDenied(Event):
    """Sent when the gateway refuses a request for lack of a valid key (401) or of a role (403)."""

    event_type: ClassVar[str] = "AccessDenied"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {
        "method": "DELETE",
        "path": "/api/v1/models/7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11",
        "status": 403,
        "reason": "role viewer lacks permission models:write",
        "permission": "models:write",
        "key_id": "k3f9a1c2b7d4",
        "client": "127.0.0.1",
    }

    method: str
    path: str
    status: Literal[401, 403]
    reason: str
    permission: str | None = None
    key_id: str | None = Field(None, description="The key presented, when it was a known key")
    client: str | None = None

    def subject(self) -> str:
        return f"access:{self.key_id or 'anonymous'}"
