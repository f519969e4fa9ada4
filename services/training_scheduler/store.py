"""SQL for the training schema. Every statement is parameterised; asyncpg prepares and caches them."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from libs.events.base import Event
from libs.events.envelope import Envelope, child_traceparent
from libs.events.training import TrainingSpec
from libs.kit.uow import UnitOfWork
from services.training_scheduler.domain import Job, JobState

SCHEMA = "training"

_COLUMNS = (
    "id, model_id, pool, state, spec, max_attempts, attempt, failures, lease_id, worker, device, heartbeat_at,"
    " next_attempt_at, dispatched_at, checkpoint_epoch, progress, result, last_error, cancel_reason, created_by,"
    " created_at, updated_at, started_at, finished_at"
)

INSERT = f"""
INSERT INTO training.jobs ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
"""
SAVE = """
UPDATE training.jobs
   SET state = $2, attempt = $3, failures = $4, lease_id = $5, worker = $6, device = $7, heartbeat_at = $8,
       next_attempt_at = $9, dispatched_at = $10, checkpoint_epoch = $11, progress = $12, result = $13,
       last_error = $14, cancel_reason = $15, updated_at = $16, started_at = $17, finished_at = $18
 WHERE id = $1
"""
GET = f"SELECT {_COLUMNS} FROM training.jobs WHERE id = $1"
LOCK = GET + " FOR UPDATE"
# (a) of the tick: a due retry, or a job message nobody claimed for too long
DUE_FOR_DISPATCH = f"""
SELECT {_COLUMNS} FROM training.jobs
 WHERE state = 'queued'
   AND (next_attempt_at <= $1 OR (next_attempt_at IS NULL AND dispatched_at <= $2))
 ORDER BY coalesce(next_attempt_at, dispatched_at)
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""
# (b) of the tick: running attempts whose worker stopped heartbeating
LEASE_EXPIRED = f"""
SELECT {_COLUMNS} FROM training.jobs
 WHERE state = 'running' AND heartbeat_at < $1
 ORDER BY heartbeat_at
 LIMIT $2
   FOR UPDATE SKIP LOCKED
"""
LIST_FOR_MODEL = f"""
SELECT {_COLUMNS}, count(*) OVER () AS total FROM training.jobs
 WHERE model_id = $1 AND ($2::text IS NULL OR state = $2)
 ORDER BY created_at DESC, id DESC
 LIMIT $3 OFFSET $4
"""
ACTIVE_FOR_MODEL = f"SELECT {_COLUMNS} FROM training.jobs WHERE model_id = $1 AND state IN ('queued', 'running') FOR UPDATE"
COUNT_FOR_MODEL = "SELECT count(*) FROM training.jobs WHERE model_id = $1 AND ($2::text IS NULL OR state = $2)"
INSERT_OUTBOX = "INSERT INTO training.outbox (event_id, topic, key, headers, body) VALUES ($1, $2, $3, $4, $5)"


def row_to_job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        model_id=row["model_id"],
        pool=row["pool"],
        spec=TrainingSpec.model_validate(row["spec"]),
        max_attempts=row["max_attempts"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        state=JobState(row["state"]),
        attempt=row["attempt"],
        failures=row["failures"],
        lease_id=row["lease_id"],
        worker=row["worker"],
        device=row["device"],
        heartbeat_at=row["heartbeat_at"],
        next_attempt_at=row["next_attempt_at"],
        dispatched_at=row["dispatched_at"],
        checkpoint_epoch=row["checkpoint_epoch"],
        progress=row["progress"],
        result=row["result"],
        last_error=row["last_error"],
        cancel_reason=row["cancel_reason"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {k: (str(v) if isinstance(v, UUID) else v) for k, v in value.items()}


async def insert(conn: asyncpg.Connection, j: Job) -> None:
    await conn.execute(
        INSERT, j.id, j.model_id, j.pool, j.state.value, j.spec.model_dump(mode="json"), j.max_attempts, j.attempt,
        j.failures, j.lease_id, j.worker, j.device, j.heartbeat_at, j.next_attempt_at, j.dispatched_at,
        j.checkpoint_epoch, _jsonable(j.progress), _jsonable(j.result), j.last_error, j.cancel_reason, j.created_by,
        j.created_at, j.updated_at, j.started_at, j.finished_at,
    )


async def save(conn: asyncpg.Connection, j: Job) -> None:
    await conn.execute(
        SAVE, j.id, j.state.value, j.attempt, j.failures, j.lease_id, j.worker, j.device, j.heartbeat_at,
        j.next_attempt_at, j.dispatched_at, j.checkpoint_epoch, _jsonable(j.progress), _jsonable(j.result),
        j.last_error, j.cancel_reason, j.updated_at, j.started_at, j.finished_at,
    )


async def get(conn: asyncpg.Connection | asyncpg.Pool, job_id: UUID, *, lock: bool = False) -> Job | None:
    row = await conn.fetchrow(LOCK if lock else GET, job_id)
    return row_to_job(row) if row else None


async def due_for_dispatch(conn: asyncpg.Connection, *, now: datetime, unclaimed_since: datetime, limit: int) -> list[Job]:
    return [row_to_job(r) for r in await conn.fetch(DUE_FOR_DISPATCH, now, unclaimed_since, limit)]


async def lease_expired(conn: asyncpg.Connection, *, heartbeat_before: datetime, limit: int) -> list[Job]:
    return [row_to_job(r) for r in await conn.fetch(LEASE_EXPIRED, heartbeat_before, limit)]


async def lock_active_for_model(conn: asyncpg.Connection, model_id: UUID) -> list[Job]:
    return [row_to_job(r) for r in await conn.fetch(ACTIVE_FOR_MODEL, model_id)]


async def list_for_model(
    pool: asyncpg.Pool, model_id: UUID, *, state: str | None, limit: int, offset: int
) -> tuple[int, list[Job]]:
    rows = await pool.fetch(LIST_FOR_MODEL, model_id, state, limit, offset)
    if not rows:
        return (await pool.fetchval(COUNT_FOR_MODEL, model_id, state) if offset else 0), []
    return rows[0]["total"], [row_to_job(r) for r in rows]


async def emit_to(uow: UnitOfWork, event: Event, *, topic: str, headers: dict[str, str] | None = None) -> Envelope:
    """``uow.emit`` for a topic other than ``event.topic`` (job messages, dead letters): the same outbox row,
    in the same transaction, with the topic (and extra headers) given here."""
    envelope = Envelope(data=event, source=uow.source, actor=uow.actor, traceparent=child_traceparent(uow.traceparent))
    await uow.conn.execute(
        INSERT_OUTBOX, envelope.id, topic, envelope.subject, {**envelope.headers(), **(headers or {})}, envelope.body()
    )
    uow.emitted.append(envelope)  # so the relay is woken at commit
    return envelope
