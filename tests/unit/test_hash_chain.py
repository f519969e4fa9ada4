"""The audit hash chain, pure: sealing, verifying, and naming the first broken link."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

from services.audit.domain import GENESIS, AuditEntry, ChainVerifier, compute_hash, seal

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def chain(n: int) -> list[AuditEntry]:
    entries, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = seal(AuditEntry(
            seq=i, event_id=uuid.uuid4(), event_type="ModelRegistered", source="registry", subject="m",
            model_id=uuid.uuid4(), actor="alice", topic="cairn.models.v1", occurred_at=T0 + timedelta(seconds=i),
            recorded_at=T0 + timedelta(seconds=i, milliseconds=5), payload={"i": i, "score": 0.1 * i, "名": "模型"},
            prev_hash=prev))
        entries.append(entry)
        prev = entry.hash
    return entries


def verify(entries, head=None) -> ChainVerifier:
    v = ChainVerifier()
    v.feed(entries)
    last = entries[-1] if entries else None
    v.finish(*(head or ((last.seq, last.hash) if last else (0, GENESIS))))
    return v


def test_a_sound_chain_verifies():
    v = verify(chain(10))
    assert v.broken is None and v.checked == 10


def test_hash_depends_on_every_field():
    entry = chain(1)[0]
    for name, value in [("actor", "mallory"), ("payload", {"i": 2}), ("event_type", "X"), ("prev_hash", "1" * 64),
                        ("occurred_at", T0), ("model_id", None), ("topic", "t")]:
        assert compute_hash(dataclasses.replace(entry, **{name: value})) != entry.hash, name


def test_an_altered_entry_is_named():
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], payload={"i": 99})
    v = verify(entries)
    assert v.broken.seq == 3 and "altered" in v.broken.reason


def test_a_resealed_forgery_breaks_the_next_link():
    entries = chain(5)
    entries[2] = seal(dataclasses.replace(entries[2], actor="mallory"))
    v = verify(entries)
    assert v.broken.seq == 4 and "prev_hash" in v.broken.reason


def test_a_removed_entry_is_named():
    entries = chain(5)
    del entries[1]
    assert verify(entries).broken.seq == 3


def test_reordered_entries_are_caught():
    entries = chain(4)
    entries[1], entries[2] = entries[2], entries[1]
    assert verify(entries).broken is not None


def test_entries_cut_off_the_end_are_caught_by_the_head():
    entries = chain(5)
    v = verify(entries[:3], head=(entries[-1].seq, entries[-1].hash))
    assert v.broken.seq == 4 and "chain head" in v.broken.reason


def test_feeding_in_batches_equals_feeding_at_once():
    entries = chain(9)
    v = ChainVerifier()
    for i in range(0, 9, 4):
        assert v.feed(entries[i:i + 4])
    assert v.checked == 9 and v.last_hash == entries[-1].hash
