"""The outbox relay: publishes committed outbox rows to Kafka in order, then marks them published.

At-least-once: a crash between publish and mark republishes the rows, and consumers' inboxes drop
the duplicates. One relay per schema publishes at a time (a Postgres advisory lock elects it), so
a model's events leave in the order they were committed. It wakes on NOTIFY at commit, with a
periodic poll as a safety net, which keeps the commit→publish delay to a few milliseconds.
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from libs.kit.db import checked_schema, connect
from libs.kit.metrics import OUTBOX_LAG, OUTBOX_PUBLISHED
from libs.kit.uow import outbox_channel

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        schema: str,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self.schema = checked_schema(schema)
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lock_key = zlib.crc32(f"cairn.relay.{self.schema}".encode())
        self.published = 0
        self._fetch_sql = (
            f"SELECT seq, topic, key, headers, body, extract(epoch from now() - created_at) AS age FROM {self.schema}.outbox"
            " WHERE published_at IS NULL ORDER BY seq LIMIT $1"
        )
        self._mark_sql = f"UPDATE {self.schema}.outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"
        self._prune_sql = (
            f"DELETE FROM {self.schema}.outbox WHERE published_at IS NOT NULL AND published_at < now() - $1::interval"
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying", extra={"schema": self.schema})
                await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        """Hold the relay lock on a dedicated connection and publish until cancelled."""
        conn = await connect(self._dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                await asyncio.sleep(self._poll_interval)
            await conn.add_listener(outbox_channel(self.schema), lambda *_: self._wake.set())
            last_prune = 0.0
            loop = asyncio.get_running_loop()
            while True:
                self._wake.clear()
                while await self.publish_batch() == self._batch_size:
                    pass
                if loop.time() - last_prune > 3600:
                    await self._pool.execute(self._prune_sql, self._retention)
                    last_prune = loop.time()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            await conn.close()

    async def publish_batch(self) -> int:
        """Publish up to one batch of pending rows; returns how many were published."""
        rows = await self._pool.fetch(self._fetch_sql, self._batch_size)
        if not rows:
            return 0
        # send() only queues; the producer keeps per-partition order, and we wait for every ack
        futures = [
            await self._producer.send(
                row["topic"],
                value=bytes(row["body"]),
                key=row["key"].encode(),
                headers=[(k, v.encode()) for k, v in row["headers"].items()],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await self._pool.execute(self._mark_sql, [row["seq"] for row in rows])
        self.published += len(rows)
        OUTBOX_PUBLISHED.labels(self.schema).inc(len(rows))
        for row in rows:
            OUTBOX_LAG.labels(self.schema).observe(float(row["age"]))
        return len(rows)
