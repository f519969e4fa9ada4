"""Wires the version service: runtime (pool, outbox relay, inbox consumer), object store, handlers, routes."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.events import topics
from libs.events.lifecycle import VersionArchived, VersionDemoted, VersionDeprecated, VersionPromoted, VersionRolledBack
from libs.events.models import ModelDeleted, ModelRegistered, ModelUpdated
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from services.version import routes, store
from services.version.handlers import VersionHandlers
from services.version.settings import VersionSettings


def create_app(settings: VersionSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="version", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=True, inbox=True,
    )
    handlers = VersionHandlers(runtime, settings)
    runtime.on_start(handlers.open)
    runtime.on_stop(handlers.close)

    consumer = runtime.consumer("version")
    consumer.on(ModelRegistered, ModelUpdated, ModelDeleted)(handlers.on_model_event)
    consumer.on(VersionPromoted, VersionDemoted, VersionArchived, VersionDeprecated, VersionRolledBack)(
        handlers.on_lifecycle_event
    )
    runtime.subscribe(consumer, topics=[topics.MODELS, topics.LIFECYCLE])

    app = service_app(
        runtime, title="Cairn versions (internal)", streaming_paths=routes.is_streaming_path, extra_ready=handlers.ready
    )
    caller = internal_caller_dependency(settings.internal_token.get_secret_value())
    app.include_router(routes.build_router(handlers, caller))
    app.include_router(routes.build_artifacts_router(handlers))
    app.state.handlers = handlers
    return app
