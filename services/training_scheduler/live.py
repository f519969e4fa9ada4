"""Live progress of jobs in Redis, which the gateway serves as Server-Sent Events.

One stream per job, ``cairn:job:<job_id>:events``; each entry has one field, ``data``: a JSON object with
``type`` (queued, started, progress, failed, released, completed, cancelled), ``state`` (the job's state
after it), ``attempt``, ``ts`` and the type's own fields (epoch, losses, metrics, samples_per_second...).
Streams are capped at about ``maxlen`` entries and expire a day after their last entry. Entries are
written after the job change is committed; Redis being down never fails a request (the events on Kafka
are the record, this is a view).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import orjson

log = logging.getLogger(__name__)


def stream_key(job_id: object) -> str:
    return f"cairn:job:{job_id}:events"


class LiveProgress:
    def __init__(self, redis, *, ttl_s: int, maxlen: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.maxlen = maxlen

    async def publish(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        if not entries:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    key = stream_key(entry["job_id"])
                    pipe.xadd(key, {"data": orjson.dumps(entry)}, maxlen=self.maxlen, approximate=True)
                    pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except Exception as exc:  # a view, not the record: never fail the request for it
            log.warning("live progress not written: %s", exc, extra={"entries": len(entries)})

    async def ping(self) -> str:
        try:
            await self.redis.ping()
            return "ok"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
