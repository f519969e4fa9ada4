"""/api/v1/models/search: forwarded to the search-indexer. This router is included before the models
router, so ``/models/search`` is not taken for ``/models/{model_ref}``."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from libs.kit.http import problems
from services.gateway.auth import require
from services.gateway.keys import Principal
from services.search_indexer.schemas import SearchParams, SearchResponse

router = APIRouter(prefix="/api/v1", tags=["search"])
SearchRead = Annotated[Principal, Depends(require("search:read"))]


@router.get("/models/search", response_model=SearchResponse, responses=problems(401, 403, 422, 502))
async def search_models(request: Request, principal: SearchRead, params: Annotated[SearchParams, Depends()]) -> Response:
    """Models by text (typos forgiven), framework, task, type, tags, stage and metric ranges
    (`metric=accuracy>=0.9`, repeatable), sorted by relevance, a field or any metric, with paging.
    Each row is a model with its representative version: the one live in production, else the newest."""
    return await request.app.state.gateway.upstreams["search_indexer"].forward(
        request, principal, "/internal/search", query=request.url.query
    )
