"""The audit service's HTTP contract."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel
from typing import Literal


class AuditEntryOut(BaseModel):
    seq: int
    event_id: UUID
    event_type: str
    source: str
    subject: str | None
    model_id: UUID | None
    actor: str | None
    topic: str | None
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None


class BrokenLinkOut(BaseModel):
    seq: int
    reason: str


class ChainHead(BaseModel):
    seq: int
    hash: str


class VerifyResult(BaseModel):
    ok: bool
    checked: int
    head: ChainHead
    first_broken: BrokenLinkOut | None


class AuditQuery:
    """Filters and paging of ``GET /audit``; shared by the audit service and the gateway."""

    def __init__(
        self,
        model_id: UUID | None = None,
        actor: str | None = Query(None, max_length=128),
        event_type: str | None = Query(None, max_length=64),
        since: datetime | None = Query(None, description="occurred at or after (RFC 3339 with zone)"),
        until: datetime | None = Query(None, description="occurred before (RFC 3339 with zone)"),
        order: Literal["asc", "desc"] = "desc",
        cursor: str | None = Query(None, max_length=20, description="next_cursor of the previous page"),
        page_size: int = Query(50, ge=1, le=500),
    ) -> None:
        self.model_id, self.actor, self.event_type = model_id, actor, event_type
        self.since, self.until, self.order, self.cursor, self.page_size = since, until, order, cursor, page_size
