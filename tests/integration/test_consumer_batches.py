"""A batch of events is applied in one transaction; when one event of it is refused, the batch is
rolled back and applied again one event per transaction, so the refused event alone is dead-lettered
and every other event has exactly one effect. Driven through EventConsumer._on_batch with real
Postgres, so the outcome does not depend on how the broker happens to group messages."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from libs.events.envelope import Envelope
from libs.events.models import ModelDeleted
from libs.kit.consumer import EventConsumer
from libs.kit.errors import Conflict
from tests.support.batches import Batch, Record

pytestmark = pytest.mark.asyncio


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list]] = []

    async def send_and_wait(self, topic, *, value, key, headers):
        self.sent.append((topic, value, headers))


def _message(event: ModelDeleted, offset: int, envelope_id: uuid.UUID | None = None) -> tuple[Record, bytes]:
    envelope = Envelope(data=event, source="tests", actor="batch-test", **({"id": envelope_id} if envelope_id else {}))
    headers = [(k, v.encode()) for k, v in envelope.headers().items()]
    return Record(headers=headers, offset=offset), envelope.body()


def _deleted(name: str) -> ModelDeleted:
    return ModelDeleted(model_id=uuid.uuid4(), name=name, deleted_at=datetime.now(timezone.utc))


async def _effects(pool, marker: str) -> dict[uuid.UUID, int]:
    rows = await pool.fetch("SELECT event_id, count(*) AS n FROM audit.inbox WHERE consumer = $1 GROUP BY event_id",
                            marker)
    return {r["event_id"]: r["n"] for r in rows}


def _consumer(pool, dlq, marker: str, refuse: str | None = None) -> EventConsumer:
    """A consumer whose effect is a row in audit.inbox under ``marker``, refusing models named ``refuse``."""
    consumer = EventConsumer(group=f"batch-test-{uuid.uuid4().hex[:8]}", schema="audit", source="tests")
    consumer.bind(pool, dlq)

    @consumer.on(ModelDeleted)
    async def record(envelope, uow) -> None:
        await uow.conn.execute("INSERT INTO audit.inbox (consumer, event_id) VALUES ($1, $2)", marker, envelope.id)
        if envelope.data.name == refuse:
            raise Conflict("refused by the test")

    return consumer


async def test_a_batch_is_one_transaction_with_one_effect_per_event(system):
    pool = system.services["audit"].app.state.runtime.pool
    dlq, marker = DeadLetters(), f"effect-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(pool, dlq, marker)
    messages = [_message(_deleted(f"m{i}"), i) for i in range(5)]
    # the third message is a redelivery of the first: same event id, later offset
    first_id = uuid.UUID(dict(messages[0][0].headers)["ce_id"].decode())
    messages.insert(2, _message(_deleted("again"), 99, envelope_id=first_id))
    await consumer._on_batch([body for _, body in messages], Batch(tuple(record for record, _ in messages)))
    effects = await _effects(pool, marker)
    assert len(effects) == 5 and set(effects.values()) == {1}
    assert consumer.batches == 1 and consumer.processed == 6
    assert dlq.sent == []
    # the same batch delivered again (a crash before the offset commit) has no second effect
    await consumer._on_batch([body for _, body in messages], Batch(tuple(record for record, _ in messages)))
    assert await _effects(pool, marker) == effects


async def test_a_refused_event_is_dead_lettered_alone_and_the_rest_applied_once(system):
    pool = system.services["audit"].app.state.runtime.pool
    dlq, marker = DeadLetters(), f"effect-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(pool, dlq, marker, refuse="bad")
    names = ["a", "b", "bad", "c"]
    messages = [_message(_deleted(name), i) for i, name in enumerate(names)]
    invalid = Record(headers=[("ce_type", b"ModelDeleted")], offset=10)  # no CloudEvents attributes
    records = [record for record, _ in messages] + [invalid]
    await consumer._on_batch([body for _, body in messages] + [b"{}"], Batch(tuple(records)))
    effects = await _effects(pool, marker)
    ids = {name: uuid.UUID(dict(record.headers)["ce_id"].decode()) for name, (record, _) in zip(names, messages)}
    # the refused event's effect was rolled back with it; the others were applied exactly once
    assert effects == {ids["a"]: 1, ids["b"]: 1, ids["c"]: 1}
    assert consumer.batches == 0  # the batch transaction rolled back
    reasons = sorted(dict(headers)["dlq_offset"].decode() for _, _, headers in dlq.sent)
    assert reasons == ["10", "2"]
    assert all(topic == f"cairn.dlq.{consumer.group}" for topic, _, _ in dlq.sent)
