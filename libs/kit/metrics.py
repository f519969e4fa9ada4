"""Prometheus metrics every service exposes on ``/metrics`` (the Grafana dashboards in deploy/ read them).
Label values are bounded: routes are templates (``/api/v1/models/{model_ref}``), never raw paths."""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

HTTP_REQUESTS = Counter("cairn_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "cairn_http_request_seconds", "HTTP request latency", ["service", "method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PUBLISHED = Counter("cairn_outbox_published_total", "Events published by the outbox relay", ["service"])
OUTBOX_LAG = Histogram(
    "cairn_outbox_commit_to_publish_seconds", "Time from commit to broker ack", ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_CONSUMED = Counter("cairn_events_consumed_total", "Events applied by consumers", ["service", "group", "type"])
EVENTS_DUPLICATE = Counter("cairn_events_duplicate_total", "Redelivered events skipped by the inbox", ["service", "group"])
EVENTS_DEAD_LETTERED = Counter("cairn_events_dead_lettered_total", "Events sent to a dead-letter topic", ["service", "group"])
EVENT_AGE = Histogram(
    "cairn_event_age_seconds", "Time from an event's ce_time to its effect being committed", ["service", "group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UP = Gauge("cairn_up", "1 while the service process runs", ["service"])


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        UP.labels(service).set(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status["code"])).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(time.perf_counter() - start)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
