"""Entry point shared by every service: ``python -m services.NAME [serve|migrate]``."""
from __future__ import annotations

import asyncio
import sys
from typing import Callable

import uvicorn
from fastapi import FastAPI

from libs.kit.logs import configure_logging
from libs.kit.runtime import ServiceRuntime


def main(
    name: str,
    load_settings: Callable[[], object],
    create_app: Callable[[object], FastAPI],
) -> None:
    settings = load_settings()
    configure_logging(name, getattr(settings, "log_level", "INFO"))
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    app = create_app(settings)
    if command == "migrate":
        runtime: ServiceRuntime | None = getattr(app.state, "runtime", None)
        if runtime is not None:
            applied = asyncio.run(runtime.migrate())
            print(f"{name}: {len(applied)} migration(s) applied")
        return
    if command != "serve":
        raise SystemExit(f"usage: python -m services.{name} [serve|migrate]")
    uvicorn.run(
        app,
        host=settings.host,  # type: ignore[attr-defined]
        port=settings.port,  # type: ignore[attr-defined]
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
