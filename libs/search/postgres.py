"""The default search index: Postgres full text (``tsvector``) plus ``pg_trgm`` word similarity for
typos, in its own schema (``search`` unless told otherwise) with its own small pool.

A query is two statements run at once on two connections: the page (``LIMIT``/``OFFSET``) and the
total (``count(*)``). Metrics also live one row per (model, metric) in ``metric_values``, indexed by
(metric, value), so sorting or filtering by any metric can walk an index instead of parsing JSON."""
from __future__ import annotations

import asyncio
import time
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
            "tag_terms text[], created_at timestamptz, updated_at timestamptz")
#: How close a known word must be to a term that is not one to stand in for it (pg_trgm similarity),
#: and how many stand in at most: "bertt" → "bert" (0.57); "bert" and "albert" (0.33) stay apart.
SIMILARITY = 0.45
#: Walk the metric index when a page needs at most this many probes on average; else filter first.
_MAX_WALK = 5000
ALTERNATIVES = 8
_SORT_COLUMNS = {"name": "d.name", "created_at": "d.created_at", "updated_at": "d.updated_at"}


def _row(doc: SearchDocument) -> dict[str, Any]:
    return {
        "model_id": str(doc.model_id), "name": doc.name, "description": doc.description, "type": doc.type,
        "framework": doc.framework, "task": doc.task, "owner": doc.owner, "model_tags": doc.model_tags,
        "version": doc.version, "version_id": str(doc.version_id) if doc.version_id else None,
        "status": doc.status, "metrics": doc.metrics, "version_tags": list(doc.version_tags),
        "tag_terms": doc.tag_terms(), "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
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
        self._size_estimate, self._size_at = 1.0, -1e9
        s = self.schema
        self._upsert_sql = (
            f"INSERT INTO {s}.documents (model_id, name, description, type, framework, task, owner, model_tags,"
            " version, version_id, status, metrics, version_tags, tag_terms, created_at, updated_at, tsv)"
            " SELECT d.model_id, d.name, d.description, d.type, d.framework, d.task, d.owner, d.model_tags,"
            " d.version, d.version_id, d.status, d.metrics, d.version_tags, d.tag_terms, d.created_at, d.updated_at,"
            " setweight(to_tsvector('simple', d.name), 'A')"
            " || setweight(to_tsvector('simple', d.description), 'B')"
            " || setweight(to_tsvector('simple', array_to_string(d.tag_terms, ' ')), 'C')"
            f" FROM jsonb_to_recordset($1::jsonb) AS d({_COLUMNS})"
            " ON CONFLICT (model_id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,"
            " type = EXCLUDED.type, framework = EXCLUDED.framework, task = EXCLUDED.task, owner = EXCLUDED.owner,"
            " model_tags = EXCLUDED.model_tags, version = EXCLUDED.version, version_id = EXCLUDED.version_id,"
            " status = EXCLUDED.status, metrics = EXCLUDED.metrics, version_tags = EXCLUDED.version_tags,"
            " tag_terms = EXCLUDED.tag_terms, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
            " tsv = EXCLUDED.tsv"
            " RETURNING (xmax = 0) AS inserted"  # xmax is 0 on a freshly inserted row, set on an updated one
        )
        self._add_sql = f"UPDATE {s}.stats SET documents = documents + $1"
        self._clear_metrics_sql = f"DELETE FROM {s}.metric_values WHERE model_id = ANY($1::uuid[])"
        self._metrics_sql = (
            f"INSERT INTO {s}.metric_values (model_id, metric, value)"
            " SELECT (d->>'model_id')::uuid, m.key, m.value::double precision"
            " FROM jsonb_array_elements($1::jsonb) AS d, jsonb_each_text(d->'metrics') AS m"
        )
        self._words_sql = (
            f"INSERT INTO {s}.words (word) SELECT DISTINCT w FROM {s}.documents d, unnest(tsvector_to_array(d.tsv)) w"
            " WHERE d.model_id = ANY($1::uuid[]) AND w !~ '^[0-9.]+$' AND strpos(w, '-') = 0"
            " ON CONFLICT DO NOTHING"
        )
        # each term of q: is it a known word, and which known words are closest to it
        self._terms_sql = (
            "SELECT t.term,"
            f" EXISTS (SELECT 1 FROM {s}.words WHERE word = t.term) AS known,"
            f" ARRAY(SELECT word FROM {s}.words WHERE word % t.term AND similarity(word, t.term) >= $2"
            "        ORDER BY similarity(word, t.term) DESC, word LIMIT $3) AS similar"
            " FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('simple', $1))) AS term) t"
            " WHERE strpos(t.term, '-') = 0 ORDER BY t.term"
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
            written = await conn.fetch(self._upsert_sql, rows)
            await conn.execute(self._add_sql, sum(1 for r in written if r["inserted"]))
            await conn.execute(self._clear_metrics_sql, [d.model_id for d in documents])
            await conn.execute(self._metrics_sql, rows)
            await conn.execute(self._words_sql, [d.model_id for d in documents])

    async def delete(self, model_ids: Sequence[UUID]) -> None:
        if not model_ids:
            return
        async with self._pool().acquire() as conn, conn.transaction():
            status = await conn.execute(self._delete_sql, list(model_ids))
            await conn.execute(self._add_sql, -int(status.split()[-1]))

    async def clear(self) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(f"TRUNCATE {self.schema}.metric_values, {self.schema}.documents, {self.schema}.words")
            await conn.execute(f"UPDATE {self.schema}.stats SET documents = 0")

    async def count(self) -> int:
        return await self._pool().fetchval(f"SELECT documents FROM {self.schema}.stats")

    async def ready(self) -> str:
        try:
            await asyncio.wait_for(self._pool().fetchval("SELECT 1"), 2)
            return "ok"
        except Exception as exc:  # readiness reports, it does not raise
            return f"error: {type(exc).__name__}"

    async def search(self, query: SearchQuery) -> SearchPage:
        pool = self._pool()
        if query.matches_nothing:
            return SearchPage(total=0, hits=[])
        text_query: tuple[str, str] | None = None
        if query.q:
            text_query = await self._text_query(pool, query.q)
            if text_query is None:
                return SearchPage(total=0, hits=[])
        where, params = self._where(query, text_query)
        direction = "ASC" if query.order == "asc" else "DESC"
        count_sql = (f"SELECT count(*) FROM {self.schema}.documents d WHERE {where}" if where != "TRUE"
                     else f"SELECT documents FROM {self.schema}.stats")
        if query.sorts_by_metric:
            return await self._by_metric(pool, query, text_query, where, params, count_sql, direction)
        score, extra = _score(text_query, len(params) + 1)
        if query.sort_by == "relevance" and text_query:
            keys = ("score", "d.created_at", "d.model_id")
        else:
            keys = (_SORT_COLUMNS.get(query.sort_by, "d.created_at"), "d.model_id")
        n = len(params) + len(extra)
        # rank narrow rows (id, sort keys, score), then read the whole rows of the one page only
        picked = ", ".join(k for k in keys if k != "score")
        order = ", ".join(f"{k} {direction}" for k in keys)
        outer = ", ".join(f"top.{k.split('.')[-1]} {direction}" for k in keys)
        if keys[0] == "score":
            # ranking reads every match anyway: count them in the same pass instead of a second scan
            page_sql = (f"WITH top AS (SELECT {picked}, {score} AS score, count(*) OVER () AS total"
                        f" FROM {self.schema}.documents d WHERE {where} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2})"
                        f" SELECT d.*, top.score, top.total FROM top JOIN {self.schema}.documents d USING (model_id)"
                        f" ORDER BY {outer}")
            rows = await pool.fetch(page_sql, *params, *extra, query.page_size, query.offset)
            total = rows[0]["total"] if rows else await pool.fetchval(count_sql, *params)
        else:
            page_sql = (f"WITH top AS (SELECT {picked}, {score} AS score FROM {self.schema}.documents d WHERE {where}"
                        f" ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2})"
                        f" SELECT d.*, top.score FROM top JOIN {self.schema}.documents d USING (model_id) ORDER BY {outer}")
            rows, total = await asyncio.gather(pool.fetch(page_sql, *params, *extra, query.page_size, query.offset),
                                               pool.fetchval(count_sql, *params))
        return _page(query, total, [SearchHit(_document(r), float(r["score"])) for r in rows])

    async def _by_metric(self, pool: asyncpg.Pool, query: SearchQuery, text_query: tuple[str, str] | None,
                         where: str, params: list[Any], count_sql: str, direction: str) -> SearchPage:
        """Sorted by a metric, models without it last. The count comes first and picks the plan: when the
        filters keep many models, walk the (metric, value, model_id) index in order and keep the rows that
        pass (a few probes per hit); when they keep few, filter first and sort what is left. Models
        without the metric are read only when that page comes back short (it reaches past the others)."""
        s = self.schema
        total = await pool.fetchval(count_sql, *params)
        if total <= query.offset:
            return SearchPage(total=total, hits=[])
        k = f"${len(params) + 1}"
        score, extra = _score(text_query, len(params) + 2)
        n = len(params) + 1 + len(extra)
        walk = where == "TRUE" or (query.offset + query.page_size) * await self._size() / total <= _MAX_WALK
        if walk:
            page_sql = (f"SELECT d.*, {score} AS score FROM {s}.metric_values sm JOIN {s}.documents d"
                        f" ON d.model_id = sm.model_id WHERE sm.metric = {k} AND {where}"
                        f" ORDER BY sm.value {direction}, sm.model_id {direction} LIMIT ${n + 1} OFFSET ${n + 2}")
        else:
            page_sql = (f"WITH d AS MATERIALIZED (SELECT * FROM {s}.documents d WHERE {where})"
                        f" SELECT d.*, {score} AS score FROM d JOIN {s}.metric_values sm"
                        f" ON sm.model_id = d.model_id AND sm.metric = {k}"
                        f" ORDER BY sm.value {direction}, sm.model_id {direction} LIMIT ${n + 1} OFFSET ${n + 2}")
        with_k = [*params, query.sort_by]
        rows = await pool.fetch(page_sql, *with_k, *extra, query.page_size, query.offset)
        hits = [SearchHit(_document(r), float(r["score"])) for r in rows]
        wanted = query.page_size - len(hits)
        if wanted > 0 and total > query.offset + len(hits):
            with_metric = await pool.fetchval(
                f"SELECT count(*) FROM {s}.documents d WHERE {where} AND EXISTS"
                f" (SELECT 1 FROM {s}.metric_values m WHERE m.model_id = d.model_id AND m.metric = {k})", *with_k)
            rest_sql = (
                f"SELECT d.*, {score} AS score FROM {s}.documents d WHERE {where} AND NOT EXISTS"
                f" (SELECT 1 FROM {s}.metric_values m WHERE m.model_id = d.model_id AND m.metric = {k})"
                f" ORDER BY d.model_id {direction} LIMIT ${n + 1} OFFSET ${n + 2}"
            )
            rest = await pool.fetch(rest_sql, *with_k, *extra, wanted, max(0, query.offset - with_metric))
            hits += [SearchHit(_document(r), float(r["score"])) for r in rest]
        return _page(query, total, hits)

    async def _size(self) -> float:
        """About how many documents there are (the planner's estimate, refreshed by autovacuum)."""
        now = time.monotonic()
        if now - self._size_at > 60:
            estimate = await self._pool().fetchval(
                "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", f"{self.schema}.documents")
            self._size_estimate, self._size_at = max(float(estimate or 0), 1.0), now
        return self._size_estimate

    async def _text_query(self, pool: asyncpg.Pool, q: str) -> tuple[str, str] | None:
        """(expanded, exact) tsquery texts for q, or None when q has no word. Every term must match; a term
        matches itself, words it starts (prefix), and, when it is not a known word, the known words most
        similar to it (typos)."""
        rows = await pool.fetch(self._terms_sql, q, SIMILARITY, ALTERNATIVES)
        if not rows:
            return None
        expanded, exact = [], []
        for r in rows:
            term = _lexeme(r["term"])
            options = [term, f"{term}:*"]
            if not r["known"]:
                options += [_lexeme(w) for w in r["similar"]]
            expanded.append("(" + " | ".join(options) + ")")
            exact.append(term)
        return " & ".join(expanded), " & ".join(exact)

    def _where(self, query: SearchQuery, text_query: tuple[str, str] | None) -> tuple[str, list[Any]]:
        """WHERE clause and its parameters ($1 is the expanded tsquery when there is text). Values are
        always parameters; only column names chosen here are spliced in."""
        params: list[Any] = []

        def p(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        clauses: list[str] = ["TRUE"]
        if text_query:
            clauses.append(f"d.tsv @@ {p(text_query[0])}::tsquery")
        if query.model_ids is not None:
            clauses.append(f"d.model_id = ANY({p(list(query.model_ids))}::uuid[])")
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
        return " AND ".join(clauses), params


def _page(query: SearchQuery, counted: int, hits: list[SearchHit]) -> SearchPage:
    """The page with a total that agrees with it. The count and the page are separate statements (run side
    by side for speed), so a document written between them can make them disagree (total 1, no hits); a
    short page is the last one and tells the total exactly, a full one tells a lower bound."""
    if len(hits) < query.page_size:
        total = query.offset + len(hits) if hits or query.offset == 0 else min(counted, query.offset)
    else:
        total = max(counted, query.offset + len(hits))
    return SearchPage(total=total, hits=hits)


def _score(text_query: tuple[str, str] | None, exact_at: int) -> tuple[str, list[Any]]:
    """The relevance expression and the parameter it adds (the exact tsquery, as ``$exact_at``); words
    typed exactly weigh more than their prefixes and corrections."""
    if not text_query:
        return "0::float8", []
    return (f"(ts_rank(d.tsv, $1::tsquery) + CASE WHEN d.tsv @@ ${exact_at}::tsquery THEN 1 ELSE 0 END)::float8",
            [text_query[1]])


def _lexeme(word: str) -> str:
    """A word as a quoted tsquery lexeme, so nothing in it is read as an operator."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
