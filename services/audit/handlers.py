"""Appends each consumed event to the chain, and verifies the chain on request."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from libs.events.envelope import RawEvent
from libs.kit.uow import UnitOfWork
from services.audit import store
from services.audit.domain import AuditEntry, ChainVerifier, seal


def _model_id(data: dict[str, Any]) -> UUID | None:
    try:
        return UUID(str(data["model_id"])) if data.get("model_id") else None
    except ValueError:
        return None


async def record_event(event: RawEvent, uow: UnitOfWork) -> None:
    """Append one event. Runs inside the consumer's unit of work, after its inbox check."""
    last_seq, last_hash = await store.lock_head(uow.conn)
    entry = seal(
        AuditEntry(
            seq=last_seq + 1,
            event_id=event.id,
            event_type=event.type,
            source=event.source,
            subject=event.subject,
            model_id=_model_id(event.data),
            actor=event.actor,
            topic=event.topic,
            occurred_at=event.time,
            recorded_at=datetime.now(timezone.utc),
            payload=event.data,
            prev_hash=last_hash,
        )
    )
    await store.append(uow.conn, entry)


async def verify_chain(pool) -> dict[str, Any]:
    verifier = ChainVerifier()
    async for batch in store.read_in_order(pool):
        if not verifier.feed(batch):
            break
    head_seq, head_hash = await store.head(pool)
    verifier.finish(head_seq, head_hash)
    return {
        "ok": verifier.broken is None,
        "checked": verifier.checked,
        "head": {"seq": head_seq, "hash": head_hash},
        "first_broken": verifier.broken.as_dict() if verifier.broken else None,
    }
