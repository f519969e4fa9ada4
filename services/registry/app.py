"""Wires the registry: runtime (pool, outbox relay, inbox consumer of lifecycle stages), handlers and routes."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.events import topics
from libs.events.lifecycle import VersionArchived, VersionDemoted, VersionDeprecated, VersionPromoted
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from services.registry import routes, store
from services.registry.handlers import RegistryHandlers
from services.registry.settings import RegistrySettings


def create_app(settings: RegistrySettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="registry", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=True, inbox=True,
    )
    handlers = RegistryHandlers(runtime)
    consumer = runtime.consumer("registry")
    consumer.on(VersionPromoted, VersionDemoted, VersionArchived, VersionDeprecated)(handlers.on_stage_event)
    runtime.subscribe(consumer, topics=[topics.LIFECYCLE])

    app = service_app(runtime, title="Cairn registry (internal)")
    caller = internal_caller_dependency(settings.internal_token.get_secret_value())
    app.include_router(routes.build_router(handlers, caller))
    app.include_router(routes.build_types_router(caller))
    return app
