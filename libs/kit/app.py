"""Builds the FastAPI app of an internal service around its ServiceRuntime: lifespan, problem
handlers, body limit, and the probes ``/healthz`` (process up) and ``/readyz`` (dependencies answer)."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from libs.kit.docs import install_docs
from libs.kit.http import BodyLimitMiddleware, install_problem_handlers
from libs.kit.metrics import MetricsMiddleware, metrics_endpoint
from libs.kit.runtime import ServiceRuntime
from libs.kit.security_headers import SecurityHeadersMiddleware


def service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    streaming_paths: Callable[[str], bool] = lambda path: False,
    extra_ready: Callable[[], Awaitable[dict[str, str]]] | None = None,
    metrics_guard: Callable[[Request], Awaitable[None]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)  # /docs from local files, no CDN
    app.state.runtime = runtime
    install_problem_handlers(app)
    limit = runtime.settings.max_body_bytes
    app.add_middleware(BodyLimitMiddleware, limit_for=lambda path: None if streaming_paths(path) else limit)
    app.add_middleware(MetricsMiddleware, service=runtime.name)
    app.add_middleware(SecurityHeadersMiddleware)  # nosniff everywhere; CSP and no framing on HTML
    app.add_route("/metrics", _guarded(metrics_guard) if metrics_guard else metrics_endpoint, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await runtime.check_ready()
        if extra_ready:
            checks.update(await extra_ready())
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503)

    return app


def _guarded(guard: Callable[[Request], Awaitable[None]]):
    """``/metrics`` behind ``guard`` (which raises a CairnError to refuse): the public gateway's."""

    async def metrics(request: Request):
        await guard(request)
        return await metrics_endpoint(request)

    metrics.guarded = True  # type: ignore[attr-defined]  # lets a contract test prove it
    return metrics
