"""The search port: what the search-indexer writes (whole documents, one per model) and what a query
asks. Adapters (Postgres, OpenSearch) implement ``SearchIndex`` and pass the same contract suite
(``tests/integration/search/contract.py``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, Sequence
from uuid import UUID

Stage = Literal["draft", "staging", "production", "archived", "deprecated"]
STAGES: tuple[str, ...] = ("draft", "staging", "production", "archived", "deprecated")
Comparison = Literal[">=", ">", "<=", "<", "="]
#: Fields a result can be sorted by; any other ``sort_by`` names a metric.
SORT_FIELDS: tuple[str, ...] = ("relevance", "name", "created_at", "updated_at")


@dataclass(frozen=True)
class SearchDocument:
    """One model with its representative version (see ``services/search_indexer/domain.py``)."""

    model_id: UUID
    name: str
    type: str
    framework: str
    owner: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    task: str | None = None
    model_tags: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    version_id: UUID | None = None
    status: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    version_tags: tuple[str, ...] = ()

    def tag_terms(self) -> list[str]:
        """What ``tag=`` matches: each model tag as ``key`` and ``key:value``, and each version tag."""
        terms = {t for k, v in self.model_tags.items() for t in (k, f"{k}:{v}")}
        terms.update(self.version_tags)
        return sorted(terms)


@dataclass(frozen=True)
class MetricRange:
    metric: str
    op: Comparison
    value: float

    def accepts(self, value: float | None) -> bool:
        if value is None:
            return False
        return {">=": value >= self.value, ">": value > self.value, "<=": value <= self.value,
                "<": value < self.value, "=": value == self.value}[self.op]


@dataclass(frozen=True)
class SearchQuery:
    """A validated query (``libs/search/query.py`` builds it from request parameters)."""

    q: str | None = None
    framework: str | None = None
    task: str | None = None
    type: str | None = None
    tags: tuple[str, ...] = ()
    stage: str | None = None
    metric_ranges: tuple[MetricRange, ...] = ()
    sort_by: str = "created_at"
    order: Literal["asc", "desc"] = "desc"
    page: int = 1
    page_size: int = 20
    #: Only these models (None: no restriction; empty: none at all). Never from a user: the gateway sets
    #: it for a caller whose role cannot read every model, to the models that caller may read.
    model_ids: tuple[UUID, ...] | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def sorts_by_metric(self) -> bool:
        return self.sort_by not in SORT_FIELDS

    @property
    def matches_nothing(self) -> bool:
        """Restricted to no model at all: every adapter answers an empty page without asking its store."""
        return self.model_ids is not None and not self.model_ids


@dataclass(frozen=True)
class SearchHit:
    document: SearchDocument
    score: float = 0.0


@dataclass(frozen=True)
class SearchPage:
    total: int
    hits: list[SearchHit]


class SearchIndex(Protocol):
    """A store of search documents keyed by model id. Writes are whole documents, so applying the same
    write twice has no second effect, and a later write replaces an earlier one."""

    async def open(self) -> None:
        """Connect and create what is missing (schema, index, mappings)."""

    async def close(self) -> None: ...

    async def upsert(self, documents: Sequence[SearchDocument]) -> None:
        """Insert or replace; visible to ``search`` when this returns."""

    async def delete(self, model_ids: Sequence[UUID]) -> None:
        """Remove; ids that are not there are ignored."""

    async def clear(self) -> None:
        """Remove every document (a rebuild starts with this)."""

    async def search(self, query: SearchQuery) -> SearchPage: ...

    async def count(self) -> int: ...

    async def ready(self) -> str:
        """``ok`` or ``error: ...`` for readiness checks."""
