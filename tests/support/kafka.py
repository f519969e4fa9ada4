"""Reading topics in tests: wait for messages with a timeout, never sleep."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord


class TopicWatcher:
    """A consumer from the start of the given topics; ``wait_for(predicate)`` returns the first match."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        self.seen: list[ConsumerRecord] = []

    async def __aenter__(self) -> "TopicWatcher":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def wait_for(self, predicate: Callable[[ConsumerRecord], bool], timeout: float = 20) -> ConsumerRecord:
        for record in self.seen:
            if predicate(record):
                return record
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self._consumer.getmany(timeout_ms=200)
            fresh = [record for records in batch.values() for record in records]
            self.seen.extend(fresh)  # keep the whole batch: a later wait may look for the rest
            for record in fresh:
                if predicate(record):
                    return record
        raise AssertionError(f"no matching message within {timeout}s; saw {len(self.seen)} messages")


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


async def eventually(check: Callable, timeout: float = 15, interval: float = 0.05):
    """Poll an async check until it returns a truthy value; the value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
