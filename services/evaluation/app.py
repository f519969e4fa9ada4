"""Wires the evaluation service: runtime (pool, outbox relay, inbox), two consumer groups, the run
worker, the metrics sync to the version service, and the routes."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.events import topics
from libs.events.evaluation import EvaluationRequested
from libs.events.versions import ArtifactStored, VersionCreated, VersionDeleted
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from libs.storage.cas import ContentAddressedStore
from libs.storage.factory import open_object_store
from services.evaluation import routes, store
from services.evaluation.clients import Upstreams
from services.evaluation.handlers import EvaluationHandlers
from services.evaluation.settings import EvaluationSettings
from services.evaluation.worker import EvaluationWorker, MetricsSync, RunExecutor


def create_app(settings: EvaluationSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="evaluation", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=True, inbox=True,
    )
    token = settings.internal_token.get_secret_value()
    upstreams = Upstreams(
        registry_url=settings.registry_url, version_url=settings.version_url, internal_token=token,
        timeout_s=settings.upstream_timeout_s,
    )
    handlers = EvaluationHandlers(runtime, upstreams)
    executor = RunExecutor(runtime, settings, upstreams)
    handlers.executor = executor
    worker = EvaluationWorker(runtime, settings, executor)
    sync = MetricsSync(runtime, settings, upstreams)
    executor.on_completed = sync.wake

    versions = runtime.consumer("evaluation")
    versions.on(VersionCreated)(handlers.on_version_created)
    versions.on(ArtifactStored)(handlers.on_artifact_stored)
    versions.on(VersionDeleted)(handlers.on_version_deleted)
    runtime.subscribe(versions, topics=[topics.VERSIONS])

    commands = runtime.consumer("evaluation-commands")
    commands.on(EvaluationRequested)(handlers.on_evaluation_requested)
    runtime.subscribe(commands, topics=[topics.EVALUATION])

    async def start() -> None:
        executor.cas = ContentAddressedStore(open_object_store(settings.object_store_url))
        await worker.start_listening()
        worker.start(settings.max_concurrent_evaluations)
        sync.start()

    async def stop() -> None:
        await worker.stop()
        await sync.stop()
        if executor.cas is not None:
            await executor.cas.store.close()
        await upstreams.close()

    runtime.on_start(start)
    runtime.on_stop(stop)

    async def ready() -> dict[str, str]:
        return {
            "evaluation_worker": "ok" if worker.running else "stopped",
            "metrics_sync": "ok" if sync.running else "stopped",
        }

    app = service_app(runtime, title="Cairn evaluation (internal)", extra_ready=ready)
    app.state.evaluation_executor = executor
    app.state.evaluation_worker = worker
    caller = internal_caller_dependency(token)
    app.include_router(routes.build_router(handlers, caller))
    return app
