"""Wires the lifecycle service: runtime (pool, outbox relay, inbox consumers), Redis, the object store
(read-only), the lookups of models and versions, the rollout ticker, and the routes.

Consumer groups:
- ``lifecycle``: ``cairn.versions.v1`` and ``cairn.models.v1`` into the local projections;
- ``lifecycle-commands``: RollbackRequested on ``cairn.lifecycle.v1``;
- ``lifecycle-cache``: every lifecycle event about a (model, environment) recomputes its cached view;
- ``lifecycle-policy``: EvaluationCompleted is recorded and judged by the model's promotion policy.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.events import topics
from libs.events.evaluation import EvaluationCompleted
from libs.events.lifecycle import (
    RollbackRequested,
    RolloutUpdated,
    VersionArchived,
    VersionDemoted,
    VersionDeprecated,
    VersionPromoted,
    VersionRolledBack,
)
from libs.events.models import ModelDeleted, ModelRegistered, ModelUpdated
from libs.events.versions import ArtifactStored, VersionCreated, VersionDeleted
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from libs.storage.cas import ContentAddressedStore
from libs.storage.factory import open_object_store
from services.lifecycle import routes, store
from services.lifecycle.cache import ProductionCache
from services.lifecycle.directory import Directory
from services.lifecycle.handlers import LifecycleHandlers, RolloutTicker
from services.lifecycle.settings import LifecycleSettings


def create_app(settings: LifecycleSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="lifecycle", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=True, inbox=True,
    )
    token = settings.internal_token.get_secret_value()
    cache = ProductionCache(settings.redis_url.get_secret_value())
    directory = Directory(version_url=settings.version_url, registry_url=settings.registry_url, internal_token=token)
    blobs = ContentAddressedStore(open_object_store(settings.object_store_url))
    handlers = LifecycleHandlers(runtime, environments=settings.environments, directory=directory, cache=cache,
                                 blobs=blobs)

    projections = runtime.consumer("lifecycle")
    projections.on(VersionCreated)(handlers.on_version_created)
    projections.on(ArtifactStored)(handlers.on_artifact_stored)
    projections.on(VersionDeleted)(handlers.on_version_deleted)
    projections.on(ModelRegistered, ModelUpdated)(handlers.on_model_state)
    projections.on(ModelDeleted)(handlers.on_model_deleted)
    runtime.subscribe(projections, topics=[topics.VERSIONS, topics.MODELS])

    commands = runtime.consumer("lifecycle-commands")
    commands.on(RollbackRequested)(handlers.on_rollback_requested)
    runtime.subscribe(commands, topics=[topics.LIFECYCLE])

    cache_refresh = runtime.consumer("lifecycle-cache")
    cache_refresh.on(VersionPromoted, VersionDemoted, VersionArchived, VersionDeprecated, VersionRolledBack,
                     RolloutUpdated)(handlers.refresh_cache)
    runtime.subscribe(cache_refresh, topics=[topics.LIFECYCLE])

    policy = runtime.consumer("lifecycle-policy")
    policy.on(EvaluationCompleted)(handlers.on_evaluation_completed)
    runtime.subscribe(policy, topics=[topics.EVALUATION])

    ticker = RolloutTicker(handlers, settings.rollout_tick_s)

    async def start() -> None:
        await cache.open()
        await directory.start()
        ticker.start()

    async def stop() -> None:
        await ticker.stop()
        await directory.close()
        await cache.close()
        await blobs.store.close()

    runtime.on_start(start)
    runtime.on_stop(stop)

    async def redis_ready() -> dict[str, str]:
        try:
            await cache.ping()
            return {"redis": "ok"}
        except Exception as exc:  # readiness reports, it does not raise
            return {"redis": f"error: {type(exc).__name__}"}

    app = service_app(runtime, title="Cairn lifecycle (internal)", extra_ready=redis_ready)
    app.state.handlers = handlers
    app.state.ticker = ticker
    caller = internal_caller_dependency(token)
    app.include_router(routes.build_router(handlers, caller))
    app.include_router(routes.build_commands_router(handlers, caller))
    return app
