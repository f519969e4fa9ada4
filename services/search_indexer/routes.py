"""The search-indexer's internal HTTP API: search, and rebuild the read model."""

from dataclasses import asdict, replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends

from libs.kit.http import Caller, read_model_scope
from services.search_indexer.handlers import Indexer
from services.search_indexer.schemas import RebuildRequest, RebuildResult, SearchParams, SearchResponse, response


def build_router(indexer: Indexer, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/search", tags=["search"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.get("", response_model=SearchResponse)
    async def search(caller: CallerDep, params: Annotated[SearchParams, Depends()]) -> SearchResponse:
        return response(params.query, await indexer.index.search(params.query))

    @router.post("/scoped", response_model=SearchResponse)
    async def search_scoped(caller: CallerDep, params: Annotated[SearchParams, Depends()],
                            model_ids: Annotated[list[UUID], Depends(read_model_scope)]) -> SearchResponse:
        """The same search restricted to the models in the body (``ModelScope``): the gateway sends it for
        a caller whose role cannot read every model. Totals and paging count only those models."""
        query = replace(params.query, model_ids=tuple(model_ids))
        return response(query, await indexer.index.search(query))

    @router.post("/rebuild", response_model=RebuildResult)
    async def rebuild(caller: CallerDep, body: RebuildRequest | None = None) -> RebuildResult:
        report = await indexer.rebuild((body or RebuildRequest()).source)
        return RebuildResult(**asdict(report))

    return router
