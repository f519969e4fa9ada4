"""SQL for the gateway schema: API keys, per-model grants, and the model projection authorisation reads
(the gateway owns no domain data; ``models`` is a projection of cairn.models.v1)."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

SCHEMA = "gateway"
Conn = asyncpg.Connection | asyncpg.Pool

# ---- keys -------------------------------------------------------------------------------------------

INSERT_KEY = (
    "INSERT INTO gateway.api_keys (key_id, name, role, secret_hash, created_by, team, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
GET_ACTIVE_KEY = (
    "SELECT key_id, name, role, secret_hash, team, expires_at, previous_secret_hash, previous_valid_until"
    " FROM gateway.api_keys WHERE key_id = $1 AND revoked_at IS NULL"
)
_KEY_COLUMNS = "key_id, name, role, team, created_by, created_at, expires_at, rotated_at, revoked_at"
LIST_KEYS = f"SELECT {_KEY_COLUMNS} FROM gateway.api_keys ORDER BY created_at"
REVOKE_KEY = (
    "UPDATE gateway.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id, name"
)
#: The old hash stays valid until $3 (NULL: not at all); a rotation during a grace period ends the older one.
ROTATE_KEY = """
UPDATE gateway.api_keys
   SET previous_secret_hash = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE secret_hash END,
       previous_valid_until = $3, secret_hash = $2, rotated_at = now()
 WHERE key_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
RETURNING key_id, name, role, team, expires_at
"""
ACTIVE_KEYS_NAMED = (
    "SELECT key_id, name, role, team, expires_at FROM gateway.api_keys"
    " WHERE name = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
)


async def insert_key(conn: Conn, key_id: str, name: str, role: str, secret_hash: str, created_by: str,
                     team: str | None = None, expires_at: datetime | None = None) -> None:
    await conn.execute(INSERT_KEY, key_id, name, role, secret_hash, created_by, team, expires_at)


async def get_active_key(pool: Conn, key_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(GET_ACTIVE_KEY, key_id)


async def list_keys(pool: Conn) -> list[asyncpg.Record]:
    return await pool.fetch(LIST_KEYS)


async def revoke_key(conn: Conn, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(REVOKE_KEY, key_id)


async def rotate_key(conn: Conn, key_id: str, secret_hash: str, previous_valid_until: datetime | None) -> asyncpg.Record | None:
    return await conn.fetchrow(ROTATE_KEY, key_id, secret_hash, previous_valid_until)


async def active_keys_named(conn: Conn, name: str) -> list[asyncpg.Record]:
    return await conn.fetch(ACTIVE_KEYS_NAMED, name)


# ---- model projection -------------------------------------------------------------------------------

PROJECT_MODEL = """
INSERT INTO gateway.models (model_id, name, owner, revision, registered_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model_id) DO UPDATE SET name = EXCLUDED.name, owner = EXCLUDED.owner, revision = EXCLUDED.revision
 WHERE gateway.models.revision < EXCLUDED.revision AND NOT gateway.models.deleted
"""
INSERT_MODEL_IF_ABSENT = (
    "INSERT INTO gateway.models (model_id, name, owner, revision, registered_at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (model_id) DO NOTHING"
)
MARK_MODEL_DELETED = """
INSERT INTO gateway.models (model_id, name, owner, revision, deleted, registered_at) VALUES ($1, $2, '', 0, true, $3)
ON CONFLICT (model_id) DO UPDATE SET deleted = true
"""

# One round trip: the model (by id, or the live one of that name) and the live grants covering the
# given principals. No grant row → one row with NULL grant columns; no model → no row.
_ACCESS = """
WITH m AS ({model})
SELECT m.model_id, m.name, m.owner, m.deleted, g.grant_id, g.principal, g.permission, g.expires_at
  FROM m LEFT JOIN gateway.model_grants g
    ON g.model_id = m.model_id AND g.revoked_at IS NULL AND g.principal = ANY($2::text[])
   AND (g.expires_at IS NULL OR g.expires_at > now())
"""
MODEL_ACCESS_BY_ID = _ACCESS.format(model="SELECT model_id, name, owner, deleted FROM gateway.models WHERE model_id = $1")
MODEL_ACCESS_BY_NAME = _ACCESS.format(
    model="SELECT model_id, name, owner, deleted FROM gateway.models WHERE lower(name) = lower($1) AND NOT deleted"
          " ORDER BY registered_at DESC LIMIT 1")


#: The live models the given principals may read: those they own (owner is a key name or team:<team>,
#: as the principals are) and those a live grant of any level covers (every level implies read). Each
#: row carries when the model stops being visible: the latest expiry of the grants covering it (NULL:
#: owned, or a grant without expiry), so a cached answer can end when the first of them does.
VISIBLE_MODELS = """
SELECT v.model_id, CASE WHEN bool_or(v.forever) THEN NULL ELSE max(v.expires_at) END AS expires_at
  FROM (SELECT model_id, true AS forever, NULL::timestamptz AS expires_at
          FROM gateway.models WHERE owner = ANY($1::text[]) AND NOT deleted
        UNION ALL
        SELECT g.model_id, g.expires_at IS NULL, g.expires_at
          FROM gateway.model_grants g JOIN gateway.models m ON m.model_id = g.model_id AND NOT m.deleted
         WHERE g.principal = ANY($1::text[]) AND g.revoked_at IS NULL
           AND (g.expires_at IS NULL OR g.expires_at > now())) v
 GROUP BY v.model_id
"""


async def project_model(conn: Conn, model_id: UUID, name: str, owner: str, revision: int, registered_at: datetime) -> None:
    await conn.execute(PROJECT_MODEL, model_id, name, owner, revision, registered_at)


async def insert_model_if_absent(conn: Conn, model_id: UUID, name: str, owner: str, revision: int,
                                 registered_at: datetime) -> None:
    await conn.execute(INSERT_MODEL_IF_ABSENT, model_id, name, owner, revision, registered_at)


async def mark_model_deleted(conn: Conn, model_id: UUID, name: str, deleted_at: datetime) -> None:
    await conn.execute(MARK_MODEL_DELETED, model_id, name, deleted_at)


async def model_access(conn: Conn, ref: UUID | str, grantees: list[str]) -> list[asyncpg.Record]:
    sql = MODEL_ACCESS_BY_ID if isinstance(ref, UUID) else MODEL_ACCESS_BY_NAME
    return await conn.fetch(sql, ref, grantees)


async def visible_models(conn: Conn, grantees: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(VISIBLE_MODELS, grantees)


# ---- grants -----------------------------------------------------------------------------------------

_GRANT_COLUMNS = "grant_id, model_id, principal, permission, granted_by, granted_at, expires_at, revoked_at, revoked_by"
#: Granting what is already granted renews it (new expiry, new granter); ``created`` tells which happened.
UPSERT_GRANT = f"""
INSERT INTO gateway.model_grants (grant_id, model_id, principal, permission, granted_by, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (model_id, principal, permission) WHERE revoked_at IS NULL
DO UPDATE SET expires_at = EXCLUDED.expires_at, granted_by = EXCLUDED.granted_by, granted_at = now()
RETURNING {_GRANT_COLUMNS}, (xmax = 0) AS created
"""
REVOKE_GRANT_BY_ID = f"""
UPDATE gateway.model_grants SET revoked_at = now(), revoked_by = $3
 WHERE grant_id = $1 AND model_id = $2 AND revoked_at IS NULL RETURNING {_GRANT_COLUMNS}
"""
REVOKE_GRANT_BY_SUBJECT = f"""
UPDATE gateway.model_grants SET revoked_at = now(), revoked_by = $4
 WHERE model_id = $1 AND principal = $2 AND permission = $3 AND revoked_at IS NULL RETURNING {_GRANT_COLUMNS}
"""
REVOKE_MODEL_GRANTS = f"""
UPDATE gateway.model_grants SET revoked_at = now(), revoked_by = $2
 WHERE model_id = $1 AND revoked_at IS NULL RETURNING {_GRANT_COLUMNS}
"""
#: $2: a principal or NULL for all; $3: include revoked and expired grants.
LIST_MODEL_GRANTS = f"""
SELECT {_GRANT_COLUMNS} FROM gateway.model_grants
 WHERE model_id = $1 AND ($2::text IS NULL OR principal = $2)
   AND ($3 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())))
 ORDER BY granted_at, grant_id
"""
LIST_PRINCIPAL_GRANTS = """
SELECT g.grant_id, g.model_id, m.name AS model_name, g.principal, g.permission, g.granted_by, g.granted_at,
       g.expires_at, g.revoked_at, g.revoked_by
  FROM gateway.model_grants g JOIN gateway.models m ON m.model_id = g.model_id
 WHERE g.principal = ANY($1::text[])
   AND ($2 OR (g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())))
 ORDER BY g.granted_at, g.grant_id
"""


async def upsert_grant(conn: Conn, grant_id: UUID, model_id: UUID, principal: str, permission: str, granted_by: str,
                       expires_at: datetime | None) -> asyncpg.Record:
    return await conn.fetchrow(UPSERT_GRANT, grant_id, model_id, principal, permission, granted_by, expires_at)


async def revoke_grant_by_id(conn: Conn, grant_id: UUID, model_id: UUID, revoked_by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(REVOKE_GRANT_BY_ID, grant_id, model_id, revoked_by)


async def revoke_grant_by_subject(conn: Conn, model_id: UUID, principal: str, permission: str,
                                  revoked_by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(REVOKE_GRANT_BY_SUBJECT, model_id, principal, permission, revoked_by)


async def revoke_model_grants(conn: Conn, model_id: UUID, revoked_by: str) -> list[asyncpg.Record]:
    return await conn.fetch(REVOKE_MODEL_GRANTS, model_id, revoked_by)


async def list_model_grants(conn: Conn, model_id: UUID, principal: str | None, include_inactive: bool) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_MODEL_GRANTS, model_id, principal, include_inactive)


async def list_principal_grants(conn: Conn, grantees: list[str], include_inactive: bool) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_PRINCIPAL_GRANTS, grantees, include_inactive)
