"""A batch of events shares one unit of work in the search-indexer: each model is read once, its events
applied in order, and every changed model written and re-indexed once before COMMIT. Driven through
the indexer's own consumer (``_on_batch``) with real Postgres and the real index, so the outcome does
not depend on how the broker happens to group messages."""
from __future__ import annotations

import uuid

import pytest

from libs.events.envelope import Envelope
from libs.kit.consumer import EventConsumer
from libs.kit.uow import UnitOfWork
from services.search_indexer import domain, store
from services.search_indexer.handlers import Indexer
from tests.integration.search.test_search_indexer import model_event, promoted, version_event
from tests.support.batches import Batch, Record

pytestmark = pytest.mark.asyncio


class CountingIndex:
    """The real index, counting the writes that reach it."""

    def __init__(self, index) -> None:
        self.index, self.upserts, self.documents = index, 0, 0

    async def upsert(self, documents) -> None:
        self.upserts += 1
        self.documents += len(documents)
        await self.index.upsert(documents)

    async def delete(self, model_ids) -> None:
        await self.index.delete(model_ids)


def _batch(events) -> tuple[list[bytes], Batch]:
    bodies, records = [], []
    for offset, event in enumerate(events):
        envelope = Envelope(data=event, source="tests", actor="tests")
        records.append(Record(headers=[(k, v.encode()) for k, v in envelope.headers().items()],
                              topic=envelope.topic, offset=offset))
        bodies.append(envelope.body())
    return bodies, Batch(tuple(records))


def _consumer(search_system, index: CountingIndex) -> EventConsumer:
    runtime = search_system.indexer.app.state.runtime
    real: Indexer = search_system.indexer.app.state.indexer
    indexer = Indexer(index, lambda: runtime.pool, real.history)  # type: ignore[arg-type]
    consumer = EventConsumer(group=f"search-batch-{uuid.uuid4().hex[:8]}", schema=store.SCHEMA, source="tests")
    consumer.bind(runtime.pool, None)  # type: ignore[arg-type]
    from libs.events.base import event_class
    consumer.on(*[c for c in (event_class(n) for n in domain.HANDLED) if c is not None])(indexer.on_event)
    return consumer


async def test_one_models_events_in_a_batch_cost_one_document_write(search_system, run_tag):
    index = CountingIndex(search_system.indexer.app.state.indexer.index)
    consumer = _consumer(search_system, index)
    first, second = uuid.uuid4(), uuid.uuid4()
    versions = [version_event(first, f"1.{i}.0", {"accuracy": round(0.5 + i / 100, 2)}, minutes=i) for i in range(20)]
    events = [model_event(first, f"batched-{run_tag.split(':')[1]}", run_tag), *versions, promoted(versions[7]),
              model_event(second, f"other-{run_tag.split(':')[1]}", run_tag)]
    await consumer._on_batch(*_batch(events))
    assert consumer.batches == 1 and consumer.processed == len(events)
    assert (index.upserts, index.documents) == (1, 2)  # 23 events, two models, one write
    body = await search_system.search(tag=run_tag, sort_by="name")
    rows = {row["model_id"]: row for row in body["models"]}
    assert set(rows) == {str(first), str(second)}
    # applied in order: the promoted version is the representative one, with its own metrics
    assert (rows[str(first)]["version"], rows[str(first)]["status"]) == ("1.7.0", "production")
    assert rows[str(first)]["metrics"] == {"accuracy": 0.57}
    # the projection holds the same state the document was made from
    async with search_system.indexer.app.state.runtime.pool.acquire() as conn:
        state = await conn.fetchval(f"SELECT state FROM {store.SCHEMA}.models WHERE model_id = $1", first)
    assert len(domain.ModelView.from_json(state).versions) == 20


async def test_a_before_commit_hook_that_fails_rolls_the_unit_of_work_back(search_system):
    pool = search_system.indexer.app.state.runtime.pool
    marker = uuid.uuid4()
    ran = []

    async def failing() -> None:
        ran.append("hook")
        raise RuntimeError("the index refused the write")

    with pytest.raises(RuntimeError):
        async with UnitOfWork(pool, store.SCHEMA, source="tests", actor="tests") as uow:
            await uow.conn.execute(f"INSERT INTO {store.SCHEMA}.inbox (consumer, event_id) VALUES ('hook-test', $1)",
                                   marker)
            uow.before_commit(failing)
    assert ran == ["hook"]
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.inbox WHERE event_id = $1", marker) == 0

    async with UnitOfWork(pool, store.SCHEMA, source="tests", actor="tests") as uow:
        await uow.conn.execute(f"INSERT INTO {store.SCHEMA}.inbox (consumer, event_id) VALUES ('hook-test', $1)", marker)

        async def sees_the_write() -> None:  # runs inside the transaction, before COMMIT
            ran.append(await uow.conn.fetchval(
                f"SELECT count(*) FROM {store.SCHEMA}.inbox WHERE event_id = $1", marker))

        uow.before_commit(sees_the_write)
    assert ran == ["hook", 1]
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.inbox WHERE event_id = $1", marker) == 1
