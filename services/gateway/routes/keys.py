"""/api/v1/keys and /api/v1/me: API keys, owned by the gateway itself. Keys may carry a team and an
expiry, and are rotated in place (same key id, new secret, optional grace period for the old one)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from libs.kit.errors import FieldError, ValidationFailed
from libs.kit.http import problems
from services.gateway import handlers, store
from services.gateway.auth import require
from services.gateway.keys import KEY_NAME_PATTERN, ROLE_PERMISSIONS, ROLES, TEAM_PATTERN, Principal, Role

router = APIRouter(prefix="/api/v1", tags=["keys"])
Admin = Annotated[Principal, Depends(require("keys:admin"))]
Self = Annotated[Principal, Depends(require("account:read"))]
SelfWrite = Annotated[Principal, Depends(require("account:write"))]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=KEY_NAME_PATTERN, description="Who uses the key; the actor in events and the principal of grants")
    role: Role = Field(description=f"One of {', '.join(ROLES)}; guest holds nothing but what model grants give it")
    team: str | None = Field(None, pattern=TEAM_PATTERN, description="Grants to team:<team> cover this key")
    expires_at: AwareDatetime | None = Field(None, description="The key is refused from then on; null: never")


class KeyCreated(BaseModel):
    key_id: str
    name: str
    role: str
    team: str | None
    expires_at: datetime | None
    token: str = Field(description="Shown once; only its hash is stored")


class KeyOut(BaseModel):
    key_id: str
    name: str
    role: str
    team: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    rotated_at: datetime | None
    revoked_at: datetime | None
    status: str = Field(description="active, expired or revoked")


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_s: int = Field(0, ge=0, description="Seconds the old secret keeps working (0: it stops now)")


class KeyRotated(KeyCreated):
    previous_valid_until: datetime | None = Field(description="When the old secret stops working; null: already")


class Me(BaseModel):
    key_id: str
    name: str
    role: str
    team: str | None
    expires_at: datetime | None
    permissions: list[str]


def _status(row) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(timezone.utc):
        return "expired"
    return "active"


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=problems(401, 403, 422))
async def create_key(body: KeyCreate, request: Request, principal: Admin) -> KeyCreated:
    """Issue an API key, optionally for a team and until an expiry. Emits ApiKeyCreated (without the secret)."""
    if body.expires_at is not None and body.expires_at <= datetime.now(timezone.utc):
        raise ValidationFailed("expires_at must be in the future",
                               errors=[FieldError("expires_at", "must be in the future")])
    gw = request.app.state.gateway
    new = await handlers.create_key(gw.runtime.pool, name=body.name, role=body.role, created_by=principal.name,
                                    team=body.team, expires_at=body.expires_at,
                                    traceparent=request.headers.get("traceparent"))
    return KeyCreated(key_id=new.key_id, name=body.name, role=body.role, team=body.team, expires_at=body.expires_at,
                      token=new.token)


@router.get("/keys", response_model=list[KeyOut], responses=problems(401, 403))
async def list_keys(request: Request, principal: Admin) -> list[KeyOut]:
    return [KeyOut(**dict(r), status=_status(r)) for r in await store.list_keys(request.app.state.gateway.runtime.pool)]


@router.delete("/keys/{key_id}", status_code=204, responses=problems(401, 403, 404))
async def revoke_key(key_id: str, request: Request, principal: Admin) -> Response:
    """Revoke a key; it is refused from then on. Emits ApiKeyRevoked."""
    gw = request.app.state.gateway
    await handlers.revoke_key(gw.runtime.pool, key_id, actor=principal.name, traceparent=request.headers.get("traceparent"))
    gw.auth.forget(key_id)
    return Response(status_code=204)


async def _self_or_admin(request: Request, principal: SelfWrite) -> Principal:
    """A key may rotate itself; only an admin rotates another. Decided before the body is read."""
    key_id = request.path_params["key_id"]
    if key_id != principal.key_id and not principal.can("keys:admin"):
        raise await request.app.state.gateway.auth.refuse(
            request, principal, f"only the key itself or an admin may rotate key {key_id}", "keys:admin")
    return principal


@router.post("/keys/{key_id}/rotate", response_model=KeyRotated, responses=problems(401, 403, 404, 422))
async def rotate_key(
    key_id: str, request: Request, principal: Annotated[Principal, Depends(_self_or_admin)],
    body: Annotated[KeyRotate | None, Body()] = None,
) -> KeyRotated:
    """Give a key a new secret (a key may rotate itself; admins may rotate any). The key id, role, team and
    expiry stay; the old secret works for ``grace_s`` more seconds, so deployments can switch over.
    Emits ApiKeyRotated."""
    gw = request.app.state.gateway
    grace_s = body.grace_s if body else 0
    if grace_s > gw.settings.key_rotation_max_grace_s:
        limit = gw.settings.key_rotation_max_grace_s
        raise ValidationFailed(f"grace_s may be at most {limit}", errors=[FieldError("grace_s", f"at most {limit}")])
    new, row, previous_valid_until = await handlers.rotate_key(
        gw.runtime.pool, key_id, grace_s=grace_s, actor=principal.name, traceparent=request.headers.get("traceparent"))
    gw.auth.forget(key_id)
    return KeyRotated(key_id=key_id, name=row["name"], role=row["role"], team=row["team"], expires_at=row["expires_at"],
                      token=new.token, previous_valid_until=previous_valid_until)


@router.get("/me", response_model=Me, responses=problems(401))
async def me(principal: Self) -> Me:
    """Who this key is and what its role may do everywhere (model grants: ``GET /api/v1/permissions``)."""
    return Me(key_id=principal.key_id, name=principal.name, role=principal.role, team=principal.team,
              expires_at=principal.expires_at, permissions=sorted(ROLE_PERMISSIONS[principal.role]))
