"""SQL for the lifecycle schema. Every statement is parameterised and schema-qualified; asyncpg
prepares and caches them per connection.

Locking: every change of a (model, environment) locks its ``slots`` row first (``lock_slot``), then
the active rollout row if any. The rollout ticker never waits for a lock (``SKIP LOCKED``), so it
cannot deadlock with requests."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.lifecycle.domain import Deployment, Rollout

SCHEMA = "lifecycle"

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class ModelRow:
    id: UUID
    name: str
    revision: int
    deleted_at: datetime | None


@dataclass(frozen=True)
class VersionRow:
    id: UUID
    model_id: UUID
    version: str
    artifact_sha256: str | None
    artifact_size: int | None
    artifact_storage: str | None
    created_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class Slot:
    model_id: UUID
    environment: str
    live_version_id: UUID | None
    revision: int
    updated_at: datetime


# -- projections ---------------------------------------------------------------------------------

_MODEL_COLUMNS = "id, name, revision, deleted_at"
UPSERT_MODEL = """
INSERT INTO lifecycle.models (id, name, revision) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, revision = EXCLUDED.revision, seen_at = now()
 WHERE lifecycle.models.revision < EXCLUDED.revision AND lifecycle.models.deleted_at IS NULL
"""
DELETE_MODEL = """
INSERT INTO lifecycle.models (id, name, revision, deleted_at) VALUES ($1, $2, 0, $3)
ON CONFLICT (id) DO UPDATE SET deleted_at = COALESCE(lifecycle.models.deleted_at, EXCLUDED.deleted_at)
"""
GET_MODEL = f"SELECT {_MODEL_COLUMNS} FROM lifecycle.models WHERE id = $1"
GET_LIVE_MODEL_BY_NAME = (
    f"SELECT {_MODEL_COLUMNS} FROM lifecycle.models WHERE lower(name) = lower($1) AND deleted_at IS NULL"
    " ORDER BY seen_at DESC LIMIT 1"
)

_VERSION_COLUMNS = "id, model_id, version, artifact_sha256, artifact_size, artifact_storage, created_at, deleted_at"
UPSERT_VERSION = """
INSERT INTO lifecycle.versions (id, model_id, version, artifact_sha256, artifact_size, artifact_storage, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET
    artifact_sha256  = COALESCE(EXCLUDED.artifact_sha256, lifecycle.versions.artifact_sha256),
    artifact_size    = COALESCE(EXCLUDED.artifact_size, lifecycle.versions.artifact_size),
    artifact_storage = COALESCE(EXCLUDED.artifact_storage, lifecycle.versions.artifact_storage)
"""
DELETE_VERSION = """
INSERT INTO lifecycle.versions (id, model_id, version, created_at, deleted_at) VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (id) DO UPDATE SET deleted_at = COALESCE(lifecycle.versions.deleted_at, EXCLUDED.deleted_at)
"""
GET_VERSION = f"SELECT {_VERSION_COLUMNS} FROM lifecycle.versions WHERE id = $1"
# a live row first; else the newest deleted one, so a rollback can say "was deleted"
FIND_VERSION = (
    f"SELECT {_VERSION_COLUMNS} FROM lifecycle.versions WHERE model_id = $1 AND version = $2"
    " ORDER BY (deleted_at IS NULL) DESC, created_at DESC LIMIT 1"
)

# -- stages --------------------------------------------------------------------------------------

GET_STAGE = "SELECT stage FROM lifecycle.stages WHERE version_id = $1 AND environment = $2"
SET_STAGE = """
INSERT INTO lifecycle.stages (version_id, environment, model_id, stage, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (version_id, environment) DO UPDATE SET stage = EXCLUDED.stage, updated_at = EXCLUDED.updated_at
"""
LIST_STAGES = """
SELECT v.id AS version_id, v.version, e.environment, COALESCE(s.stage, 'draft') AS stage,
       COALESCE(s.updated_at, v.created_at) AS updated_at
  FROM lifecycle.versions v
 CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS e(environment, position)
  LEFT JOIN lifecycle.stages s ON s.version_id = v.id AND s.environment = e.environment
 WHERE v.model_id = $1 AND v.deleted_at IS NULL
 ORDER BY v.created_at, v.version, e.position
"""
UNUSABLE_VERSIONS = """
SELECT id FROM lifecycle.versions WHERE model_id = $1 AND deleted_at IS NOT NULL
UNION
SELECT version_id FROM lifecycle.stages WHERE model_id = $1 AND environment = $2 AND stage = 'deprecated'
"""

# -- slots and history ---------------------------------------------------------------------------

_SLOT_COLUMNS = "model_id, environment, live_version_id, revision, updated_at"
ENSURE_SLOT = "INSERT INTO lifecycle.slots (model_id, environment) VALUES ($1, $2) ON CONFLICT DO NOTHING"
LOCK_SLOT = f"SELECT {_SLOT_COLUMNS} FROM lifecycle.slots WHERE model_id = $1 AND environment = $2 FOR UPDATE"
GET_SLOT = f"SELECT {_SLOT_COLUMNS} FROM lifecycle.slots WHERE model_id = $1 AND environment = $2"
SAVE_SLOT = """
UPDATE lifecycle.slots SET live_version_id = $3, revision = revision + 1, updated_at = $4
 WHERE model_id = $1 AND environment = $2
RETURNING revision
"""
BUMP_SLOT = """
UPDATE lifecycle.slots SET revision = revision + 1, updated_at = $3 WHERE model_id = $1 AND environment = $2
RETURNING revision
"""
SLOT_ENVIRONMENTS = "SELECT environment FROM lifecycle.slots WHERE model_id = $1 ORDER BY environment"
LIVE_IN = "SELECT environment FROM lifecycle.slots WHERE model_id = $1 AND live_version_id = $2 ORDER BY environment"

_DEPLOYMENT_COLUMNS = "version_id, version, environment, started_at, ended_at, reason, actor, end_reason"
END_DEPLOYMENT = """
UPDATE lifecycle.deployments SET ended_at = $3, end_reason = $4
 WHERE model_id = $1 AND environment = $2 AND ended_at IS NULL
"""
START_DEPLOYMENT = """
INSERT INTO lifecycle.deployments (model_id, environment, version_id, version, started_at, reason, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
HISTORY = f"""
SELECT {_DEPLOYMENT_COLUMNS} FROM lifecycle.deployments
 WHERE model_id = $1 AND ($2::text IS NULL OR environment = $2)
 ORDER BY id DESC LIMIT $3
"""

# -- rollouts ------------------------------------------------------------------------------------

_ROLLOUT_SELECT = """
r.id AS r_id, r.model_id AS r_model_id, r.environment AS r_environment, r.kind AS r_kind, r.status AS r_status,
r.stable_version_id AS r_stable_version_id, r.stable_version AS r_stable_version,
r.candidate_version_id AS r_candidate_version_id, r.candidate_version AS r_candidate_version,
r.steps AS r_steps, r.step AS r_step, r.step_interval_s AS r_step_interval_s, r.next_step_at AS r_next_step_at,
r.reason AS r_reason, r.actor AS r_actor, r.command_id AS r_command_id, r.strategy AS r_strategy,
r.created_at AS r_created_at, r.updated_at AS r_updated_at, r.finished_at AS r_finished_at,
cv.artifact_sha256 AS r_candidate_sha256, cv.artifact_size AS r_candidate_size
"""
_ROLLOUT_FROM = "lifecycle.rollouts r LEFT JOIN lifecycle.versions cv ON cv.id = r.candidate_version_id"
INSERT_ROLLOUT = """
INSERT INTO lifecycle.rollouts (id, model_id, environment, kind, status, stable_version_id, stable_version,
    candidate_version_id, candidate_version, steps, step, step_interval_s, next_step_at, reason, actor,
    command_id, strategy, created_at, updated_at, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
"""
SAVE_ROLLOUT = """
UPDATE lifecycle.rollouts SET status = $2, step = $3, next_step_at = $4, updated_at = $5, finished_at = $6
 WHERE id = $1
"""
GET_ROLLOUT = f"SELECT {_ROLLOUT_SELECT} FROM {_ROLLOUT_FROM} WHERE r.id = $1"
ACTIVE_ROLLOUT = (
    f"SELECT {_ROLLOUT_SELECT} FROM {_ROLLOUT_FROM}"
    " WHERE r.model_id = $1 AND r.environment = $2 AND r.status IN ('started', 'progressing')"
)
LIST_ROLLOUTS = f"""
SELECT {_ROLLOUT_SELECT} FROM {_ROLLOUT_FROM}
 WHERE r.model_id = $1 AND ($2::text IS NULL OR r.environment = $2)
   AND ($3::text[] IS NULL OR r.status = ANY($3::text[]))
 ORDER BY r.created_at DESC LIMIT $4
"""
#: One due rollout and its slot, locked; rows another process holds are skipped, never waited for.
PICK_DUE_ROLLOUT = """
SELECT r.id FROM lifecycle.rollouts r
  JOIN lifecycle.slots s ON s.model_id = r.model_id AND s.environment = r.environment
 WHERE r.status IN ('started', 'progressing') AND r.next_step_at IS NOT NULL AND r.next_step_at <= $1
 ORDER BY r.next_step_at
 LIMIT 1
   FOR UPDATE OF s, r SKIP LOCKED
"""

# -- commands ------------------------------------------------------------------------------------

RECORD_COMMAND = """
INSERT INTO lifecycle.commands (command_id, model_id, environment, status, event_type, outcome, at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, event_type = EXCLUDED.event_type,
    outcome = EXCLUDED.outcome, at = EXCLUDED.at
"""
GET_COMMAND = (
    "SELECT command_id, model_id, environment, status, event_type, outcome, at FROM lifecycle.commands"
    " WHERE command_id = $1"
)

# -- the production view: one query ---------------------------------------------------------------

PRODUCTION_VIEW = f"""
SELECT s.model_id, m.name AS model_name, s.environment, s.revision, s.updated_at,
       v.id AS version_id, v.version, v.artifact_sha256, v.artifact_size,
       {_ROLLOUT_SELECT}
  FROM lifecycle.slots s
  JOIN lifecycle.versions v ON v.id = s.live_version_id
  LEFT JOIN lifecycle.models m ON m.id = s.model_id
  LEFT JOIN lifecycle.rollouts r
         ON r.model_id = s.model_id AND r.environment = s.environment AND r.status IN ('started', 'progressing')
  LEFT JOIN lifecycle.versions cv ON cv.id = r.candidate_version_id
 WHERE s.model_id = $1 AND s.environment = $2
"""


# -- functions -----------------------------------------------------------------------------------

def _model(row: asyncpg.Record | None) -> ModelRow | None:
    return ModelRow(row["id"], row["name"], row["revision"], row["deleted_at"]) if row else None


def _version(row: asyncpg.Record | None) -> VersionRow | None:
    if row is None:
        return None
    return VersionRow(
        id=row["id"], model_id=row["model_id"], version=row["version"], artifact_sha256=row["artifact_sha256"],
        artifact_size=row["artifact_size"], artifact_storage=row["artifact_storage"],
        created_at=row["created_at"], deleted_at=row["deleted_at"],
    )


def row_to_rollout(row: asyncpg.Record) -> Rollout:
    return Rollout(
        id=row["r_id"], model_id=row["r_model_id"], environment=row["r_environment"], kind=row["r_kind"],
        stable_version_id=row["r_stable_version_id"], stable_version=row["r_stable_version"],
        candidate_version_id=row["r_candidate_version_id"], candidate_version=row["r_candidate_version"],
        steps=list(row["r_steps"]), step=row["r_step"], status=row["r_status"],
        step_interval_s=row["r_step_interval_s"], next_step_at=row["r_next_step_at"], reason=row["r_reason"],
        actor=row["r_actor"], command_id=row["r_command_id"], created_at=row["r_created_at"],
        updated_at=row["r_updated_at"], finished_at=row["r_finished_at"], strategy=row["r_strategy"],
    )


def candidate_artifact(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["r_candidate_sha256"] is None:
        return None
    return {"sha256": row["r_candidate_sha256"], "size": row["r_candidate_size"]}


async def upsert_model(conn: Conn, model_id: UUID, name: str, revision: int) -> None:
    await conn.execute(UPSERT_MODEL, model_id, name, revision)


async def delete_model(conn: Conn, model_id: UUID, name: str, at: datetime) -> None:
    await conn.execute(DELETE_MODEL, model_id, name, at)


async def get_model(conn: Conn, model_id: UUID) -> ModelRow | None:
    return _model(await conn.fetchrow(GET_MODEL, model_id))


async def get_live_model_by_name(conn: Conn, name: str) -> ModelRow | None:
    return _model(await conn.fetchrow(GET_LIVE_MODEL_BY_NAME, name))


async def upsert_version(
    conn: Conn, *, version_id: UUID, model_id: UUID, version: str, artifact: dict[str, Any] | None, created_at: datetime
) -> None:
    artifact = artifact or {}
    await conn.execute(
        UPSERT_VERSION, version_id, model_id, version, artifact.get("sha256"), artifact.get("size"),
        artifact.get("storage"), created_at,
    )


async def delete_version(conn: Conn, *, version_id: UUID, model_id: UUID, version: str, at: datetime) -> None:
    await conn.execute(DELETE_VERSION, version_id, model_id, version, at)


async def get_version(conn: Conn, version_id: UUID) -> VersionRow | None:
    return _version(await conn.fetchrow(GET_VERSION, version_id))


async def find_version(conn: Conn, model_id: UUID, ref: str) -> VersionRow | None:
    """By version string, or by version id when ``ref`` is a UUID (deleted rows included, live first)."""
    try:
        row = await get_version(conn, UUID(ref))
        if row is not None and row.model_id == model_id:
            return row
    except ValueError:
        pass
    return _version(await conn.fetchrow(FIND_VERSION, model_id, ref))


async def get_stage(conn: Conn, version_id: UUID, environment: str) -> str:
    return await conn.fetchval(GET_STAGE, version_id, environment) or "draft"


async def set_stage(conn: Conn, version: VersionRow, environment: str, stage: str, at: datetime) -> None:
    await conn.execute(SET_STAGE, version.id, environment, version.model_id, stage, at)


async def list_stages(conn: Conn, model_id: UUID, environments: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_STAGES, model_id, environments)


async def unusable_versions(conn: Conn, model_id: UUID, environment: str) -> set[UUID]:
    return {r["id"] for r in await conn.fetch(UNUSABLE_VERSIONS, model_id, environment)}


def _slot(row: asyncpg.Record | None) -> Slot | None:
    return Slot(row["model_id"], row["environment"], row["live_version_id"], row["revision"], row["updated_at"]) if row else None


async def lock_slot(conn: asyncpg.Connection, model_id: UUID, environment: str) -> Slot:
    await conn.execute(ENSURE_SLOT, model_id, environment)
    slot = _slot(await conn.fetchrow(LOCK_SLOT, model_id, environment))
    assert slot is not None
    return slot


async def get_slot(conn: Conn, model_id: UUID, environment: str) -> Slot | None:
    return _slot(await conn.fetchrow(GET_SLOT, model_id, environment))


async def save_slot(conn: asyncpg.Connection, model_id: UUID, environment: str, live: UUID | None, at: datetime) -> int:
    """Record what is live (or that the weights changed); returns the new revision."""
    return await conn.fetchval(SAVE_SLOT, model_id, environment, live, at)


async def bump_slot(conn: asyncpg.Connection, model_id: UUID, environment: str, at: datetime) -> int:
    """The live version stays, its traffic weights changed; returns the new revision."""
    return await conn.fetchval(BUMP_SLOT, model_id, environment, at)


async def slot_environments(conn: Conn, model_id: UUID) -> list[str]:
    return [r["environment"] for r in await conn.fetch(SLOT_ENVIRONMENTS, model_id)]


async def live_in(conn: Conn, model_id: UUID, version_id: UUID) -> list[str]:
    return [r["environment"] for r in await conn.fetch(LIVE_IN, model_id, version_id)]


async def end_deployment(conn: Conn, model_id: UUID, environment: str, at: datetime, reason: str) -> None:
    await conn.execute(END_DEPLOYMENT, model_id, environment, at, reason)


async def start_deployment(
    conn: Conn, model_id: UUID, environment: str, version: VersionRow, at: datetime, reason: str, actor: str
) -> None:
    await conn.execute(START_DEPLOYMENT, model_id, environment, version.id, version.version, at, reason, actor)


async def history(conn: Conn, model_id: UUID, environment: str | None, limit: int = 1000) -> list[Deployment]:
    rows = await conn.fetch(HISTORY, model_id, environment, limit)
    return [Deployment(**dict(r)) for r in rows]


async def insert_rollout(conn: Conn, r: Rollout) -> None:
    await conn.execute(
        INSERT_ROLLOUT, r.id, r.model_id, r.environment, r.kind, r.status, r.stable_version_id, r.stable_version,
        r.candidate_version_id, r.candidate_version, r.steps, r.step, r.step_interval_s, r.next_step_at,
        r.reason, r.actor, r.command_id, r.strategy, r.created_at, r.updated_at, r.finished_at,
    )


async def save_rollout(conn: Conn, r: Rollout) -> None:
    await conn.execute(SAVE_ROLLOUT, r.id, r.status, r.step, r.next_step_at, r.updated_at, r.finished_at)


async def get_rollout(conn: Conn, rollout_id: UUID, *, lock: bool = False) -> Rollout | None:
    row = await conn.fetchrow(GET_ROLLOUT + (" FOR UPDATE OF r" if lock else ""), rollout_id)
    return row_to_rollout(row) if row else None


async def get_rollout_row(conn: Conn, rollout_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ROLLOUT, rollout_id)


async def active_rollout(conn: Conn, model_id: UUID, environment: str, *, lock: bool = False) -> Rollout | None:
    row = await conn.fetchrow(ACTIVE_ROLLOUT + (" FOR UPDATE OF r" if lock else ""), model_id, environment)
    return row_to_rollout(row) if row else None


async def list_rollouts(
    conn: Conn, model_id: UUID, environment: str | None, statuses: list[str] | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_ROLLOUTS, model_id, environment, statuses, limit)


async def pick_due_rollout(conn: asyncpg.Connection, now: datetime) -> UUID | None:
    return await conn.fetchval(PICK_DUE_ROLLOUT, now)


async def record_command(
    conn: Conn, command_id: UUID, model_id: UUID, environment: str, status: str, event_type: str,
    outcome: dict[str, Any], at: datetime,
) -> None:
    await conn.execute(RECORD_COMMAND, command_id, model_id, environment, status, event_type, outcome, at)


async def get_command(conn: Conn, command_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_COMMAND, command_id)


async def production_row(conn: Conn, model_id: UUID, environment: str) -> asyncpg.Record | None:
    return await conn.fetchrow(PRODUCTION_VIEW, model_id, environment)


# -- promotion policies and the measurements they judge --------------------------------------------

GET_POLICY = "SELECT policy FROM lifecycle.policies WHERE model_id = $1"
SET_POLICY = """
INSERT INTO lifecycle.policies (model_id, policy, updated_by, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (model_id) DO UPDATE SET policy = EXCLUDED.policy, updated_by = EXCLUDED.updated_by,
    updated_at = EXCLUDED.updated_at
"""
RECORD_EVALUATION = """
INSERT INTO lifecycle.evaluations (evaluation_id, version_id, model_id, version, metrics, at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (evaluation_id) DO NOTHING
"""
LATEST_METRICS = "SELECT metrics FROM lifecycle.evaluations WHERE version_id = $1 ORDER BY at DESC LIMIT 1"


async def get_policy(conn: Conn, model_id: UUID) -> dict[str, Any] | None:
    return await conn.fetchval(GET_POLICY, model_id)


async def set_policy(conn: Conn, model_id: UUID, policy: dict[str, Any], actor: str, at: datetime) -> None:
    await conn.execute(SET_POLICY, model_id, policy, actor, at)


async def record_evaluation(conn: Conn, version_id: UUID, model_id: UUID, version: str, evaluation_id: UUID,
                            metrics: dict[str, float], at: datetime) -> None:
    await conn.execute(RECORD_EVALUATION, evaluation_id, version_id, model_id, version, metrics, at)


async def latest_metrics(conn: Conn, version_id: UUID) -> dict[str, float] | None:
    return await conn.fetchval(LATEST_METRICS, version_id)
