"""Kafka set-up: the FastStream broker for subscribers, a plain aiokafka producer for the outbox relay
(exact CloudEvents headers, explicit acks), and topic creation.

Tansu, the embedded broker, does not implement the idempotent producer, so idempotence is off and
exactly-once effects come from the outbox and the inbox instead.
"""
from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

log = logging.getLogger(__name__)


def make_broker(bootstrap: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        enable_idempotence=False,
        # new topics are found quickly by pattern subscribers (the audit log subscribes to cairn.*)
        metadata_max_age_ms=5_000,
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
    )


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=False,
        acks="all",
        linger_ms=1,
        request_timeout_ms=15_000,
    )


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create the topics that do not exist yet (idempotent; safe when several services race)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
