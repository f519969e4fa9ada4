"""The audit service's internal HTTP API: query the log, verify the chain."""

from typing import Annotated

from fastapi import APIRouter, Depends

from libs.kit.errors import FieldError, ValidationFailed
from libs.kit.http import Caller
from services.audit import store
from services.audit.handlers import verify_chain
from services.audit.schemas import AuditEntryOut, AuditPage, AuditQuery, VerifyResult


def build_router(runtime, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/audit", tags=["audit"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.get("", response_model=AuditPage)
    async def query(caller: CallerDep, q: Annotated[AuditQuery, Depends()]) -> AuditPage:
        after: int | None = None
        if q.cursor is not None:
            if not q.cursor.isdigit():
                raise ValidationFailed("cursor: not a cursor from this API", errors=[FieldError("cursor", "invalid")])
            after = int(q.cursor)
        for name, value in (("since", q.since), ("until", q.until)):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed(f"{name}: needs a time zone", errors=[FieldError(name, "needs a time zone")])
        entries = await store.query(
            runtime.pool, model_id=q.model_id, actor=q.actor, event_type=q.event_type, since=q.since,
            until=q.until, cursor=after, descending=q.order == "desc", limit=q.page_size,
        )
        next_cursor = str(entries[-1].seq) if len(entries) == q.page_size else None
        return AuditPage(entries=[AuditEntryOut(**e.__dict__) for e in entries], next_cursor=next_cursor)

    @router.get("/verify", response_model=VerifyResult)
    async def verify(caller: CallerDep) -> VerifyResult:
        return VerifyResult(**await verify_chain(runtime.pool))

    return router
