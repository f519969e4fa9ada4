"""SQL of the search-indexer's own schema: the per-model projection and the inbox."""
from __future__ import annotations

from typing import AsyncIterator, Iterable
from uuid import UUID

import asyncpg

from services.search_indexer.domain import ModelView

SCHEMA = "search_indexer"
#: Every event handler holds this advisory lock shared; a rebuild holds it exclusive.
REBUILD_LOCK = 0x53524348  # "SRCH"

SHARED_REBUILD_LOCK = "SELECT pg_advisory_xact_lock_shared($1)"
# inserting the empty row (or touching the existing one) locks the model until commit, so one model's
# events are applied one at a time even when they come from different topics at once
LOCK_MODEL = f"""
INSERT INTO {SCHEMA}.models (model_id, state) VALUES ($1, $2)
ON CONFLICT (model_id) DO UPDATE SET model_id = EXCLUDED.model_id
RETURNING state
"""
SAVE_MODELS = f"""
UPDATE {SCHEMA}.models AS m SET state = s.state, updated_at = now()
FROM (SELECT (x->>'model_id')::uuid AS model_id, x AS state FROM jsonb_array_elements($1::jsonb) AS x) AS s
WHERE m.model_id = s.model_id
"""
PAGE = f"SELECT model_id, state FROM {SCHEMA}.models WHERE model_id > $1 ORDER BY model_id LIMIT $2"
INSERT_MANY = f"""
INSERT INTO {SCHEMA}.models (model_id, state)
SELECT (s->>'model_id')::uuid, s FROM jsonb_array_elements($1::jsonb) AS s
"""
INBOX_IDS = f"SELECT event_id FROM {SCHEMA}.inbox WHERE consumer = $1"


async def lock_model(conn: asyncpg.Connection, model_id: UUID) -> ModelView:
    state = await conn.fetchval(LOCK_MODEL, model_id, ModelView(model_id=str(model_id)).to_json())
    return ModelView.from_json(state)


async def save_models(conn: asyncpg.Connection, views: Iterable[ModelView]) -> None:
    """Many models' states in one statement."""
    await conn.execute(SAVE_MODELS, [view.to_json() for view in views])


async def replace_all(conn: asyncpg.Connection, views: Iterable[ModelView], batch: int = 1000) -> None:
    """Inside the caller's transaction: the projection becomes exactly ``views``."""
    await conn.execute(f"TRUNCATE {SCHEMA}.models")
    chunk: list[dict] = []
    for view in views:
        chunk.append(view.to_json())
        if len(chunk) >= batch:
            await conn.execute(INSERT_MANY, chunk)
            chunk = []
    if chunk:
        await conn.execute(INSERT_MANY, chunk)


async def all_models(conn: asyncpg.Connection, batch: int = 1000) -> AsyncIterator[list[ModelView]]:
    after = UUID(int=0)
    while True:
        rows = await conn.fetch(PAGE, after, batch)
        if not rows:
            return
        yield [ModelView.from_json(r["state"]) for r in rows]
        after = rows[-1]["model_id"]


async def inbox_ids(conn: asyncpg.Connection, consumer: str) -> set[UUID]:
    return {r["event_id"] for r in await conn.fetch(INBOX_IDS, consumer)}
