"""/api/v1/audit: forwarded to the audit service."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from libs.kit.http import problems
from services.audit.schemas import AuditPage, AuditQuery, VerifyResult
from services.gateway.auth import require
from services.gateway.keys import Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
AuditRead = Annotated[Principal, Depends(require("audit:read"))]


@router.get("", response_model=AuditPage, responses=problems(401, 403, 422))
async def query_audit(request: Request, principal: AuditRead, query: Annotated[AuditQuery, Depends()]) -> Response:
    """Audit entries by model, actor, event type and time range; newest first unless order=asc."""
    return await request.app.state.gateway.upstreams["audit"].forward(
        request, principal, "/internal/audit", query=request.url.query
    )


@router.get("/verify", response_model=VerifyResult, responses=problems(401, 403))
async def verify_audit(request: Request, principal: AuditRead) -> Response:
    """Recompute the hash chain; names the first broken link if any."""
    return await request.app.state.gateway.upstreams["audit"].forward(request, principal, "/internal/audit/verify")
