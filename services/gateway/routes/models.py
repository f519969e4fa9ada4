"""/api/v1/models: forwarded to the registry service."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from libs.kit.http import problems
from services.gateway.auth import require
from services.gateway.idempotency import idempotent
from services.gateway.keys import Principal
from services.gateway.model_access import Listing, forward_listing, require_listing
from services.registry.schemas import ModelCreate, ModelListQuery, ModelOut, ModelPage, ModelPatch

router = APIRouter(prefix="/api/v1", tags=["models"])
Read = Annotated[Principal, Depends(require("models:read"))]
Write = Annotated[Principal, Depends(require("models:write"))]
ListRead = Annotated[Listing, Depends(require_listing("models:read"))]


@router.post("/models", status_code=201, response_model=ModelOut, responses=problems(400, 401, 403, 409, 413, 422))
async def register_model(
    body: ModelCreate, request: Request, principal: Write,
    idempotency_key: str | None = Header(None, description="Retries with the same key return the first response"),
) -> Response:
    """Register a model with typed metadata. Emits ModelRegistered."""
    gw = request.app.state.gateway
    raw = await request.body()
    return await idempotent(
        request, principal.key_id, raw,
        lambda: gw.upstreams["registry"].forward(request, principal, "/internal/models", body=raw),
        redis=gw.redis, ttl_s=gw.settings.idempotency_ttl_s,
    )


@router.get("/models", response_model=ModelPage, responses=problems(401, 422))
async def list_models(request: Request, listing: ListRead, query: Annotated[ModelListQuery, Depends()]) -> Response:
    """List live models, filtered by type, framework, task, owner, tags or text, with paging. A key whose
    role lacks `models:read` sees only the models it owns or holds a live grant on (any level); with
    none, an empty page. `total` counts what the caller may see."""
    return await forward_listing(request, request.app.state.gateway.upstreams["registry"], listing,
                                 "/internal/models", page=query.page, page_size=query.page_size)


@router.get("/model-types", responses=problems(401, 403))
async def model_types(request: Request, principal: Read) -> Response:
    """The typed metadata each model type accepts, as JSON Schema."""
    return await request.app.state.gateway.upstreams["registry"].forward(request, principal, "/internal/model-types")


@router.get("/models/{model_ref}", response_model=ModelOut, responses=problems(401, 403, 404))
async def get_model(model_ref: str, request: Request, principal: Read) -> Response:
    """A model by id or by name. The ETag is its revision."""
    return await request.app.state.gateway.upstreams["registry"].forward(request, principal, f"/internal/models/{model_ref}")


@router.patch("/models/{model_ref}", response_model=ModelOut, responses=problems(400, 401, 403, 404, 412, 422))
async def patch_model(
    model_ref: str, body: ModelPatch, request: Request, principal: Write,
    if_match: str | None = Header(None, description='Revision ETag, e.g. "3": refuse if the model changed'),
) -> Response:
    """Update description, task, framework, owner; metadata and tags as JSON merge patches. Emits ModelUpdated."""
    return await request.app.state.gateway.upstreams["registry"].forward(
        request, principal, f"/internal/models/{model_ref}", body=await request.body()
    )


@router.put("/models/{model_ref}", response_model=ModelOut, responses=problems(400, 401, 403, 404, 412, 422))
async def put_model(
    model_ref: str, body: ModelPatch, request: Request, principal: Write,
    if_match: str | None = Header(None),
) -> Response:
    """Same as PATCH (the shape seed 001 specifies for updates)."""
    return await request.app.state.gateway.upstreams["registry"].forward(
        request, principal, f"/internal/models/{model_ref}", body=await request.body()
    )


@router.delete("/models/{model_ref}", status_code=204, responses=problems(401, 403, 404, 412))
async def delete_model(
    model_ref: str, request: Request, principal: Write, if_match: str | None = Header(None)
) -> Response:
    """Soft-delete: the model disappears from reads, its history stays. Emits ModelDeleted."""
    return await request.app.state.gateway.upstreams["registry"].forward(request, principal, f"/internal/models/{model_ref}")
