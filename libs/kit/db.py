"""asyncpg pool set-up. asyncpg prepares every statement and caches it per connection,
so the SQL constants in each store run as prepared statements after their first use."""
from __future__ import annotations

import re

import asyncpg
import orjson

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(name: str) -> str:
    """Schema names are spliced into SQL text, so only plain identifiers are accepted."""
    if not _SCHEMA_NAME.match(name):
        raise ValueError(f"invalid schema name {name!r}")
    return name


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Run on every release instead of asyncpg's default reset, which sends ``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` (a round trip and four statements for
    Postgres to parse) on every release: on a version create that was a sixth of its database work.
    asyncpg still rolls back a transaction left open and drops listeners before calling this. Pooled
    connections carry no other session state here: LISTEN, session advisory locks and migrations use
    dedicated connections (``connect``), except the search rebuild's lock, which is released or its
    connection terminated."""


async def create_pool(dsn: str, *, max_size: int = 10, min_size: int = 1) -> asyncpg.Pool:
    """A pool whose connections speak JSON through orjson."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30, reset=_keep_session
    )


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs (used for LISTEN and migrations)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
