"""Wires the training scheduler: runtime (pool, outbox relay, inbox consumer of model deletions), Redis for
live progress, clients of the registry and version service, the tick loop and the routes."""
from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI

from libs.events import topics
from libs.events.models import ModelDeleted
from libs.kit.app import service_app
from libs.kit.broker import ensure_topics
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from services.training_scheduler import routes, store
from services.training_scheduler.clients import RegistryClient, VersionClient
from services.training_scheduler.handlers import DEAD_LETTER_TOPIC, JOB_TOPICS, TrainingHandlers
from services.training_scheduler.live import LiveProgress
from services.training_scheduler.settings import TrainingSchedulerSettings
from services.training_scheduler.ticker import Ticker


def create_app(settings: TrainingSchedulerSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="training-scheduler", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=True, inbox=True,
    )
    token = settings.internal_token.get_secret_value()
    redis = aioredis.from_url(settings.redis_url.get_secret_value())
    registry = RegistryClient(settings.registry_url, token, settings.upstream_timeout_s)
    versions = VersionClient(settings.version_url, token, settings.upstream_timeout_s)
    live = LiveProgress(redis, ttl_s=settings.job_events_ttl_s, maxlen=settings.job_events_maxlen)
    handlers = TrainingHandlers(runtime, settings, registry=registry, versions=versions, live=live)
    ticker = Ticker(handlers.tick, settings.tick_s)

    deletions = runtime.consumer("training-scheduler")
    deletions.on(ModelDeleted)(handlers.on_model_deleted)
    runtime.subscribe(deletions, topics=[topics.MODELS])

    async def start() -> None:
        await ensure_topics(settings.kafka_bootstrap, [*JOB_TOPICS, DEAD_LETTER_TOPIC], settings.topic_partitions)
        await ticker.start()

    async def close() -> None:
        await registry.close()
        await versions.close()
        await redis.aclose()

    runtime.on_start(start)
    runtime.on_stop(close)
    runtime.on_stop(ticker.stop)  # hooks run last-registered first: the ticker stops before its clients close

    async def ready() -> dict[str, str]:
        return {"redis": await live.ping()}

    app = service_app(runtime, title="Cairn training scheduler (internal)", extra_ready=ready)
    app.state.handlers = handlers
    app.state.ticker = ticker
    caller = internal_caller_dependency(token)
    app.include_router(routes.build_router(handlers, caller))
    return app
