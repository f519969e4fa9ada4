"""Delivery guarantees: outbox rows leave only when committed, a republished event has no second
effect (inbox), and a message that is not a valid event goes to the dead-letter topic while the
consumer moves on."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from aiokafka import AIOKafkaProducer

from libs.events import topics
from libs.events.models import ModelDeleted
from libs.kit.db import connect
from libs.kit.uow import UnitOfWork
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio


def registry_pool(system):
    return system.services["registry"].app.state.runtime.pool


async def test_only_committed_events_are_published(system):
    pool = registry_pool(system)
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    async with TopicWatcher(system.kafka_bootstrap, topics.MODELS) as watcher:
        with pytest.raises(RuntimeError):
            async with UnitOfWork(pool, "registry", source="registry", actor="tests") as uow:
                await uow.emit(ModelDeleted(model_id=dropped, name="rolled-back", deleted_at=datetime.now(timezone.utc)))
                raise RuntimeError("abort the transaction")
        async with UnitOfWork(pool, "registry", source="registry", actor="tests") as uow:
            await uow.emit(ModelDeleted(model_id=kept, name="committed", deleted_at=datetime.now(timezone.utc)))
        await watcher.wait_for(lambda r: r.key == str(kept).encode())
    assert not any(r.key == str(dropped).encode() for r in watcher.seen)


async def test_republished_events_are_recorded_once(system, infra):
    """A relay that dies after publishing but before marking the rows republishes them."""
    model_id = uuid.uuid4()
    pool = registry_pool(system)
    async with UnitOfWork(pool, "registry", source="registry", actor="tests") as uow:
        envelope = await uow.emit(ModelDeleted(model_id=model_id, name="twice", deleted_at=datetime.now(timezone.utc)))
    conn = await connect(infra.database_url)
    try:
        async def audited() -> int:
            return await conn.fetchval("SELECT count(*) FROM audit.log WHERE event_id = $1", envelope.id)

        await eventually(audited)
        # forget that it was published: the relay sends it again, as after a crash
        async with TopicWatcher(system.kafka_bootstrap, topics.MODELS) as watcher:
            await conn.execute("UPDATE registry.outbox SET published_at = NULL WHERE event_id = $1", envelope.id)
            system.services["registry"].app.state.runtime.relay.wake()
            await eventually(lambda: _published(conn, envelope.id))
            copies = []
            await watcher.wait_for(lambda r: (copies.append(r) if header(r, "ce_id") == str(envelope.id) else None) or len(copies) >= 2)
        # and a later event on the same partition proves the consumer got past the duplicate
        async with UnitOfWork(pool, "registry", source="registry", actor="tests") as uow:
            later = await uow.emit(ModelDeleted(model_id=model_id, name="later", deleted_at=datetime.now(timezone.utc)))
        await eventually(lambda: conn.fetchval("SELECT count(*) FROM audit.log WHERE event_id = $1", later.id))
        assert await audited() == 1
    finally:
        await conn.close()


async def _published(conn, event_id) -> bool:
    return await conn.fetchval("SELECT published_at IS NOT NULL FROM registry.outbox WHERE event_id = $1", event_id)


async def test_invalid_events_go_to_the_dead_letter_topic_and_the_consumer_moves_on(system, infra):
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    marker = uuid.uuid4().hex
    try:
        async with TopicWatcher(system.kafka_bootstrap, topics.dead_letters("audit")) as dlq:
            await producer.send_and_wait(topics.MODELS, key=b"k", value=b"not json " + marker.encode(), headers=[
                ("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()), ("ce_source", b"tests"),
                ("ce_type", b"ModelRegistered"), ("ce_time", datetime.now(timezone.utc).isoformat().encode())])
            await producer.send_and_wait(topics.MODELS, key=b"k", value=b'{"no": "headers"}')
            dead = await dlq.wait_for(lambda r: marker.encode() in r.value)
            assert "body is not JSON" in header(dead, "dlq_reason")
            assert header(dead, "dlq_topic") == topics.MODELS
            missing = await dlq.wait_for(lambda r: r.value == b'{"no": "headers"}')
            assert "missing CloudEvents header" in header(missing, "dlq_reason")
        async with system.admin as api:
            model = (await api.post("/api/v1/models", json={"name": f"after-dlq-{marker[:8]}", "type": "other"})).json()

            async def recorded():
                return (await api.get("/api/v1/audit", params={"model_id": model["model_id"]})).json()["entries"]

            await eventually(recorded)
    finally:
        await producer.stop()
