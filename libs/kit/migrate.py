"""Migration runner with one Postgres schema per service.

Each service keeps ``migrations/NNN_name.sql`` beside its code. Files may use ``{schema}`` for the
service's schema name. The kit's own tables (outbox, inbox) come from ``libs/kit/migrations`` and are
applied first, for services that ask for them. Every file runs once, in its own transaction, under an
advisory lock, so several processes may start at the same time safely.
"""
from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

from libs.kit.db import checked_schema

log = logging.getLogger(__name__)

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x43414952  # "CAIR": one lock for all schema changes; they are rare and quick


def _files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    return [(f"{prefix}{p.stem}", p) for p in sorted(folder.glob("*.sql"))]


async def migrate(
    conn: asyncpg.Connection, schema: str, folder: Path, *, kit: tuple[str, ...] = ()
) -> list[str]:
    """Apply what is missing; return the names applied now. ``kit`` picks kit tables: "outbox", "inbox"."""
    schema = checked_schema(schema)
    plan: list[tuple[str, Path]] = []
    for part in kit:
        plan += _files(KIT_MIGRATIONS / part, f"kit.{part}.")
    plan += _files(folder, "")
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch(f"SELECT name FROM {schema}.schema_migrations")}
        for name, path in plan:
            if name in done:
                continue
            sql = path.read_text().replace("{schema}", schema)
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(f"INSERT INTO {schema}.schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
            log.info("migration applied", extra={"schema": schema, "migration": name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
