"""The search-indexer's internal HTTP API: search, and rebuild the read model."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends

from libs.kit.http import Caller
from services.search_indexer.handlers import Indexer
from services.search_indexer.schemas import RebuildRequest, RebuildResult, SearchParams, SearchResponse, response


def build_router(indexer: Indexer, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/search", tags=["search"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.get("", response_model=SearchResponse)
    async def search(caller: CallerDep, params: Annotated[SearchParams, Depends()]) -> SearchResponse:
        return response(params.query, await indexer.index.search(params.query))

    @router.post("/rebuild", response_model=RebuildResult)
    async def rebuild(caller: CallerDep, body: RebuildRequest | None = None) -> RebuildResult:
        report = await indexer.rebuild((body or RebuildRequest()).source)
        return RebuildResult(**asdict(report))

    return router
