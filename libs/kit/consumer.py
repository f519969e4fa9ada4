"""Idempotent event consumers on FastStream.

Every subscriber has a ``group_id`` and ``AckPolicy.NACK_ON_ERROR``; the offset is committed only
after the effect is committed. Each handler runs in a unit of work whose first statement records the
event id in the inbox, so a redelivered event has no second effect. A message that can never succeed
(it fails validation, or the handler refuses it with a domain error) goes to the dead-letter topic
``cairn.dlq.<group>`` with the reason and is then acknowledged; a transient failure (database down)
is retried with back-off until it succeeds.

Messages arrive in batches (up to ``max_batch``, whatever the broker has ready, no waiting for more):
one transaction applies the whole batch, with one inbox statement for all its events, so a busy
consumer pays one commit per batch instead of one per event. If anything in a batch fails, the
transaction rolls back and the batch is applied again one event per transaction, exactly as a
single message is, so a refused event is dead-lettered alone and a transient failure is retried
alone. Offsets are acknowledged only after the batch's effects are committed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable, Union

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from libs.events import topics as topic_names
from libs.events.base import Event
from libs.events.envelope import Envelope, InvalidEvent, RawEvent, decode, decode_raw
from libs.kit.db import checked_schema
from libs.kit.errors import CairnError
from libs.kit.metrics import EVENT_AGE, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, EVENTS_DUPLICATE
from libs.kit.uow import UnitOfWork

log = logging.getLogger(__name__)

TypedHandler = Callable[[Envelope, UnitOfWork], Awaitable[None]]
RawHandler = Callable[[RawEvent, UnitOfWork], Awaitable[None]]


async def _raw_body(message) -> bytes:
    return message.body


class EventConsumer:
    """One consumer group: typed handlers per event type, or one raw handler for everything."""

    def __init__(
        self,
        *,
        group: str,
        schema: str,
        source: str,
        max_backoff: float = 5.0,
        max_batch: int = 100,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self.group = group
        self._pool: asyncpg.Pool | None = None
        self._dlq: AIOKafkaProducer | None = None
        self.schema = checked_schema(schema)
        self.source = source
        self._max_backoff = max_backoff
        self._max_batch = max_batch
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._handlers: dict[str, TypedHandler] = {}
        self._raw_handler: RawHandler | None = None
        self._inbox_sql = (
            f"INSERT INTO {self.schema}.inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1"
        )
        self._inbox_batch_sql = (
            f"INSERT INTO {self.schema}.inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])"
            " ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self.processed = 0
        self.dead_lettered = 0
        self.batches = 0  # transactions that applied more than one event

    def bind(self, pool: asyncpg.Pool, dlq_producer: AIOKafkaProducer) -> None:
        """Hand over the pool and producer once the process has opened them (before the broker starts)."""
        self._pool = pool
        self._dlq = dlq_producer

    def on(self, *event_classes: type[Event]) -> Callable[[TypedHandler], TypedHandler]:
        def register(handler: TypedHandler) -> TypedHandler:
            for cls in event_classes:
                self._handlers[cls.event_type] = handler
            return handler

        return register

    def on_any(self, handler: RawHandler) -> RawHandler:
        self._raw_handler = handler
        return handler

    def subscribe(self, broker: KafkaBroker, *, topics: list[str] | None = None, pattern: str | None = None) -> None:
        """Attach to the broker before it starts."""
        kwargs = dict(
            group_id=self.group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=2_000,
            title=f"{self.group}",
            decoder=_raw_body,  # the envelope decides how to read the body, not FastStream
            batch=True,
            max_records=self._max_batch,
            # how long an idle fetch may wait at the broker. Tansu notices new records only every ~100 ms
            # or so, so a shorter wait gains little latency here and costs the broker CPU while idle
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        if pattern:
            subscriber = broker.subscriber(pattern=pattern, **kwargs)
        else:
            subscriber = broker.subscriber(*(topics or []), **kwargs)
        subscriber(self._on_batch)

    async def _on_batch(self, bodies: list, msg: KafkaMessage) -> None:
        records = msg.raw_message
        ready: list[tuple[object, bytes, Union[Envelope, RawEvent]]] = []
        for record, body in zip(records, bodies):
            event = await self._decode(record, body)
            if event is not None:
                ready.append((record, body, event))
        if len(ready) == 1:
            await self._apply(*ready[0])
        elif ready:
            await self._apply_batch(ready)

    async def _decode(self, record, body: bytes) -> Union[Envelope, RawEvent, None]:
        """The event, or None when it is another consumer's business or was dead-lettered as invalid."""
        headers = list(record.headers or ())
        try:
            if self._raw_handler is not None:
                return dataclasses.replace(decode_raw(headers, body), topic=record.topic)
            raw = decode_raw(headers, body)
            if raw.type not in self._handlers:
                return None  # another consumer's business
            return decode(headers, body)
        except InvalidEvent as exc:
            await self._dead_letter(record, body, str(exc))
            return None

    async def _apply_batch(self, items: list[tuple[object, bytes, Union[Envelope, RawEvent]]]) -> None:
        """All events in one transaction; on any failure, one transaction per event instead."""
        assert self._pool is not None, "EventConsumer.bind(pool) was not called"
        try:
            async with UnitOfWork(self._pool, self.schema, source=self.source, actor="system") as uow:
                ids = list(dict.fromkeys(event.id for _, _, event in items))
                fresh = {row["event_id"] for row in await uow.conn.fetch(self._inbox_batch_sql, self.group, ids)}
                applied = []
                for _, _, event in items:
                    if event.id not in fresh:
                        continue
                    fresh.discard(event.id)  # a duplicate inside the batch is applied once
                    uow.actor, uow.traceparent = event.actor or "system", event.traceparent
                    await self._handle(event, uow)
                    applied.append(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.info("batch failed; applying its events one by one", extra={"group": self.group, "events": len(items)})
            for item in items:
                await self._apply(*item)
            return
        self.batches += 1
        self.processed += len(items)
        now = datetime.now(timezone.utc)
        for event in applied:
            EVENTS_CONSUMED.labels(self.source, self.group, event.type).inc()
            EVENT_AGE.labels(self.source, self.group).observe(max(0.0, (now - event.time).total_seconds()))
        if len(items) > len(applied):
            EVENTS_DUPLICATE.labels(self.source, self.group).inc(len(items) - len(applied))

    async def _handle(self, event: Union[Envelope, RawEvent], uow: UnitOfWork) -> None:
        if isinstance(event, Envelope):
            await self._handlers[event.type](event, uow)
        else:
            assert self._raw_handler is not None
            await self._raw_handler(event, uow)

    async def _apply(self, record, body: bytes, event: Union[Envelope, RawEvent]) -> None:
        delay = 0.05
        while True:
            try:
                assert self._pool is not None, "EventConsumer.bind(pool) was not called"
                async with UnitOfWork(
                    self._pool, self.schema, source=self.source, actor=event.actor or "system",
                    traceparent=event.traceparent,
                ) as uow:
                    fresh = await uow.conn.fetchval(self._inbox_sql, self.group, event.id)
                    if fresh:
                        await self._handle(event, uow)
                self.processed += 1
                if fresh:
                    EVENTS_CONSUMED.labels(self.source, self.group, event.type).inc()
                    EVENT_AGE.labels(self.source, self.group).observe(
                        max(0.0, (datetime.now(timezone.utc) - event.time).total_seconds()))
                else:
                    EVENTS_DUPLICATE.labels(self.source, self.group).inc()
                return
            except CairnError as exc:
                await self._dead_letter(record, body, f"{exc.code}: {exc.detail}")
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "event handling failed; retrying",
                    extra={"group": self.group, "event_id": str(event.id), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _dead_letter(self, record, body: bytes, reason: str) -> None:
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
        headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_consumer", self.group.encode()),
        ]
        assert self._dlq is not None, "EventConsumer.bind() was not called"
        await self._dlq.send_and_wait(
            topic_names.dead_letters(self.group), value=body, key=record.key, headers=headers
        )
        self.dead_lettered += 1
        EVENTS_DEAD_LETTERED.labels(self.source, self.group).inc()
        log.warning(
            "event dead-lettered",
            extra={"group": self.group, "topic": record.topic, "offset": record.offset, "reason": reason},
        )
