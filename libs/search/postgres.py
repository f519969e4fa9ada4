"""The default search index: Postgres full text (``tsvector``) plus ``pg_trgm`` word similarity for
typos, in its own schema (``search`` unless told otherwise) with its own small pool.

A query is two statements run at once on two connections: the page (``LIMIT``/``OFFSET``) and the
total (``count(*)``). Metrics also live one row per (model, metric) in ``metric_values``, indexed by
(metric, value), so sorting or filtering by any metric can walk an index instead of parsing JSON."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence
from uuid import UUID

import asyncpg

from libs.kit.db import checked_schema, connect, create_pool
from libs.kit.migrate import migrate
from libs.search.port import SearchDocument, SearchHit, SearchPage, SearchQuery

MIGRATIONS = Path(__file__).parent / "migrations"
_COLUMNS = ("model_id uuid, name text, description text, type text, framework text, task text, owner text, "
            "model_tags jsonb, version text, version_id uuid, status text, metrics jsonb, version_tags text[], "
            "tag_terms text[], created_at timestamptz, updated_at timestamptz, search_text text")
_SORT_COLUMNS = {"name": "d.name", "created_at": "d.created_at", "updated_at": "d.updated_at"}


def _row(doc: SearchDocument) -> dict[str, Any]:
    return {
        "model_id": str(doc.model_id), "name": doc.name, "description": doc.description, "type": doc.type,
        "framework": doc.framework, "task": doc.task, "owner": doc.owner, "model_tags": doc.model_tags,
        "version": doc.version, "version_id": str(doc.version_id) if doc.version_id else None,
        "status": doc.status, "metrics": doc.metrics, "version_tags": list(doc.version_tags),
        "tag_terms": doc.tag_terms(), "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(), "search_text": doc.text().lower(),
    }


def _document(r: asyncpg.Record) -> SearchDocument:
    return SearchDocument(
        model_id=r["model_id"], name=r["name"], description=r["description"], type=r["type"],
        framework=r["framework"], task=r["task"], owner=r["owner"], model_tags=r["model_tags"],
        version=r["version"], version_id=r["version_id"], status=r["status"], metrics=r["metrics"],
        version_tags=tuple(r["version_tags"]), created_at=r["created_at"], updated_at=r["updated_at"],
    )


class PostgresSearchIndex:
    def __init__(self, dsn: str, *, schema: str = "search", pool_size: int = 8) -> None:
        self.dsn = dsn
        self.schema = checked_schema(schema)
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        s = self.schema
        self._upsert_sql = (
            f"INSERT INTO {s}.documents (model_id, name, description, type, framework, task, owner, model_tags,"
            " version, version_id, status, metrics, version_tags, tag_terms, created_at, updated_at, search_text, tsv)"
            " SELECT d.model_id, d.name, d.description, d.type, d.framework, d.task, d.owner, d.model_tags,"
            " d.version, d.version_id, d.status, d.metrics, d.version_tags, d.tag_terms, d.created_at, d.updated_at,"
            " d.search_text,"
            " setweight(to_tsvector('simple', d.name), 'A')"
            " || setweight(to_tsvector('simple', d.description), 'B')"
            " || setweight(to_tsvector('simple', array_to_string(d.tag_terms, ' ')), 'C')"
            f" FROM jsonb_to_recordset($1::jsonb) AS d({_COLUMNS})"
            " ON CONFLICT (model_id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,"
            " type = EXCLUDED.type, framework = EXCLUDED.framework, task = EXCLUDED.task, owner = EXCLUDED.owner,"
            " model_tags = EXCLUDED.model_tags, version = EXCLUDED.version, version_id = EXCLUDED.version_id,"
            " status = EXCLUDED.status, metrics = EXCLUDED.metrics, version_tags = EXCLUDED.version_tags,"
            " tag_terms = EXCLUDED.tag_terms, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
            " search_text = EXCLUDED.search_text, tsv = EXCLUDED.tsv"
        )
        self._clear_metrics_sql = f"DELETE FROM {s}.metric_values WHERE model_id = ANY($1::uuid[])"
        self._metrics_sql = (
            f"INSERT INTO {s}.metric_values (model_id, metric, value)"
            " SELECT (d->>'model_id')::uuid, m.key, m.value::double precision"
            " FROM jsonb_array_elements($1::jsonb) AS d, jsonb_each_text(d->'metrics') AS m"
        )
        self._delete_sql = f"DELETE FROM {s}.documents WHERE model_id = ANY($1::uuid[])"

    async def open(self) -> None:
        conn = await connect(self.dsn)
        try:
            await migrate(conn, self.schema, MIGRATIONS)
        finally:
            await conn.close()
        self.pool = await create_pool(self.dsn, max_size=self.pool_size)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "PostgresSearchIndex.open() was not called"
        return self.pool

    async def upsert(self, documents: Sequence[SearchDocument]) -> None:
        if not documents:
            return
        rows = [_row(d) for d in documents]
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(self._upsert_sql, rows)
            await conn.execute(self._clear_metrics_sql, [d.model_id for d in documents])
            await conn.execute(self._metrics_sql, rows)

    async def delete(self, model_ids: Sequence[UUID]) -> None:
        if model_ids:
            await self._pool().execute(self._delete_sql, list(model_ids))

    async def clear(self) -> None:
        await self._pool().execute(f"TRUNCATE {self.schema}.metric_values, {self.schema}.documents")

    async def count(self) -> int:
        return await self._pool().fetchval(f"SELECT count(*) FROM {self.schema}.documents")

    async def ready(self) -> str:
        try:
            await asyncio.wait_for(self._pool().fetchval("SELECT 1"), 2)
            return "ok"
        except Exception as exc:  # readiness reports, it does not raise
            return f"error: {type(exc).__name__}"

    async def search(self, query: SearchQuery) -> SearchPage:
        where, params, where_params, score, joins, order = self._plan(query)
        s = self.schema
        page_sql = (
            f"SELECT d.*, {score} AS score FROM {s}.documents d {joins} WHERE {where}"
            f" ORDER BY {order} LIMIT {query.page_size} OFFSET {query.offset}"
        )
        count_sql = f"SELECT count(*) FROM {s}.documents d WHERE {where}"
        pool = self._pool()
        rows, total = await asyncio.gather(pool.fetch(page_sql, *params), pool.fetchval(count_sql, *where_params))
        return SearchPage(total=total, hits=[SearchHit(_document(r), float(r["score"])) for r in rows])

    def _plan(self, query: SearchQuery) -> tuple[str, list[Any], list[Any], str, str, str]:
        """WHERE clause, all parameters, those the WHERE clause alone uses, the score expression, extra joins and ORDER BY. Values are
        always parameters; only column names chosen here are spliced in."""
        params: list[Any] = []

        def p(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        clauses: list[str] = ["TRUE"]
        score = "0::float8"
        if query.q:
            text = p(query.q.lower())
            clauses.append(f"(d.tsv @@ websearch_to_tsquery('simple', {text}) OR {text} <% d.search_text)")
            score = (f"(ts_rank(d.tsv, websearch_to_tsquery('simple', {text}))"
                     f" + word_similarity({text}, d.search_text))::float8")
        for column in ("framework", "task", "type"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"d.{column} = {p(value)}")
        if query.stage is not None:
            clauses.append(f"d.status = {p(query.stage)}")
        if query.tags:
            clauses.append(f"d.tag_terms @> {p(list(query.tags))}::text[]")
        for r in query.metric_ranges:
            clauses.append(
                f"EXISTS (SELECT 1 FROM {self.schema}.metric_values m WHERE m.model_id = d.model_id"
                f" AND m.metric = {p(r.metric)} AND m.value {r.op} {p(r.value)})"
            )
        where_params = list(params)
        direction = "ASC" if query.order == "asc" else "DESC"
        joins = ""
        if query.sorts_by_metric:
            joins = (f"LEFT JOIN {self.schema}.metric_values sm ON sm.model_id = d.model_id"
                     f" AND sm.metric = {p(query.sort_by)}")
            order = f"sm.value {direction} NULLS LAST, d.model_id"
        elif query.sort_by == "relevance" and query.q:
            order = f"score {direction}, d.created_at DESC, d.model_id"
        else:
            column = _SORT_COLUMNS.get(query.sort_by, "d.created_at")
            order = f"{column} {direction}, d.model_id {direction}"
        return " AND ".join(clauses), params, where_params, score, joins, order
