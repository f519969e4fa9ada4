"""SQL for the audit schema: append under the chain-head lock, query with keyset paging, read in order."""
from __future__ import annotations

from datetime import datetime
from typing import AsyncIterator
from uuid import UUID

import asyncpg

from libs.kit.sql import Filters
from services.audit.domain import AuditEntry

SCHEMA = "audit"
_COLUMNS = (
    "seq, event_id, event_type, source, subject, model_id, actor, topic, occurred_at, recorded_at, payload, prev_hash, hash"
)
LOCK_HEAD = "SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1 FOR UPDATE"
GET_HEAD = "SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1"
INSERT = f"INSERT INTO audit.log ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
MOVE_HEAD = "UPDATE audit.chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1"
READ_FROM = f"SELECT {_COLUMNS} FROM audit.log WHERE seq > $1 ORDER BY seq LIMIT $2"


def row_to_entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(**dict(row))


async def lock_head(conn: asyncpg.Connection) -> tuple[int, str]:
    row = await conn.fetchrow(LOCK_HEAD)
    return row["last_seq"], row["last_hash"]


async def append(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    e = entry
    await conn.execute(
        INSERT, e.seq, e.event_id, e.event_type, e.source, e.subject, e.model_id, e.actor, e.topic,
        e.occurred_at, e.recorded_at, e.payload, e.prev_hash, e.hash,
    )
    await conn.execute(MOVE_HEAD, e.seq, e.hash)


async def head(pool: asyncpg.Pool) -> tuple[int, str]:
    row = await pool.fetchrow(GET_HEAD)
    return row["last_seq"], row["last_hash"]


async def read_in_order(pool: asyncpg.Pool, batch: int = 2000) -> AsyncIterator[list[AuditEntry]]:
    after = 0
    while True:
        rows = await pool.fetch(READ_FROM, after, batch)
        if not rows:
            return
        yield [row_to_entry(r) for r in rows]
        after = rows[-1]["seq"]


async def query(
    pool: asyncpg.Pool,
    *,
    model_id: UUID | None,
    actor: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: int | None,
    descending: bool,
    limit: int,
) -> list[AuditEntry]:
    f = Filters()
    for template, value in (("model_id = {}", model_id), ("actor = {}", actor), ("event_type = {}", event_type),
                            ("occurred_at >= {}", since), ("occurred_at < {}", until)):
        if value is not None:
            f.add(template, value)
    if cursor is not None:
        f.add(f"seq {'<' if descending else '>'} {{}}", cursor)
    sql = f"SELECT {_COLUMNS} FROM audit.log {f.where()} ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {f.arg(limit)}"
    return [row_to_entry(r) for r in await pool.fetch(sql, *f.args)]
