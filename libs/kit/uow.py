"""The unit of work: one asyncpg transaction; events emitted inside it become outbox rows before COMMIT.

    async with UnitOfWork(pool, schema, source="registry", actor=actor) as uow:
        await store.insert_model(uow.conn, ...)
        await uow.emit(ModelRegistered(...))
    # committed: the state change and its events, or neither
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import asyncpg

from libs.events.base import Event
from libs.events.envelope import Envelope, child_traceparent
from libs.kit.db import checked_schema


class UnitOfWork:
    """One transaction on one connection, with an outbox to emit events into."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        source: str,
        actor: str,
        traceparent: str | None = None,
    ) -> None:
        self._pool = pool
        self.schema = checked_schema(schema)
        self.source = source
        self.actor = actor
        self.traceparent = traceparent
        self.conn: asyncpg.Connection = None  # type: ignore[assignment]
        self._tx: Any = None
        self.emitted: list[Envelope] = []
        #: State a handler keeps for the rest of this transaction (a consumer's batch shares one unit of
        #: work), keyed by whoever owns it; and work to do once, just before COMMIT (see ``before_commit``).
        self.scratch: dict[Any, Any] = {}
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        # one round trip: the row, and a NOTIFY that Postgres delivers at COMMIT (so the relay wakes
        # only for committed rows) and sends once per transaction however many events it holds
        self._insert_sql = (
            f"WITH inserted AS (INSERT INTO {self.schema}.outbox (event_id, topic, key, headers, body)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING 1) SELECT pg_notify($6, '') FROM inserted"
        )
        self._channel = outbox_channel(self.schema)

    async def __aenter__(self) -> "UnitOfWork":
        self.conn = await self._pool.acquire()
        self._tx = self.conn.transaction()
        await self._tx.start()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    for hook in self._before_commit:
                        await hook()
                except BaseException:
                    await self._tx.rollback()
                    raise
                await self._tx.commit()
            else:
                await self._tx.rollback()
        finally:
            await self._pool.release(self.conn)

    def before_commit(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` inside the transaction right before COMMIT, in registration order; if it raises,
        the whole unit of work rolls back. Lets a batch's handlers write once what each event changed."""
        self._before_commit.append(hook)

    async def emit(self, event: Event, *, actor: str | None = None) -> Envelope:
        """Write ``event`` to the outbox inside this transaction; returns its envelope."""
        envelope = Envelope(
            data=event,
            source=self.source,
            actor=actor or self.actor,
            traceparent=child_traceparent(self.traceparent),
        )
        await self.conn.execute(
            self._insert_sql,
            envelope.id,
            envelope.topic,
            envelope.subject,
            envelope.headers(),
            envelope.body(),
            self._channel,
        )
        self.emitted.append(envelope)
        return envelope


def outbox_channel(schema: str) -> str:
    return f"{schema}_outbox"
