"""Commands the gateway owns: issuing, rotating and revoking API keys; granting and revoking permissions
on models. Each change emits its event through the gateway's outbox in the same transaction."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from libs.events.security import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated, PermissionGranted, PermissionRevoked
from libs.kit.errors import NotFound
from libs.kit.uow import UnitOfWork
from services.gateway import keys, store
from services.gateway.permissions import ModelAccess


def _uow(pool: asyncpg.Pool, actor: str, traceparent: str | None) -> UnitOfWork:
    return UnitOfWork(pool, store.SCHEMA, source="gateway", actor=actor, traceparent=traceparent)


async def create_key(
    pool: asyncpg.Pool, *, name: str, role: str, created_by: str, traceparent: str | None = None,
    team: str | None = None, expires_at: datetime | None = None,
) -> keys.NewKey:
    new = keys.generate_key()
    async with _uow(pool, created_by, traceparent) as uow:
        await store.insert_key(uow.conn, new.key_id, name, role, new.secret_hash, created_by, team, expires_at)
        await uow.emit(ApiKeyCreated(key_id=new.key_id, name=name, role=role, team=team, expires_at=expires_at))
    return new


async def revoke_key(pool: asyncpg.Pool, key_id: str, *, actor: str, traceparent: str | None = None) -> None:
    async with _uow(pool, actor, traceparent) as uow:
        row = await store.revoke_key(uow.conn, key_id)
        if row is None:
            raise NotFound(f"no active API key {key_id!r}")
        await uow.emit(ApiKeyRevoked(key_id=row["key_id"], name=row["name"]))


async def rotate_key(
    pool: asyncpg.Pool, key_id: str, *, grace_s: int, actor: str, traceparent: str | None = None,
) -> tuple[keys.NewKey, asyncpg.Record, datetime | None]:
    """A new secret for the key; the old one keeps working for ``grace_s`` seconds (0: stops at once)."""
    new = keys.new_secret(key_id)
    previous_valid_until = datetime.now(timezone.utc) + timedelta(seconds=grace_s) if grace_s > 0 else None
    async with _uow(pool, actor, traceparent) as uow:
        row = await store.rotate_key(uow.conn, key_id, new.secret_hash, previous_valid_until)
        if row is None:
            raise NotFound(f"no active, unexpired API key {key_id!r}")
        await uow.emit(ApiKeyRotated(key_id=key_id, name=row["name"], previous_valid_until=previous_valid_until))
    return new, row, previous_valid_until


async def grant(
    pool: asyncpg.Pool, model: ModelAccess, *, principal: str, permission: str, expires_at: datetime | None,
    actor: str, traceparent: str | None = None,
) -> asyncpg.Record:
    """Grant (or renew) ``permission`` on the model; the row says whether it was ``created``."""
    async with _uow(pool, actor, traceparent) as uow:
        row = await store.upsert_grant(uow.conn, uuid.uuid4(), model.model_id, principal, permission, actor, expires_at)
        await uow.emit(PermissionGranted(grant_id=row["grant_id"], model_id=model.model_id, model_name=model.name,
                                         principal=principal, permission=permission, expires_at=expires_at))
    return row


async def revoke_grant(
    pool: asyncpg.Pool, model: ModelAccess, *, grant_id: uuid.UUID | None = None, principal: str | None = None,
    permission: str | None = None, actor: str, reason: str = "", traceparent: str | None = None,
) -> asyncpg.Record:
    """Revoke one grant, named by its id or by (principal, permission)."""
    async with _uow(pool, actor, traceparent) as uow:
        if grant_id is not None:
            row = await store.revoke_grant_by_id(uow.conn, grant_id, model.model_id, actor)
            missing = f"no active grant {grant_id} on model {model.name!r}"
        else:
            assert principal is not None and permission is not None
            row = await store.revoke_grant_by_subject(uow.conn, model.model_id, principal, permission, actor)
            missing = f"{principal} holds no active {permission} grant on model {model.name!r}"
        if row is None:
            raise NotFound(missing)
        await uow.emit(PermissionRevoked(grant_id=row["grant_id"], model_id=model.model_id, model_name=model.name,
                                         principal=row["principal"], permission=row["permission"], reason=reason))
    return row
