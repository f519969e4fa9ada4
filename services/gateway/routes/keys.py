"""/api/v1/keys and /api/v1/me: API keys, owned by the gateway itself."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.kit.http import problems
from services.gateway import handlers, store
from services.gateway.auth import require
from services.gateway.keys import ROLE_PERMISSIONS, ROLES, Principal, Role

router = APIRouter(prefix="/api/v1", tags=["keys"])
Admin = Annotated[Principal, Depends(require("keys:admin"))]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", description="Who uses the key; the actor in events")
    role: Role = Field(description=f"One of {', '.join(ROLES)}")


class KeyCreated(BaseModel):
    key_id: str
    name: str
    role: str
    token: str = Field(description="Shown once; only its hash is stored")


class KeyOut(BaseModel):
    key_id: str
    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class Me(BaseModel):
    key_id: str
    name: str
    role: str
    permissions: list[str]


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=problems(401, 403, 422))
async def create_key(body: KeyCreate, request: Request, principal: Admin) -> KeyCreated:
    """Issue an API key. Emits ApiKeyCreated (without the secret)."""
    gw = request.app.state.gateway
    new = await handlers.create_key(gw.runtime.pool, name=body.name, role=body.role, created_by=principal.name,
                                    traceparent=request.headers.get("traceparent"))
    return KeyCreated(key_id=new.key_id, name=body.name, role=body.role, token=new.token)


@router.get("/keys", response_model=list[KeyOut], responses=problems(401, 403))
async def list_keys(request: Request, principal: Admin) -> list[KeyOut]:
    return [KeyOut(**dict(r)) for r in await store.list_keys(request.app.state.gateway.runtime.pool)]


@router.delete("/keys/{key_id}", status_code=204, responses=problems(401, 403, 404))
async def revoke_key(key_id: str, request: Request, principal: Admin) -> Response:
    """Revoke a key; it is refused from then on. Emits ApiKeyRevoked."""
    gw = request.app.state.gateway
    await handlers.revoke_key(gw.runtime.pool, key_id, actor=principal.name, traceparent=request.headers.get("traceparent"))
    gw.auth.forget(key_id)
    return Response(status_code=204)


@router.get("/me", response_model=Me, responses=problems(401))
async def me(principal: Annotated[Principal, Depends(require("models:read"))]) -> Me:
    """Who this key is and what it may do."""
    return Me(key_id=principal.key_id, name=principal.name, role=principal.role,
              permissions=sorted(ROLE_PERMISSIONS[principal.role]))
