"""Security events (topic ``cairn.security.v1``), emitted by the gateway: keys, model grants and refused
requests."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from libs.events import topics
from libs.events.base import Event

Role = Literal["guest", "viewer", "editor", "auditor", "admin"]
ModelPermission = Literal["read", "write", "publish", "admin"]
_MODEL_ID = "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11"


class ApiKeyCreated(Event):
    """Sent when an API key is issued. The secret is never part of any event."""

    event_type: ClassVar[str] = "ApiKeyCreated"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {"key_id": "k3f9a1c2b7d4", "name": "ci-bot", "role": "editor",
                                         "team": "vision", "expires_at": "2026-12-31T00:00:00+00:00"}

    key_id: str
    name: str
    role: Role
    team: str | None = Field(None, description="Grants to team:<team> cover this key")
    expires_at: datetime | None = Field(None, description="After this the key is refused; null: never")

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


class ApiKeyRotated(Event):
    """Sent when an API key gets a new secret. The old secret works until ``previous_valid_until`` (the
    grace period asked for), or not at all when that is null. The secrets are never part of any event."""

    event_type: ClassVar[str] = "ApiKeyRotated"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {"key_id": "k3f9a1c2b7d4", "name": "ci-bot",
                                         "previous_valid_until": "2026-06-15T10:05:00+00:00"}

    key_id: str
    name: str
    previous_valid_until: datetime | None = Field(None, description="End of the old secret's grace period")

    def subject(self) -> str:
        return f"apikey:{self.key_id}"


class PermissionGranted(Event):
    """Sent when a principal (a key name, or ``team:<team>`` for every key of a team) is granted a
    permission on one model, or an existing grant is renewed with a new expiry."""

    event_type: ClassVar[str] = "PermissionGranted"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {
        "grant_id": "0b8f5c1e-6a7d-4f3e-9c2b-1d4e5f6a7b8c", "model_id": _MODEL_ID, "model_name": "bert-base-chinese",
        "principal": "team:nlp", "permission": "write", "expires_at": "2026-09-30T00:00:00+00:00",
    }

    grant_id: UUID
    model_id: UUID
    model_name: str
    principal: str = Field(description="A key name, or team:<team>")
    permission: ModelPermission = Field(description="admin ⊃ publish ⊃ write ⊃ read")
    expires_at: datetime | None = Field(None, description="The grant ends then; null: until revoked")


class PermissionRevoked(Event):
    """Sent when a grant on a model is revoked (by hand, or because the model was deleted)."""

    event_type: ClassVar[str] = "PermissionRevoked"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {
        "grant_id": "0b8f5c1e-6a7d-4f3e-9c2b-1d4e5f6a7b8c", "model_id": _MODEL_ID, "model_name": "bert-base-chinese",
        "principal": "team:nlp", "permission": "write", "reason": "",
    }

    grant_id: UUID
    model_id: UUID
    model_name: str
    principal: str
    permission: ModelPermission
    reason: str = ""


class AccessDenied(Event):
    """Sent when the gateway refuses a request for lack of a valid key (401), of a role, or of a grant on
    the model it is about (403)."""

    event_type: ClassVar[str] = "AccessDenied"
    topic: ClassVar[str] = topics.SECURITY
    example: ClassVar[dict[str, Any]] = {
        "method": "DELETE",
        "path": f"/api/v1/models/{_MODEL_ID}",
        "status": 403,
        "reason": "role viewer lacks permission models:delete, models:write; only the model's owner or an admin may delete it",
        "permission": "models:write",
        "key_id": "k3f9a1c2b7d4",
        "client": "127.0.0.1",
        "model": _MODEL_ID,
        "model_id": _MODEL_ID,
        "required": "owner",
    }

    method: str
    path: str
    status: Literal[401, 403]
    reason: str
    permission: str | None = None
    key_id: str | None = Field(None, description="The key presented, when it was a known key")
    client: str | None = None
    model: str | None = Field(None, description="The model as the request named it (id or name)")
    model_id: UUID | None = Field(None, description="The model's id, when it is known")
    required: str | None = Field(None, description="What was needed on the model: read, write, publish, admin, owner")

    def subject(self) -> str:
        return f"access:{self.key_id or 'anonymous'}"
