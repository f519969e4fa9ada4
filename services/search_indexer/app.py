"""Wires the search-indexer: one consumer group over the model, version, lifecycle and evaluation topics
that keeps a per-model projection and writes one search document per model into the search index
(Postgres by default, OpenSearch when CAIRN_SEARCH_URL is set), and the internal search API."""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from libs.events import catalog  # noqa: F401  (registers every event class)
from libs.events import topics
from libs.events.base import event_class
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from libs.search.factory import open_search_index, redact
from services.search_indexer import domain, routes, store
from services.search_indexer.handlers import CONSUMER_GROUP, AuditHistory, Indexer
from services.search_indexer.settings import SearchIndexerSettings

log = logging.getLogger(__name__)


def create_app(settings: SearchIndexerSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="search-indexer", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=False, inbox=True,
    )
    search_url = settings.search_url.get_secret_value() if settings.search_url else None
    index = open_search_index(search_url, database_url=settings.database_url.get_secret_value(),
                              index=settings.search_index)
    token = settings.internal_token.get_secret_value()
    indexer = Indexer(index, lambda: runtime.pool, AuditHistory(settings.audit_url, token, settings.rebuild_page_size))

    async def open_index() -> None:
        await index.open()
        log.info("search index open", extra={"search_index": redact(search_url)})

    runtime.on_start(open_index)
    runtime.on_stop(index.close)

    consumer = runtime.consumer(CONSUMER_GROUP)
    classes = [event_class(name) for name in domain.HANDLED]
    consumer.on(*[c for c in classes if c is not None])(indexer.on_event)
    runtime.subscribe(consumer, topics=[topics.MODELS, topics.VERSIONS, topics.LIFECYCLE, topics.EVALUATION])

    async def ready() -> dict[str, str]:
        return {"search_index": await index.ready()}

    app = service_app(runtime, title="Cairn search-indexer (internal)", extra_ready=ready)
    app.state.indexer = indexer
    app.include_router(routes.build_router(indexer, internal_caller_dependency(token)))
    return app
