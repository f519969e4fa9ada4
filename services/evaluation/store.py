"""SQL for the evaluation schema. Every statement is parameterised; asyncpg prepares and caches them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

SCHEMA = "evaluation"
#: NOTIFY channel that wakes the workers when a run is queued (delivered at COMMIT).
RUNS_CHANNEL = "evaluation_runs"

Conn = asyncpg.Connection | asyncpg.Pool

# -- versions projection ---------------------------------------------------------------------------

_VERSION_COLUMNS = "id, model_id, version, artifact_sha256, artifact_size, artifact_storage, created_at, deleted_at"

UPSERT_VERSION = """
INSERT INTO evaluation.versions AS v
       (id, model_id, version, artifact_sha256, artifact_size, artifact_storage, created_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE
   SET model_id = EXCLUDED.model_id,
       version = EXCLUDED.version,
       artifact_sha256 = COALESCE(EXCLUDED.artifact_sha256, v.artifact_sha256),
       artifact_size = COALESCE(EXCLUDED.artifact_size, v.artifact_size),
       artifact_storage = COALESCE(EXCLUDED.artifact_storage, v.artifact_storage),
       created_at = COALESCE(v.created_at, EXCLUDED.created_at),
       deleted_at = COALESCE(EXCLUDED.deleted_at, v.deleted_at),
       seen_at = now()
"""
GET_VERSION = f"SELECT {_VERSION_COLUMNS} FROM evaluation.versions WHERE id = $1"
FIND_LIVE_VERSION = f"""
SELECT {_VERSION_COLUMNS} FROM evaluation.versions
 WHERE model_id = $1 AND version = $2 AND deleted_at IS NULL
 ORDER BY seen_at DESC LIMIT 1
"""


@dataclass(frozen=True)
class VersionRow:
    id: UUID
    model_id: UUID
    version: str
    artifact_sha256: str | None
    artifact_size: int | None
    artifact_storage: str | None
    created_at: datetime | None
    deleted_at: datetime | None


def _version(row: asyncpg.Record | None) -> VersionRow | None:
    return VersionRow(**dict(row)) if row else None


async def upsert_version(
    conn: Conn, *, version_id: UUID, model_id: UUID, version: str, artifact: Any = None,
    created_at: datetime | None = None, deleted_at: datetime | None = None,
) -> None:
    """Record what an event (or the version service) says about a version; never forgets an artifact."""
    await conn.execute(
        UPSERT_VERSION, version_id, model_id, version,
        artifact.sha256 if artifact else None, artifact.size if artifact else None,
        artifact.storage if artifact else None, created_at, deleted_at,
    )


async def get_version(conn: Conn, version_id: UUID) -> VersionRow | None:
    return _version(await conn.fetchrow(GET_VERSION, version_id))


async def find_live_version(conn: Conn, model_id: UUID, version: str) -> VersionRow | None:
    return _version(await conn.fetchrow(FIND_LIVE_VERSION, model_id, version))


# -- evaluations (and their run queue) -------------------------------------------------------------

INSERT_RUN = """
INSERT INTO evaluation.evaluations
       (id, model_id, version, version_id, trigger, trigger_event_id, requested_dataset, requested_seed,
        state, priority, actor, traceparent, created_at, lease_owner, lease_until, started_at, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        CASE WHEN $14::text IS NULL THEN NULL ELSE now() + make_interval(secs => $15) END,
        CASE WHEN $14::text IS NULL THEN NULL ELSE now() END,
        CASE WHEN $14::text IS NULL THEN 0 ELSE 1 END)
ON CONFLICT (id) DO NOTHING
RETURNING *
"""
CLAIM_NEXT = """
UPDATE evaluation.evaluations AS e
   SET state = 'running', attempts = e.attempts + 1, lease_owner = $1,
       lease_until = now() + make_interval(secs => $2), started_at = now()
 WHERE e.id = (
       SELECT id FROM evaluation.evaluations
        WHERE (state = 'queued' AND not_before <= now()) OR (state = 'running' AND lease_until < now())
        ORDER BY priority DESC, created_at
        LIMIT 1
          FOR UPDATE SKIP LOCKED)
RETURNING *
"""
CLAIM_ONE = """
UPDATE evaluation.evaluations AS e
   SET state = 'running', attempts = e.attempts + 1, lease_owner = $1,
       lease_until = now() + make_interval(secs => $2), started_at = now()
 WHERE e.id = (
       SELECT id FROM evaluation.evaluations
        WHERE id = $3 AND (state = 'queued' OR (state = 'running' AND lease_until < now()))
          FOR UPDATE SKIP LOCKED)
RETURNING *
"""
RENEW_LEASE = """
UPDATE evaluation.evaluations SET lease_until = now() + make_interval(secs => $3)
 WHERE id = $1 AND lease_owner = $2 AND state = 'running'
"""
COMPLETE = """
UPDATE evaluation.evaluations
   SET state = 'completed', finished_at = $3, version_id = $4, artifact_sha256 = $5, model_type = $6,
       dataset = $7, dataset_seed = $8, dataset_hash = $9, split = $10, samples = $11, device = $12,
       metrics = $13, details = $14, config = $15, hyperparameters = $16, structure = $17,
       reason = NULL, lease_owner = NULL, lease_until = NULL,
       sync_state = 'pending', sync_next_at = $3
 WHERE id = $1 AND state = 'running' AND lease_owner = $2
"""
FAIL = """
UPDATE evaluation.evaluations
   SET state = 'failed', finished_at = $3, reason = $4, version_id = COALESCE($5, version_id),
       artifact_sha256 = COALESCE($6, artifact_sha256), lease_owner = NULL, lease_until = NULL
 WHERE id = $1 AND state = 'running' AND lease_owner = $2
"""
REQUEUE = """
UPDATE evaluation.evaluations
   SET state = 'queued', not_before = now() + make_interval(secs => $3), last_error = $4,
       attempts = attempts - $5, lease_owner = NULL, lease_until = NULL
 WHERE id = $1 AND state = 'running' AND lease_owner = $2
"""
GET_RUN = "SELECT * FROM evaluation.evaluations WHERE id = $1"
LIST_FOR_VERSION = """
SELECT * FROM evaluation.evaluations
 WHERE model_id = $1 AND version = $2
 ORDER BY created_at DESC, id
 LIMIT $3
"""
LATEST_COMPLETED = """
SELECT * FROM evaluation.evaluations
 WHERE model_id = $1 AND version = $2 AND state = 'completed' AND ($3::uuid IS NULL OR version_id = $3)
 ORDER BY finished_at DESC
 LIMIT 1
"""
ACTIVE_RUN = """
SELECT * FROM evaluation.evaluations
 WHERE model_id = $1 AND version = $2 AND state IN ('queued', 'running')
   AND requested_dataset IS NULL AND requested_seed IS NULL
 ORDER BY priority DESC, created_at
 LIMIT 1
"""
NOTIFY_RUNS = f"SELECT pg_notify('{RUNS_CHANNEL}', '')"


@dataclass(frozen=True)
class Run:
    """One evaluation row."""

    id: UUID
    model_id: UUID
    version: str
    version_id: UUID | None
    trigger: str
    trigger_event_id: UUID | None
    requested_dataset: str | None
    requested_seed: int | None
    state: str
    priority: int
    attempts: int
    not_before: datetime
    lease_owner: str | None
    lease_until: datetime | None
    actor: str
    traceparent: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    artifact_sha256: str | None
    model_type: str | None
    dataset: str | None
    dataset_seed: int | None
    dataset_hash: str | None
    split: str | None
    samples: int | None
    device: str | None
    metrics: dict[str, float] | None
    details: dict[str, Any] | None
    config: dict[str, Any] | None
    hyperparameters: dict[str, Any] | None
    structure: list[dict[str, Any]] | None
    reason: str | None
    last_error: str | None
    sync_state: str
    sync_attempts: int
    sync_next_at: datetime | None
    sync_error: str | None


def _run(row: asyncpg.Record | None) -> Run | None:
    return Run(**dict(row)) if row else None


async def insert_run(
    conn: Conn, *, evaluation_id: UUID, model_id: UUID, version: str, version_id: UUID | None, trigger: str,
    trigger_event_id: UUID | None, dataset: str | None, dataset_seed: int | None, priority: int, actor: str,
    traceparent: str | None, now: datetime, lease_owner: str | None = None, lease_s: float = 0.0,
) -> Run | None:
    """Queue a run (or, with ``lease_owner``, start it right away); None if that evaluation exists already."""
    state = "queued" if lease_owner is None else "running"
    return _run(await conn.fetchrow(
        INSERT_RUN, evaluation_id, model_id, version, version_id, trigger, trigger_event_id, dataset, dataset_seed,
        state, priority, actor, traceparent, now, lease_owner, lease_s,
    ))


async def notify_runs(conn: asyncpg.Connection) -> None:
    await conn.execute(NOTIFY_RUNS)


async def claim_next(conn: Conn, owner: str, lease_s: float) -> Run | None:
    return _run(await conn.fetchrow(CLAIM_NEXT, owner, lease_s))


async def claim_one(conn: Conn, evaluation_id: UUID, owner: str, lease_s: float) -> Run | None:
    return _run(await conn.fetchrow(CLAIM_ONE, owner, lease_s, evaluation_id))


async def renew_lease(conn: Conn, evaluation_id: UUID, owner: str, lease_s: float) -> bool:
    return await conn.execute(RENEW_LEASE, evaluation_id, owner, lease_s) == "UPDATE 1"


async def complete(
    conn: asyncpg.Connection, run: Run, owner: str, *, now: datetime, version_id: UUID, artifact_sha256: str,
    m: Any,
) -> bool:
    """Store a measurement; False when the run is no longer this owner's (its lease was taken over)."""
    status = await conn.execute(
        COMPLETE, run.id, owner, now, version_id, artifact_sha256, m.model_type, m.dataset, m.dataset_seed,
        m.dataset_hash, m.split, m.samples, m.device, m.metrics, m.details, m.config, m.hyperparameters, m.structure,
    )
    return status == "UPDATE 1"


async def fail(
    conn: asyncpg.Connection, run: Run, owner: str, *, now: datetime, reason: str,
    version_id: UUID | None, artifact_sha256: str | None,
) -> bool:
    return await conn.execute(FAIL, run.id, owner, now, reason, version_id, artifact_sha256) == "UPDATE 1"


async def requeue(conn: Conn, run: Run, owner: str, *, delay_s: float, error: str, refund: bool = False) -> bool:
    """Give a claimed run back to the queue; ``refund`` does not count this attempt (a graceful shutdown)."""
    return await conn.execute(REQUEUE, run.id, owner, delay_s, error, 1 if refund else 0) == "UPDATE 1"


async def get_run(conn: Conn, evaluation_id: UUID) -> Run | None:
    return _run(await conn.fetchrow(GET_RUN, evaluation_id))


async def list_for_version(conn: Conn, model_id: UUID, version: str, limit: int) -> list[Run]:
    return [Run(**dict(r)) for r in await conn.fetch(LIST_FOR_VERSION, model_id, version, limit)]


async def latest_completed(conn: Conn, model_id: UUID, version: str, version_id: UUID | None) -> Run | None:
    return _run(await conn.fetchrow(LATEST_COMPLETED, model_id, version, version_id))


async def active_run(conn: Conn, model_id: UUID, version: str) -> Run | None:
    """A queued or running evaluation of the version on its default data (the held-out training split)."""
    return _run(await conn.fetchrow(ACTIVE_RUN, model_id, version))


# -- metrics sync to the version service ------------------------------------------------------------

CLAIM_SYNC = """
UPDATE evaluation.evaluations SET sync_next_at = now() + make_interval(secs => $1)
 WHERE id IN (
       SELECT id FROM evaluation.evaluations
        WHERE sync_state = 'pending' AND sync_next_at <= now()
        ORDER BY sync_next_at
        LIMIT $2
          FOR UPDATE SKIP LOCKED)
RETURNING id, model_id, version, metrics, sync_attempts
"""
SYNC_DONE = """
UPDATE evaluation.evaluations SET sync_state = 'done', sync_attempts = sync_attempts + 1, sync_error = NULL,
       sync_next_at = NULL
 WHERE id = $1
"""
SYNC_RETRY = """
UPDATE evaluation.evaluations
   SET sync_attempts = sync_attempts + 1, sync_error = $2, sync_next_at = now() + make_interval(secs => $3)
 WHERE id = $1
"""
SYNC_FAILED = """
UPDATE evaluation.evaluations SET sync_state = 'failed', sync_attempts = sync_attempts + 1, sync_error = $2,
       sync_next_at = NULL
 WHERE id = $1
"""


async def claim_sync(conn: Conn, *, lease_s: float, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(CLAIM_SYNC, lease_s, limit)


async def sync_done(conn: Conn, evaluation_id: UUID) -> None:
    await conn.execute(SYNC_DONE, evaluation_id)


async def sync_retry(conn: Conn, evaluation_id: UUID, error: str, delay_s: float) -> None:
    await conn.execute(SYNC_RETRY, evaluation_id, error, delay_s)


async def sync_failed(conn: Conn, evaluation_id: UUID, error: str) -> None:
    await conn.execute(SYNC_FAILED, evaluation_id, error)


# -- comparisons -----------------------------------------------------------------------------------

INSERT_COMPARISON = """
INSERT INTO evaluation.comparisons (id, created_at, created_by, result, report) VALUES ($1, $2, $3, $4, $5)
"""
GET_COMPARISON = "SELECT id, created_at, created_by, result, report FROM evaluation.comparisons WHERE id = $1"


async def insert_comparison(
    conn: Conn, comparison_id: UUID, *, created_at: datetime, created_by: str, result: dict, report: dict,
) -> None:
    await conn.execute(INSERT_COMPARISON, comparison_id, created_at, created_by, result, report)


async def get_comparison(conn: Conn, comparison_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_COMPARISON, comparison_id)
