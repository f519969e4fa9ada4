"""The search-indexer's internal HTTP API: search, and rebuild the read model."""

from dataclasses import asdict, replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from libs.kit.http import Caller, validation_error_from
from services.search_indexer.handlers import Indexer
from services.search_indexer.schemas import (RebuildRequest, RebuildResult, SearchParams, SearchResponse, SearchScope,
                                             response)


async def read_scope(request: Request) -> list[UUID]:
    """The scope the gateway sent, read whatever content type the forwarded request named (the gateway
    passes the client's, which has nothing to do with this body)."""
    try:
        return SearchScope.model_validate_json(await request.body() or b"{}").model_ids
    except ValidationError as exc:
        raise validation_error_from(exc.errors()) from None


def build_router(indexer: Indexer, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/search", tags=["search"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.get("", response_model=SearchResponse)
    async def search(caller: CallerDep, params: Annotated[SearchParams, Depends()]) -> SearchResponse:
        return response(params.query, await indexer.index.search(params.query))

    @router.post("/scoped", response_model=SearchResponse)
    async def search_scoped(caller: CallerDep, params: Annotated[SearchParams, Depends()],
                            model_ids: Annotated[list[UUID], Depends(read_scope)]) -> SearchResponse:
        """The same search restricted to the models in the body (``SearchScope``): the gateway sends it for
        a caller whose role cannot read every model. Totals and paging count only those models."""
        query = replace(params.query, model_ids=tuple(model_ids))
        return response(query, await indexer.index.search(query))

    @router.post("/rebuild", response_model=RebuildResult)
    async def rebuild(caller: CallerDep, body: RebuildRequest | None = None) -> RebuildResult:
        report = await indexer.rebuild((body or RebuildRequest()).source)
        return RebuildResult(**asdict(report))

    return router
