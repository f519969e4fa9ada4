"""One function per command: open a unit of work, decide with the domain, store, emit, commit."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from libs.events.envelope import Envelope
from libs.kit.errors import Conflict, NotFound, PreconditionFailed
from libs.kit.http import Caller
from libs.kit.uow import UnitOfWork
from services.registry import domain, store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_ref(ref: str) -> UUID | str:
    """A model is addressed by id or by name."""
    try:
        return UUID(ref)
    except ValueError:
        return ref


#: the environment whose stages make a model's status (seed 001: draft, staging, production)
STATUS_ENVIRONMENT = "production"


class RegistryHandlers:
    def __init__(self, runtime) -> None:
        self.rt = runtime

    async def on_stage_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """cairn.lifecycle.v1 → each version's stage, and from it the model's status. One model's events
        arrive in order (keyed by model id), so the last transition of a version names its stage."""
        event = envelope.data
        await store.record_stage(uow.conn, event.model_id, event.version, event.environment, event.to_stage,
                                 envelope.time, status_environment=STATUS_ENVIRONMENT)

    def _uow(self, caller: Caller) -> UnitOfWork:
        return UnitOfWork(self.rt.pool, store.SCHEMA, source="registry", actor=caller.actor, traceparent=caller.traceparent)

    async def register(self, cmd: domain.Registration, caller: Caller) -> domain.Model:
        model, event = domain.register(cmd, model_id=uuid4(), actor=caller.actor, now=_now())
        try:
            async with self._uow(caller) as uow:
                await store.insert(uow.conn, model)
                await uow.emit(event)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a model named {cmd.name!r} already exists", extra={"field": "name"}) from None
        return model

    async def get(self, ref: str) -> domain.Model:
        model = await store.get_live(self.rt.pool, parse_ref(ref))
        if model is None:
            raise NotFound(f"model {ref!r} not found")
        return model

    async def update(self, ref: str, patch: dict[str, Any], caller: Caller, *, if_match: int | None) -> domain.Model:
        async with self._uow(caller) as uow:
            model = await store.get_live(uow.conn, parse_ref(ref), lock=True)
            if model is None:
                raise NotFound(f"model {ref!r} not found")
            if if_match is not None and if_match != model.revision:
                raise PreconditionFailed(
                    f"model is at revision {model.revision}, not {if_match}", extra={"revision": model.revision}
                )
            updated, event = domain.update(model, patch, now=_now())
            if event is not None:
                await store.save(uow.conn, updated)
                await uow.emit(event)
        return updated

    async def delete(self, ref: str, caller: Caller, *, if_match: int | None) -> None:
        async with self._uow(caller) as uow:
            model = await store.get_live(uow.conn, parse_ref(ref), lock=True)
            if model is None:
                raise NotFound(f"model {ref!r} not found")
            if if_match is not None and if_match != model.revision:
                raise PreconditionFailed(f"model is at revision {model.revision}, not {if_match}")
            deleted, event = domain.delete(model, now=_now())
            await store.save(uow.conn, deleted)
            await uow.emit(event)
