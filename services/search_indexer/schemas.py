"""The search HTTP contract; the gateway imports it so its OpenAPI shows the same types."""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from libs.search.port import SearchHit, SearchPage, SearchQuery
from libs.search.query import build_query


class SearchParams:
    """Query parameters of ``GET /models/search``; a dependency shared by the search-indexer and the gateway,
    so the gateway refuses a bad query (422 naming the parameter) before forwarding it."""

    def __init__(
        self,
        q: str | None = Query(None, max_length=200, description="Words of name, description or tags; typos "
                                                                "are forgiven (`bertt` finds bert-base-chinese)"),
        framework: str | None = Query(None, max_length=64),
        task: str | None = Query(None, max_length=128),
        type: str | None = Query(None, max_length=64, description="Model type (transformer, vision, ...)"),
        tag: list[str] | None = Query(None, description="`key` or `key:value` of a model tag, or a version tag; "
                                                        "repeat to require several"),
        stage: str | None = Query(None, description="Status of the row's version: draft, staging, production, "
                                                    "archived, deprecated"),
        metric: list[str] | None = Query(None, description="Metric range `<name><op><number>`, op one of >=, >, <=, "
                                                           "<, =; repeat for several, e.g. metric=accuracy>=0.9"),
        sort_by: str | None = Query(None, max_length=64, description="relevance, name, created_at, updated_at, or a "
                                                                     "metric name (rows without it come last). "
                                                                     "Default: relevance with q, else created_at"),
        order: Literal["asc", "desc"] = "desc",
        page: int = Query(1, ge=1),
        page_size: int = Query(20, ge=1, le=100),
    ) -> None:
        self.query: SearchQuery = build_query(
            q=q, framework=framework, task=task, type=type, tag=tag, stage=stage, metric=metric, sort_by=sort_by,
            order=order, page=page, page_size=page_size,
        )


class SearchResult(BaseModel):
    """One model and its representative version: the version live in production if any, else the newest."""

    model_id: UUID
    name: str
    version: str | None = Field(description="The representative version; null when the model has none yet")
    status: str | None = Field(description="Stage of that version: draft, staging, production, archived, deprecated")
    metrics: dict[str, float]
    created_at: datetime = Field(description="When the model was registered")
    updated_at: datetime
    type: str
    framework: str
    task: str | None
    owner: str
    description: str
    tags: dict[str, str] = Field(description="The model's tags")
    version_tags: list[str]
    score: float = Field(description="Relevance to q (0 without q)")


class SearchResponse(BaseModel):
    total: int
    page: int
    page_size: int
    models: list[SearchResult]


def _result(hit: SearchHit) -> SearchResult:
    d = hit.document
    return SearchResult(
        model_id=d.model_id, name=d.name, version=d.version, status=d.status, metrics=d.metrics,
        created_at=d.created_at, updated_at=d.updated_at, type=d.type, framework=d.framework, task=d.task,
        owner=d.owner, description=d.description, tags=d.model_tags, version_tags=list(d.version_tags),
        score=round(hit.score, 6),
    )


def response(query: SearchQuery, page: SearchPage) -> SearchResponse:
    return SearchResponse(total=page.total, page=query.page, page_size=query.page_size,
                          models=[_result(h) for h in page.hits])


class RebuildRequest(BaseModel):
    source: Literal["audit", "projection"] = Field(
        "audit", description="audit: replay the audit log into a fresh projection and index; "
                             "projection: re-index every model from the projection kept here")


class RebuildResult(BaseModel):
    source: str
    events_replayed: int
    events_skipped: int
    models: int
    documents: int
    not_in_audit: int = Field(description="Events applied live that the audit log did not hold yet")
