"""Wires the audit service: one consumer group on every cairn topic, query and verify routes."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.events import topics
from libs.kit.app import service_app
from libs.kit.http import internal_caller_dependency
from libs.kit.runtime import ServiceRuntime
from services.audit import routes, store
from services.audit.handlers import record_event
from services.audit.settings import AuditSettings


def create_app(settings: AuditSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings, name="audit", schema=store.SCHEMA, migrations=Path(__file__).parent / "migrations",
        outbox=False, inbox=True,
    )
    consumer = runtime.consumer("audit")
    consumer.on_any(record_event)
    runtime.subscribe(consumer, pattern=topics.AUDIT_PATTERN)
    app = service_app(runtime, title="Cairn audit (internal)")
    caller = internal_caller_dependency(settings.internal_token.get_secret_value())
    app.include_router(routes.build_router(runtime, caller))
    return app
