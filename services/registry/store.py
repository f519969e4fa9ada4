"""SQL for the registry schema. Every statement is parameterised; asyncpg prepares and caches them."""
from __future__ import annotations

from uuid import UUID

import asyncpg

from libs.kit.sql import Filters
from services.registry.domain import Model, ModelType

SCHEMA = "registry"

_WRITTEN = "id, name, type, framework, task, description, metadata, tags, owner, created_at, updated_at, revision, deleted_at"
_COLUMNS = _WRITTEN + ", status"  # status is kept from lifecycle events, never written by a user command

INSERT = f"""
INSERT INTO registry.models ({_WRITTEN})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""
GET_LIVE_BY_ID = f"SELECT {_COLUMNS} FROM registry.models WHERE id = $1 AND deleted_at IS NULL"
GET_LIVE_BY_NAME = f"SELECT {_COLUMNS} FROM registry.models WHERE lower(name) = lower($1) AND deleted_at IS NULL"
SET_STAGE = """
INSERT INTO registry.stages (model_id, version, environment, stage, since) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model_id, version, environment) DO UPDATE SET stage = EXCLUDED.stage, since = EXCLUDED.since
"""
# production beats staging beats draft; archived and deprecated versions do not make a model's status
REFRESH_STATUS = """
UPDATE registry.models m SET status = coalesce((
    SELECT CASE max(CASE s.stage WHEN 'production' THEN 2 WHEN 'staging' THEN 1 END)
           WHEN 2 THEN 'production' WHEN 1 THEN 'staging' END
      FROM registry.stages s WHERE s.model_id = m.id AND s.environment = $2), 'draft')
 WHERE m.id = $1
"""
LOCK_LIVE_BY_ID = GET_LIVE_BY_ID + " FOR UPDATE"
SAVE = """
UPDATE registry.models
   SET framework = $2, task = $3, description = $4, metadata = $5, tags = $6, owner = $7,
       updated_at = $8, revision = $9, deleted_at = $10
 WHERE id = $1
"""

_SORTS = {
    "created_at": "created_at ASC, id ASC",
    "-created_at": "created_at DESC, id DESC",
    "updated_at": "updated_at ASC, id ASC",
    "-updated_at": "updated_at DESC, id DESC",
    "name": "lower(name) ASC",
    "-name": "lower(name) DESC",
}


def row_to_model(row: asyncpg.Record) -> Model:
    return Model(
        id=row["id"],
        name=row["name"],
        type=ModelType(row["type"]),
        framework=row["framework"],
        task=row["task"],
        description=row["description"],
        metadata=row["metadata"],
        tags=row["tags"],
        owner=row["owner"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        revision=row["revision"],
        deleted_at=row["deleted_at"],
        status=row["status"],
    )


async def insert(conn: asyncpg.Connection, m: Model) -> None:
    await conn.execute(
        INSERT, m.id, m.name, m.type.value, m.framework, m.task, m.description, m.metadata, m.tags,
        m.owner, m.created_at, m.updated_at, m.revision, m.deleted_at,
    )


async def save(conn: asyncpg.Connection, m: Model) -> None:
    await conn.execute(
        SAVE, m.id, m.framework, m.task, m.description, m.metadata, m.tags, m.owner,
        m.updated_at, m.revision, m.deleted_at,
    )


async def record_stage(conn: asyncpg.Connection, model_id: UUID, version: str, environment: str, stage: str,
                       since, *, status_environment: str) -> None:
    await conn.execute(SET_STAGE, model_id, version, environment, stage, since)
    await conn.execute(REFRESH_STATUS, model_id, status_environment)


async def get_live(conn: asyncpg.Connection | asyncpg.Pool, ref: UUID | str, *, lock: bool = False) -> Model | None:
    if isinstance(ref, UUID):
        row = await conn.fetchrow(LOCK_LIVE_BY_ID if lock else GET_LIVE_BY_ID, ref)
    else:
        row = await conn.fetchrow(GET_LIVE_BY_NAME + (" FOR UPDATE" if lock else ""), ref)
    return row_to_model(row) if row else None


async def list_live(
    pool: asyncpg.Pool,
    *,
    type: str | None,
    framework: str | None,
    task: str | None,
    owner: str | None,
    tags: list[tuple[str, str | None]],
    q: str | None,
    sort: str,
    limit: int,
    offset: int,
    model_ids: list[UUID] | None = None,
) -> tuple[int, list[Model]]:
    """One round trip: the page and the total (a window count over the same filter). ``model_ids``
    restricts the listing to those models (None: no restriction)."""
    f = Filters("deleted_at IS NULL")
    if model_ids is not None:
        f.add("id = ANY({}::uuid[])", model_ids)
    for column, value in (("type", type), ("framework", framework), ("task", task), ("owner", owner)):
        if value:
            f.add(f"{column} = {{}}", value)
    for key, value in tags:
        if value is None:
            f.add("tags ? {}", key)
        else:
            f.add("tags @> {}::jsonb", {key: value})
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        f.add("(name ILIKE {} OR description ILIKE {})", pattern, pattern)
    where, filter_args = f.where(), list(f.args)
    sql = (
        f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM registry.models"
        f" {where} ORDER BY {_SORTS[sort]} LIMIT {f.arg(limit)} OFFSET {f.arg(offset)}"
    )
    rows = await pool.fetch(sql, *f.args)
    if not rows and offset:
        total = await pool.fetchval(f"SELECT count(*) FROM registry.models {where}", *filter_args)
        return total, []
    return (rows[0]["total"] if rows else 0), [row_to_model(r) for r in rows]
