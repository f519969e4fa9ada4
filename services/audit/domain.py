"""The hash chain, pure. Each entry's hash covers its own fields and the previous entry's hash, so
changing, removing, inserting or reordering any entry breaks every link after it; ``verify`` names the
first broken one."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable
from uuid import UUID

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
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
    hash: str = ""


def _ts(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def canonical(entry: AuditEntry) -> bytes:
    """The bytes that are hashed: sorted-key compact JSON of every field but the hash itself."""
    return orjson.dumps(
        {
            "seq": entry.seq,
            "event_id": str(entry.event_id),
            "event_type": entry.event_type,
            "source": entry.source,
            "subject": entry.subject,
            "model_id": str(entry.model_id) if entry.model_id else None,
            "actor": entry.actor,
            "topic": entry.topic,
            "occurred_at": _ts(entry.occurred_at),
            "recorded_at": _ts(entry.recorded_at),
            "payload": entry.payload,
            "prev_hash": entry.prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def compute_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def seal(entry: AuditEntry) -> AuditEntry:
    """Return the entry with its hash filled in."""
    return AuditEntry(**{**entry.__dict__, "hash": compute_hash(entry)})


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


class ChainVerifier:
    """Feed entries in seq order (in batches if you like); ``broken`` holds the first broken link."""

    def __init__(self) -> None:
        self.checked = 0
        self.last_seq = 0
        self.last_hash = GENESIS
        self.broken: BrokenLink | None = None

    def feed(self, entries: Iterable[AuditEntry]) -> bool:
        """Returns False once a broken link is found (stop feeding then)."""
        for entry in entries:
            if entry.seq != self.last_seq + 1:
                self.broken = BrokenLink(entry.seq, f"expected seq {self.last_seq + 1}: entries are missing or inserted")
            elif entry.prev_hash != self.last_hash:
                self.broken = BrokenLink(entry.seq, "prev_hash does not match the hash of the entry before it")
            elif compute_hash(entry) != entry.hash:
                self.broken = BrokenLink(entry.seq, "hash does not match the entry's content: the entry was altered")
            if self.broken:
                return False
            self.checked += 1
            self.last_seq, self.last_hash = entry.seq, entry.hash
        return True

    def finish(self, head_seq: int, head_hash: str) -> None:
        """Check the stored chain head against the last entry (catches entries cut off the end)."""
        if self.broken is None and (head_seq, head_hash) != (self.last_seq, self.last_hash):
            self.broken = BrokenLink(
                self.last_seq + 1, f"chain head says seq {head_seq} but the log ends at {self.last_seq}"
            )
