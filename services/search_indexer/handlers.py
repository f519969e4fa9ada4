"""Use cases of the search-indexer: apply one event to a model's projection and re-index its document;
rebuild the projection and the index from the audit log (the durable history: the embedded broker's
log is memory only), or re-index from the projection (a new or emptied index)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator, Callable
from uuid import UUID

import asyncpg
import httpx
from pydantic import ValidationError

from libs.events.base import event_class
from libs.events.envelope import Envelope
from libs.kit.errors import UpstreamUnavailable
from libs.kit.uow import UnitOfWork
from libs.search.port import SearchIndex
from services.search_indexer import domain, store

log = logging.getLogger(__name__)
CONSUMER_GROUP = "search-indexer"
_BATCH = 500


async def _reindex(index: SearchIndex, views: list[domain.ModelView]) -> int:
    docs, gone = [], []
    for view in views:
        doc = domain.document(view)
        if doc is None:
            gone.append(UUID(view.model_id))
        else:
            docs.append(doc)
    await index.upsert(docs)
    await index.delete(gone)
    return len(docs)


class AuditHistory:
    """Reads the audit service's log in order, page by page (``GET /internal/audit?order=asc``)."""

    def __init__(self, base_url: str, token: str, page_size: int = 500,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self.token, self.page_size, self.transport = base_url, token, page_size, transport

    async def entries(self) -> AsyncIterator[dict[str, Any]]:
        headers = {"x-cairn-internal-token": self.token, "x-cairn-actor": "search-indexer"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30,
                                     transport=self.transport) as client:
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"order": "asc", "page_size": self.page_size}
                if cursor:
                    params["cursor"] = cursor
                try:
                    response = await client.get("/internal/audit", params=params)
                except httpx.TransportError:
                    raise UpstreamUnavailable("the audit service is not reachable; try the rebuild again") from None
                if response.status_code != 200:
                    raise UpstreamUnavailable(f"the audit service answered {response.status_code}")
                page = response.json()
                for entry in page["entries"]:
                    yield entry
                cursor = page.get("next_cursor")
                if not cursor:
                    return


@dataclass(frozen=True)
class RebuildReport:
    source: str
    events_replayed: int
    events_skipped: int
    models: int
    documents: int
    not_in_audit: int  # events applied live whose audit entry was not there yet (rebuild again later)


@dataclass
class _Pending:
    """One unit of work's models: as read (row-locked) and as the events applied so far left them."""

    read: dict[UUID, domain.ModelView] = field(default_factory=dict)
    views: dict[UUID, domain.ModelView] = field(default_factory=dict)


class Indexer:
    def __init__(self, index: SearchIndex, pool: Callable[[], asyncpg.Pool], history: AuditHistory) -> None:
        self.index = index
        self._pool = pool  # the runtime opens its pool at start; read it late
        self.history = history

    async def on_event(self, event: Envelope, uow: UnitOfWork) -> None:
        """A consumed event; runs inside the consumer's unit of work, after its inbox check. A batch of
        events shares one unit of work: each model is locked and read once, its events applied in order
        in memory, and just before COMMIT every changed model is saved and re-indexed at once (a busy
        model's twenty events cost one document write, not twenty)."""
        pending: _Pending | None = uow.scratch.get(self)
        if pending is None:
            await uow.conn.execute(store.SHARED_REBUILD_LOCK, store.REBUILD_LOCK)
            pending = uow.scratch[self] = _Pending()
            uow.before_commit(lambda: self._write(uow, pending))
        data = event.data.model_dump(mode="json")
        model_id = UUID(str(data["model_id"]))
        view = pending.views.get(model_id)
        if view is None:
            view = pending.read[model_id] = await store.lock_model(uow.conn, model_id)
        pending.views[model_id] = domain.apply(view, event.type, data, event.time)

    async def _write(self, uow: UnitOfWork, pending: "_Pending") -> None:
        changed = [view for model_id, view in pending.views.items() if view != pending.read[model_id]]
        if not changed:
            return
        await store.save_models(uow.conn, changed)
        # written before the projection commits, under the models' row locks: if the commit fails the
        # events come again and write the same whole documents, so the index never runs ahead for good
        await _reindex(self.index, changed)

    async def rebuild(self, source: str) -> RebuildReport:
        async with self._pool().acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", store.REBUILD_LOCK)
            try:
                if source == "audit":
                    return await self._from_audit(conn)
                return await self._from_projection(conn)
            finally:
                try:
                    await conn.execute("SELECT pg_advisory_unlock($1)", store.REBUILD_LOCK)
                except BaseException:
                    conn.terminate()  # a session lock must never go back to the pool (see kit.db)
                    raise

    async def _from_projection(self, conn: asyncpg.Connection) -> RebuildReport:
        await self.index.clear()
        models = documents = 0
        async for views in store.all_models(conn, _BATCH):
            models += len(views)
            documents += await _reindex(self.index, views)
        log.info("search index rebuilt from the projection", extra={"models": models, "documents": documents})
        return RebuildReport("projection", 0, 0, models, documents, 0)

    async def _from_audit(self, conn: asyncpg.Connection) -> RebuildReport:
        views: dict[str, domain.ModelView] = {}
        seen: set[UUID] = set()
        replayed = skipped = 0
        async for entry in self.history.entries():
            event_type = entry["event_type"]
            cls = event_class(event_type)
            if event_type not in domain.HANDLED or cls is None:
                continue
            try:
                data = cls.model_validate(entry["payload"]).model_dump(mode="json")
            except ValidationError:
                skipped += 1  # the live consumer dead-lettered it too
                continue
            key = str(data["model_id"])
            view = views.get(key) or domain.ModelView(model_id=key)
            views[key] = domain.apply(view, event_type, data, datetime.fromisoformat(entry["occurred_at"]))
            seen.add(UUID(entry["event_id"]))
            replayed += 1
        async with conn.transaction():
            await store.replace_all(conn, views.values())
        missing = len(await store.inbox_ids(conn, CONSUMER_GROUP) - seen)
        await self.index.clear()
        documents = 0
        ordered = list(views.values())
        for start in range(0, len(ordered), _BATCH):
            documents += await _reindex(self.index, ordered[start:start + _BATCH])
        log.info("search read model rebuilt from the audit log",
                 extra={"events": replayed, "models": len(views), "documents": documents, "not_in_audit": missing})
        return RebuildReport("audit", replayed, skipped, len(views), documents, missing)
