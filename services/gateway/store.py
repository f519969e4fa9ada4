"""SQL for the gateway schema (API keys only; the gateway holds no domain data)."""
from __future__ import annotations

import asyncpg

SCHEMA = "gateway"

INSERT_KEY = "INSERT INTO gateway.api_keys (key_id, name, role, secret_hash, created_by) VALUES ($1, $2, $3, $4, $5)"
GET_ACTIVE_KEY = "SELECT key_id, name, role, secret_hash FROM gateway.api_keys WHERE key_id = $1 AND revoked_at IS NULL"
LIST_KEYS = "SELECT key_id, name, role, created_by, created_at, revoked_at FROM gateway.api_keys ORDER BY created_at"
REVOKE_KEY = (
    "UPDATE gateway.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id, name"
)


async def insert_key(conn: asyncpg.Connection, key_id: str, name: str, role: str, secret_hash: str, created_by: str) -> None:
    await conn.execute(INSERT_KEY, key_id, name, role, secret_hash, created_by)


async def get_active_key(pool: asyncpg.Pool, key_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(GET_ACTIVE_KEY, key_id)


async def list_keys(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(LIST_KEYS)


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(REVOKE_KEY, key_id)
