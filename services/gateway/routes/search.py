"""/api/v1/models/search: forwarded to the search-indexer. This router is included before the models
router, so ``/models/search`` is not taken for ``/models/{model_ref}``."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from libs.kit.http import problems
from services.gateway.model_access import Listing, forward_listing, require_listing
from services.search_indexer.schemas import SearchParams, SearchResponse

router = APIRouter(prefix="/api/v1", tags=["search"])
SearchRead = Annotated[Listing, Depends(require_listing("search:read"))]


@router.get("/models/search", response_model=SearchResponse, responses=problems(401, 422, 502))
async def search_models(request: Request, listing: SearchRead, params: Annotated[SearchParams, Depends()]) -> Response:
    """Models by text (typos forgiven), framework, task, type, tags, stage and metric ranges
    (`metric=accuracy>=0.9`, repeatable), sorted by relevance, a field or any metric, with paging.
    Each row is a model with its representative version: the one live in production, else the newest.
    A key whose role lacks `search:read` finds only the models it owns or holds a live grant on (any
    level); with none, an empty page. `total` counts what the caller may see."""
    return await forward_listing(request, request.app.state.gateway.upstreams["search_indexer"], listing,
                                 "/internal/search", page=params.query.page, page_size=params.query.page_size)
