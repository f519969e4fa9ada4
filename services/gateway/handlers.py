"""Commands the gateway owns: issuing and revoking API keys."""
from __future__ import annotations

import asyncpg

from libs.events.security import ApiKeyCreated, ApiKeyRevoked
from libs.kit.errors import NotFound
from libs.kit.uow import UnitOfWork
from services.gateway import keys, store


async def create_key(pool: asyncpg.Pool, *, name: str, role: str, created_by: str, traceparent: str | None = None) -> keys.NewKey:
    new = keys.generate_key()
    async with UnitOfWork(pool, store.SCHEMA, source="gateway", actor=created_by, traceparent=traceparent) as uow:
        await store.insert_key(uow.conn, new.key_id, name, role, new.secret_hash, created_by)
        await uow.emit(ApiKeyCreated(key_id=new.key_id, name=name, role=role))
    return new


async def revoke_key(pool: asyncpg.Pool, key_id: str, *, actor: str, traceparent: str | None = None) -> None:
    async with UnitOfWork(pool, store.SCHEMA, source="gateway", actor=actor, traceparent=traceparent) as uow:
        row = await store.revoke_key(uow.conn, key_id)
        if row is None:
            raise NotFound(f"no active API key {key_id!r}")
        await uow.emit(ApiKeyRevoked(key_id=row["key_id"], name=row["name"]))
