"""What a service process holds while it runs: database pool, Kafka producer and relay, the FastStream
broker with its subscribers. ``ServiceRuntime`` opens them in order in the FastAPI lifespan and closes
them in reverse; the service's routes and handlers receive it as their dependency container."""
from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from libs.events import topics as topic_names
from libs.kit.broker import ensure_topics, make_broker, make_producer
from libs.kit.consumer import EventConsumer
from libs.kit.db import connect, create_pool
from libs.kit.migrate import migrate
from libs.kit.relay import OutboxRelay
from libs.kit.settings import ServiceSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    """Resources of one service process. Create it, register consumers with ``consumer()``, then ``start()``."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        schema: str,
        migrations: Path,
        outbox: bool = True,
        inbox: bool = False,
    ) -> None:
        self.settings = settings
        self.name = name
        self.schema = schema
        self.migrations = migrations
        self.kit = tuple(part for part, on in (("outbox", outbox), ("inbox", inbox)) if on)
        self.dsn = settings.database_url.get_secret_value()
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.producer: AIOKafkaProducer = None  # type: ignore[assignment]  # needs the running loop
        self.broker: KafkaBroker = make_broker(settings.kafka_bootstrap, name)
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self._stack = AsyncExitStack()
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    def consumer(self, group: str) -> EventConsumer:
        """A consumer group of this service; call ``.on(...)`` then ``subscribe_later(...)``."""
        c = EventConsumer(group=group, schema=self.schema, source=self.name)
        self.consumers.append(c)
        return c

    def subscribe(self, consumer: EventConsumer, *, topics: list[str] | None = None, pattern: str | None = None) -> None:
        consumer.subscribe(self.broker, topics=topics, pattern=pattern)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run after the pool, producer and relay are up, before consumers start."""
        self._on_start.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run at shutdown, before the pool closes."""
        self._on_stop.append(hook)

    async def migrate(self) -> list[str]:
        conn = await connect(self.dsn)
        try:
            return await migrate(conn, self.schema, self.migrations, kit=self.kit)
        finally:
            await conn.close()

    async def start(self) -> None:
        await self.migrate()
        self.pool = await create_pool(self.dsn, max_size=self.settings.db_pool_max)
        self._stack.push_async_callback(self.pool.close)
        for hook in self._on_stop:
            self._stack.push_async_callback(hook)
        self.producer = make_producer(self.settings.kafka_bootstrap, self.name)
        for c in self.consumers:
            c.bind(self.pool, self.producer)
        await ensure_topics(
            self.settings.kafka_bootstrap,
            [*topic_names.DOMAIN_TOPICS, *(topic_names.dead_letters(c.group) for c in self.consumers)],
            self.settings.topic_partitions,
        )
        await self.producer.start()
        self._stack.push_async_callback(self.producer.stop)
        if "outbox" in self.kit:
            self.relay = OutboxRelay(
                self.dsn,
                self.pool,
                self.schema,
                self.producer,
                retention=timedelta(hours=self.settings.outbox_retention_hours),
            )
            self.relay.start()
            self._stack.push_async_callback(self.relay.stop)
        for hook in self._on_start:
            await hook()
        if self.consumers:
            await self.broker.start()
            self._stack.push_async_callback(self.broker.stop)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def check_ready(self) -> dict[str, str]:
        """Readiness of this process's dependencies: database and broker."""
        status: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), 2)
            status["database"] = "ok"
        except Exception as exc:  # readiness reports, it does not raise
            status["database"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2)
            status["broker"] = "ok"
        except Exception as exc:
            status["broker"] = f"error: {type(exc).__name__}"
        return status
