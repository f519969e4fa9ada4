"""Wires the gateway: its runtime (pool and outbox for key and denial events), Redis, the upstream
clients and the public routes."""
from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI

from libs.kit.app import service_app
from libs.kit.resp import LeanScript
from libs.kit.runtime import ServiceRuntime
from services.gateway import store
from services.gateway.auth import RATE_COUNT, Authenticator
from services.gateway.routes import artifacts, audit, evaluation, keys, lifecycle, models, training, versions
from services.gateway.routes import search
from services.gateway.routes import ui
from services.gateway.routes import permissions as permission_routes
from services.gateway.model_access import ModelAccessResolver, wire as wire_model_access
from services.gateway import fast_lookup
from services.gateway.routes.lifecycle import PRODUCTION_LOOKUP, PRODUCTION_PATH, PRODUCTION_PERMISSION
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import Upstream


class Gateway:
    """What the routes need, reachable as ``request.app.state.gateway``."""

    def __init__(self, settings: GatewaySettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.redis = aioredis.from_url(settings.redis_url.get_secret_value())
        token = settings.internal_token.get_secret_value()
        self.upstreams = {
            name: Upstream(name, url, token, settings.upstream_timeout_s)
            for name, url in self.upstream_urls().items()
        }
        self.auth = Authenticator(self)
        self.access = ModelAccessResolver(self)
        self.production_lookup = self.redis.register_script(PRODUCTION_LOOKUP)
        # the two Redis calls of the hot paths (the deployers' production lookup, every request's rate
        # count) go over the lean client where the URL allows (libs/kit/resp.py: ~70 µs of CPU a call
        # against redis-py's ~200)
        url = settings.redis_url.get_secret_value()
        self.fast_production_lookup = (LeanScript.for_url(fast_lookup.FAST_PRODUCTION_LOOKUP, url)
                                       or self.redis.register_script(fast_lookup.FAST_PRODUCTION_LOOKUP))
        self.rate_counter = LeanScript.for_url(RATE_COUNT, url) or self.redis.register_script(RATE_COUNT)

    def upstream_urls(self) -> dict[str, str]:
        s = self.settings
        return {"registry": s.registry_url, "audit": s.audit_url, "version": s.version_url,
                "lifecycle": s.lifecycle_url, "training_scheduler": s.training_scheduler_url,
                "evaluation": s.evaluation_url, "search_indexer": s.search_indexer_url}

    async def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        for name, upstream in self.upstreams.items():
            checks[name] = await upstream.ready()
        return checks

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()
        for script in (self.fast_production_lookup, self.rate_counter):
            if isinstance(script, LeanScript):
                script.close()
        await self.redis.aclose()


def create_app(settings: GatewaySettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="gateway", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations", outbox=True,
        inbox=True,  # the model projection's consumer (model_access.py)
    )
    gateway = Gateway(settings, runtime)
    wire_model_access(runtime, gateway.access)

    runtime.on_stop(gateway.close)
    app = service_app(runtime, title="Cairn API", extra_ready=gateway.ready, streaming_paths=artifacts.is_streaming_path,
                      metrics_guard=gateway.auth.metrics_guard)
    app.description = (
        "Cairn model registry. Authenticate with `Authorization: Bearer <api key>`. "
        "Errors are RFC 9457 problem+json bodies."
    )
    app.state.gateway = gateway
    for module in (search, models, versions, artifacts, lifecycle, training, evaluation, audit, keys, permission_routes, ui):
        app.include_router(module.router)
    # The deployers' hot path skips routing and dependency solving when it needs no decision of its own.
    fast_lookup.install(app, gateway, path=PRODUCTION_PATH, permission=PRODUCTION_PERMISSION)
    return app

