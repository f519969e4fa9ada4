"""The OpenSearch adapter (production, ``docker-compose.yml``): the same documents in one index over the
REST API with httpx. ``q`` is a multi_match with ``fuzziness: AUTO`` on name, description and tags
(every word must match; one typo per word is forgiven, so "bertt" finds "bert-base-chinese"), or a
prefix of the name. Metrics are kept twice: ``metrics`` as
stored-only JSON for answers, and ``metric_values`` as nested (name, value) pairs, so any metric name
(dots included) can be filtered and sorted on without growing the mapping."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
import orjson

from libs.search.port import SearchDocument, SearchHit, SearchPage, SearchQuery

_OPS = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "model_id": {"type": "keyword"},
        "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "description": {"type": "text"},
        "type": {"type": "keyword"},
        "framework": {"type": "keyword"},
        "task": {"type": "keyword"},
        "owner": {"type": "keyword"},
        "model_tags": {"type": "object", "enabled": False},
        "version": {"type": "keyword"},
        "version_id": {"type": "keyword"},
        "status": {"type": "keyword"},
        "metrics": {"type": "object", "enabled": False},
        "metric_values": {"type": "nested", "properties": {
            "name": {"type": "keyword"}, "value": {"type": "double"}}},
        "version_tags": {"type": "keyword"},
        # the simple analyzer splits "team:audio" into words, as Postgres does; the standard one would not
        "tag_terms": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "simple"}}},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}


def _source(doc: SearchDocument) -> dict[str, Any]:
    return {
        "model_id": str(doc.model_id), "name": doc.name, "description": doc.description, "type": doc.type,
        "framework": doc.framework, "task": doc.task, "owner": doc.owner, "model_tags": doc.model_tags,
        "version": doc.version, "version_id": str(doc.version_id) if doc.version_id else None,
        "status": doc.status, "metrics": doc.metrics,
        "metric_values": [{"name": k, "value": v} for k, v in sorted(doc.metrics.items())],
        "version_tags": list(doc.version_tags), "tag_terms": doc.tag_terms(),
        "created_at": doc.created_at.isoformat(), "updated_at": doc.updated_at.isoformat(),
    }


def _document(src: dict[str, Any]) -> SearchDocument:
    return SearchDocument(
        model_id=UUID(src["model_id"]), name=src["name"], description=src.get("description") or "",
        type=src["type"], framework=src["framework"], task=src.get("task"), owner=src["owner"],
        model_tags=src.get("model_tags") or {}, version=src.get("version"),
        version_id=UUID(src["version_id"]) if src.get("version_id") else None, status=src.get("status"),
        metrics=src.get("metrics") or {}, version_tags=tuple(src.get("version_tags") or ()),
        created_at=datetime.fromisoformat(src["created_at"]), updated_at=datetime.fromisoformat(src["updated_at"]),
    )


def _metric_clause(name: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {"nested": {"path": "metric_values", "query": {"bool": {"filter": [
        {"term": {"metric_values.name": name}}, inner]}}}}


def build_request(query: SearchQuery) -> dict[str, Any]:
    """The _search body for a query (pure, so unit tests can read it)."""
    filters: list[dict[str, Any]] = []
    must: list[dict[str, Any]] = []
    if query.q:
        must.append({"bool": {"should": [
            {"multi_match": {"query": query.q, "fields": ["name^3", "description", "tag_terms.text^2"],
                             "fuzziness": "AUTO", "prefix_length": 1, "operator": "and"}},
            {"match_phrase_prefix": {"name": {"query": query.q, "boost": 2}}},
        ], "minimum_should_match": 1}})
    if query.model_ids is not None:
        filters.append({"terms": {"model_id": sorted(str(m) for m in query.model_ids)}})
    for column in ("framework", "task", "type"):
        value = getattr(query, column)
        if value is not None:
            filters.append({"term": {column: value}})
    if query.stage is not None:
        filters.append({"term": {"status": query.stage}})
    for tag in query.tags:
        filters.append({"term": {"tag_terms": tag}})
    for r in query.metric_ranges:
        inner = {"term": {"metric_values.value": r.value}} if r.op == "=" else \
            {"range": {"metric_values.value": {_OPS[r.op]: r.value}}}
        filters.append(_metric_clause(r.metric, inner))
    sort: list[Any]
    if query.sorts_by_metric:
        sort = [{"metric_values.value": {
            "order": query.order, "missing": "_last", "mode": "max",
            "nested": {"path": "metric_values", "filter": {"term": {"metric_values.name": query.sort_by}}}}}]
    elif query.sort_by == "relevance" and query.q:
        sort = [{"_score": {"order": query.order}}, {"created_at": {"order": "desc"}}]
    else:
        field = {"name": "name.raw"}.get(query.sort_by, query.sort_by if query.sort_by != "relevance" else "created_at")
        sort = [{field: {"order": query.order}}]
    sort.append({"model_id": {"order": "asc"}})
    return {
        "query": {"bool": {"filter": filters, "must": must or [{"match_all": {}}]}},
        "sort": sort, "from": query.offset, "size": query.page_size, "track_total_hits": True,
        "track_scores": True,
    }


class OpenSearchIndex:
    def __init__(self, url: str, *, index: str = "cairn-models", refresh: str = "wait_for", timeout: float = 10) -> None:
        parts = urlsplit(url)
        auth = None
        if parts.username:
            auth = (parts.username, parts.password or "")
            parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        self.base_url = urlunsplit(parts).rstrip("/")
        self.index = index
        self.refresh = refresh  # wait_for: a write is searchable when it returns, as the port promises
        self._auth = auth
        self._timeout = timeout
        self.client: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        assert self.client is not None, "OpenSearchIndex.open() was not called"
        return self.client

    async def open(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.base_url, auth=self._auth, timeout=self._timeout,
                                        headers={"content-type": "application/json"})
        exists = await self.client.head(f"/{self.index}")
        if exists.status_code == 404:
            created = await self.client.put(f"/{self.index}", content=orjson.dumps({"mappings": MAPPINGS}))
            if created.status_code >= 400 and "resource_already_exists" not in created.text:
                created.raise_for_status()
        else:
            exists.raise_for_status()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def _bulk(self, lines: list[bytes]) -> None:
        response = await self._client().post(
            f"/{self.index}/_bulk", params={"refresh": self.refresh}, content=b"\n".join(lines) + b"\n",
            headers={"content-type": "application/x-ndjson"},
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            failed = [item for item in body["items"] for op in item.values()
                      if op.get("status", 200) >= 300 and op.get("status") != 404]
            if failed:
                raise RuntimeError(f"OpenSearch bulk write failed: {failed[:3]}")

    async def upsert(self, documents: Sequence[SearchDocument]) -> None:
        lines: list[bytes] = []
        for doc in documents:
            lines.append(orjson.dumps({"index": {"_id": str(doc.model_id)}}))
            lines.append(orjson.dumps(_source(doc)))
        if lines:
            await self._bulk(lines)

    async def delete(self, model_ids: Sequence[UUID]) -> None:
        lines = [orjson.dumps({"delete": {"_id": str(m)}}) for m in model_ids]
        if lines:
            await self._bulk(lines)

    async def clear(self) -> None:
        response = await self._client().post(
            f"/{self.index}/_delete_by_query", params={"refresh": "true", "conflicts": "proceed"},
            content=orjson.dumps({"query": {"match_all": {}}}),
        )
        response.raise_for_status()

    async def count(self) -> int:
        response = await self._client().get(f"/{self.index}/_count")
        response.raise_for_status()
        return int(response.json()["count"])

    async def ready(self) -> str:
        try:
            response = await self._client().get("/_cluster/health", params={"timeout": "2s"})
            return "ok" if response.status_code == 200 and response.json().get("status") != "red" else \
                f"error: cluster {response.status_code}"
        except Exception as exc:
            return f"error: {type(exc).__name__}"

    async def search(self, query: SearchQuery) -> SearchPage:
        if query.matches_nothing:
            return SearchPage(total=0, hits=[])
        response = await self._client().post(f"/{self.index}/_search", content=orjson.dumps(build_request(query)))
        response.raise_for_status()
        hits = response.json()["hits"]
        return SearchPage(
            total=int(hits["total"]["value"]),
            hits=[SearchHit(_document(h["_source"]), float(h.get("_score") or 0.0)) for h in hits["hits"]],
        )
