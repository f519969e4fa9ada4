"""/api/v1/models/{model}/permissions and /api/v1/permissions: per-model grants, owned by the gateway.

Managing a model's grants needs ``admin`` on it (a global admin, the owner, or an admin grant). An admin
by grant delegates: it may grant any level (none is above admin) but never for longer than its own
admin grant lasts. Every key may list its own grants and check its own access."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from libs.kit.errors import FieldError, NotFound, ValidationFailed
from libs.kit.http import problems
from services.gateway import handlers, permissions, store
from services.gateway.auth import require
from services.gateway.keys import KEY_NAME_PATTERN, TEAM_PATTERN, TEAM_PREFIX, Principal
from services.gateway.permissions import ModelAccess

router = APIRouter(prefix="/api/v1", tags=["permissions"])
ModelAdmin = Annotated[Principal, Depends(require("permissions:admin"))]
Self = Annotated[Principal, Depends(require("account:read"))]
PRINCIPAL_PATTERN = f"({KEY_NAME_PATTERN[:-1]}$)|(^{TEAM_PREFIX}{TEAM_PATTERN[1:]})"
PrincipalRef = Annotated[str, Field(pattern=PRINCIPAL_PATTERN, description="A key name, or team:<team>")]
Permission = Literal["read", "write", "publish", "admin"]


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: PrincipalRef
    permission: Permission = Field(description="admin ⊃ publish ⊃ write ⊃ read")
    expires_at: AwareDatetime | None = Field(None, description="The grant ends then; null: until revoked")


class GrantOut(BaseModel):
    grant_id: UUID
    model_id: UUID
    model_name: str | None = None
    principal: str
    permission: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    active: bool


class AccessCheck(BaseModel):
    model_id: UUID
    model_name: str
    principal: str
    permission: str
    allowed: bool
    via: str | None = Field(description="role, owner, grant or team grant")
    grant_id: UUID | None = None
    expires_at: datetime | None = Field(None, description="When the granting grant ends")
    reason: str = ""


def _grant_out(row, model_name: str) -> GrantOut:
    now = datetime.now(timezone.utc)
    active = row["revoked_at"] is None and (row["expires_at"] is None or row["expires_at"] > now)
    return GrantOut(**{k: row[k] for k in GrantOut.model_fields if k not in ("model_name", "active")},
                    model_name=model_name, active=active)


async def _model(request: Request, model_ref: str, principal: Principal) -> ModelAccess:
    access = await request.app.state.gateway.access.lookup(model_ref, principal.grantees, fresh=True)
    if access is None:
        raise NotFound(f"model {model_ref!r} not found")
    return access


@router.post("/models/{model_ref}/permissions", status_code=201, response_model=GrantOut,
             responses={**problems(401, 403, 404, 422), 200: {"description": "An existing grant was renewed"}})
async def grant_permission(model_ref: str, body: GrantIn, request: Request, principal: ModelAdmin) -> Response:
    """Grant a key (by name) or a team (``team:<team>``) a permission on this model, optionally until
    ``expires_at``. Granting it again renews it. Emits PermissionGranted."""
    gw = request.app.state.gateway
    model = await _model(request, model_ref, principal)
    now = datetime.now(timezone.utc)
    if body.expires_at is not None and body.expires_at <= now:
        raise ValidationFailed("expires_at must be in the future",
                               errors=[FieldError("expires_at", "must be in the future")])
    _, limit = permissions.delegation_limit(principal, model, now)
    if limit is not None and (body.expires_at is None or body.expires_at > limit):
        raise await gw.auth.refuse(
            request, principal, f"a delegated grant cannot outlive your own admin grant on {model.name!r} "
                                f"(it ends {limit.isoformat()}); set expires_at no later", "permissions:admin",
            model=model_ref, model_id=model.model_id, required="admin")
    row = await handlers.grant(gw.runtime.pool, model, principal=body.principal, permission=body.permission,
                               expires_at=body.expires_at, actor=principal.name,
                               traceparent=request.headers.get("traceparent"))
    gw.access.invalidate()
    out = _grant_out(row, model.name)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if row["created"] else 200)


@router.get("/models/{model_ref}/permissions", response_model=list[GrantOut], responses=problems(401, 403, 404))
async def list_model_permissions(
    model_ref: str, request: Request, principal: ModelAdmin,
    principal_name: Annotated[str | None, Query(alias="principal", description="Only this key name or team:<team>")] = None,
    include_inactive: bool = Query(False, description="Also revoked and expired grants (the history)"),
) -> list[GrantOut]:
    """Who holds what on this model (besides roles and the owner)."""
    model = await _model(request, model_ref, principal)
    rows = await store.list_model_grants(request.app.state.gateway.runtime.pool, model.model_id, principal_name,
                                         include_inactive)
    return [_grant_out(r, model.name) for r in rows]


@router.delete("/models/{model_ref}/permissions/{grant_id}", status_code=204, responses=problems(401, 403, 404))
async def revoke_permission(model_ref: str, grant_id: UUID, request: Request, principal: ModelAdmin,
                            reason: str = Query("", max_length=2000)) -> Response:
    """Revoke a grant by its id. Emits PermissionRevoked."""
    return await _revoke(request, model_ref, principal, reason, grant_id=grant_id)


@router.delete("/models/{model_ref}/permissions/{principal_name}/{permission}", status_code=204,
               responses=problems(401, 403, 404))
async def revoke_permission_of(model_ref: str, principal_name: str, permission: Permission, request: Request,
                               principal: ModelAdmin, reason: str = Query("", max_length=2000)) -> Response:
    """Revoke what a key (or ``team:<team>``) holds at one level on this model. Emits PermissionRevoked."""
    return await _revoke(request, model_ref, principal, reason, principal_name=principal_name, permission=permission)


async def _revoke(request: Request, model_ref: str, principal: Principal, reason: str, **which) -> Response:
    gw = request.app.state.gateway
    model = await _model(request, model_ref, principal)
    await handlers.revoke_grant(gw.runtime.pool, model, grant_id=which.get("grant_id"),
                                principal=which.get("principal_name"), permission=which.get("permission"),
                                actor=principal.name, reason=reason, traceparent=request.headers.get("traceparent"))
    gw.access.invalidate()
    return Response(status_code=204)


@router.get("/models/{model_ref}/permissions/check", response_model=AccessCheck, responses=problems(401, 403, 404, 422))
async def check_permission(
    model_ref: str, request: Request, principal: Self,
    permission: Permission = Query(description="The level to check"),
    principal_name: Annotated[str | None, Query(alias="principal", pattern=PRINCIPAL_PATTERN,
                                                description="Default: the caller. Others need admin on the model")] = None,
) -> AccessCheck:
    """Would this principal have ``permission`` on the model? Says through what: its role, ownership, its
    own grant or its team's. For a key name, every active key of that name counts."""
    gw = request.app.state.gateway
    now = datetime.now(timezone.utc)
    subjects = await _subjects(request, principal, principal_name)
    if principal_name is not None and principal_name not in principal.grantees:
        caller = await _model(request, model_ref, principal)
        if not permissions.decide(principal, permissions.Need("permissions:admin", frozenset({"permissions:admin"}), "admin"),
                                  caller, now).allowed:
            raise await gw.auth.refuse(request, principal, f"checking another principal's access needs admin on "
                                       f"model {caller.name!r}", "permissions:admin", model=model_ref,
                                       model_id=caller.model_id, required="admin")
    need = permissions.Need(permissions.ROLE_BASELINE[permission], frozenset({permissions.ROLE_BASELINE[permission]}),
                            permission)
    best: tuple[permissions.Decision, ModelAccess] | None = None
    for subject in subjects:
        model = await _model(request, model_ref, subject)
        decision = permissions.decide(subject, need, model, now)
        if best is None or (decision.allowed and not best[0].allowed):
            best = (decision, model)
    assert best is not None
    decision, model = best
    return AccessCheck(model_id=model.model_id, model_name=model.name, principal=principal_name or principal.name,
                       permission=permission, allowed=decision.allowed, via=decision.via,
                       grant_id=decision.grant.grant_id if decision.grant else None,
                       expires_at=decision.grant.expires_at if decision.grant else None, reason=decision.reason)


async def _subjects(request: Request, caller: Principal, name: str | None) -> list[Principal]:
    """The principals a check is about: the caller; a team as itself (its grants only); or every active key
    of a name (a name without keys still has its grants, with no role)."""
    if name is None or name == caller.name:
        return [caller]
    if name.startswith(TEAM_PREFIX):  # a team as such: only its grants count
        return [Principal(key_id="", name=name, role="none")]
    rows = await store.active_keys_named(request.app.state.gateway.runtime.pool, name)
    return [Principal(key_id=r["key_id"], name=r["name"], role=r["role"], team=r["team"], expires_at=r["expires_at"])
            for r in rows] or [Principal(key_id="", name=name, role="none")]


@router.get("/permissions", response_model=list[GrantOut], responses=problems(401, 403, 422))
async def list_permissions(
    request: Request, principal: Self,
    principal_name: Annotated[str | None, Query(alias="principal", pattern=PRINCIPAL_PATTERN,
                                                description="Default: the caller (and its team)")] = None,
    include_inactive: bool = Query(False, description="Also revoked and expired grants"),
) -> list[GrantOut]:
    """Grants across models: your own (with your team's), or anyone's for a global admin."""
    gw = request.app.state.gateway
    if principal_name is None:
        grantees = list(principal.grantees)
    elif principal_name in principal.grantees or principal.can("permissions:admin"):
        grantees = [principal_name]
    else:
        raise await gw.auth.refuse(request, principal, f"listing the grants of {principal_name} needs a global admin",
                                   "permissions:admin")
    rows = await store.list_principal_grants(gw.runtime.pool, grantees, include_inactive)
    return [_grant_out(r, r["model_name"]) for r in rows]

