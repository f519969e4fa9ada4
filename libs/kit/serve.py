"""Entry point shared by every service: ``python -m services.NAME [serve|migrate]``.

uvicorn runs on uvloop with the httptools parser (both come with ``uvicorn[standard]``).
``CAIRN_<NAME>_WORKERS`` (for example ``CAIRN_GATEWAY_WORKERS=2``) runs that many worker processes on
one listening socket; only stateless services should ask for more than one. Each worker opens its own
pool, producer and relay; the relay's advisory lock still lets only one of them publish.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Callable

import uvicorn
from fastapi import FastAPI

from libs.kit.logs import configure_logging
from libs.kit.runtime import ServiceRuntime

_FACTORY_ENV = "CAIRN_SERVE_FACTORY"  # how a spawned worker finds the service's settings and app


def workers_setting(name: str) -> int:
    raw = os.environ.get(f"CAIRN_{name.upper().replace('-', '_')}_WORKERS", "1")
    try:
        workers = int(raw)
    except ValueError:
        raise SystemExit(f"CAIRN_{name.upper()}_WORKERS must be a whole number, not {raw!r}") from None
    if not 1 <= workers <= 64:
        raise SystemExit(f"CAIRN_{name.upper()}_WORKERS must be between 1 and 64, not {workers}")
    return workers


def _qualified(obj: Callable) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resolve(path: str) -> Callable:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def app_from_env() -> FastAPI:
    """The app of one spawned worker (uvicorn ``factory``): settings and app factory named by the parent."""
    from libs.stack.procs import die_with_parent

    die_with_parent()()  # a worker must not outlive its parent (it would keep the port)
    name, settings_path, factory_path = os.environ[_FACTORY_ENV].split("|")
    settings = _resolve(settings_path)()
    configure_logging(name, getattr(settings, "log_level", "INFO"))
    return _resolve(factory_path)(settings)


def main(
    name: str,
    load_settings: Callable[[], object],
    create_app: Callable[[object], FastAPI],
) -> None:
    settings = load_settings()
    configure_logging(name, getattr(settings, "log_level", "INFO"))
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command not in ("serve", "migrate"):
        raise SystemExit(f"usage: python -m services.{name} [serve|migrate]")
    workers = workers_setting(name) if command == "serve" else 1
    common = dict(
        host=settings.host,  # type: ignore[attr-defined]
        port=settings.port,  # type: ignore[attr-defined]
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        loop="uvloop",
        http="httptools",
    )
    if workers > 1:
        os.environ[_FACTORY_ENV] = "|".join((name, _qualified(load_settings), _qualified(create_app)))
        uvicorn.run("libs.kit.serve:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
        return
    app = create_app(settings)
    if command == "migrate":
        runtime: ServiceRuntime | None = getattr(app.state, "runtime", None)
        if runtime is not None:
            applied = asyncio.run(runtime.migrate())
            print(f"{name}: {len(applied)} migration(s) applied")
        return
    uvicorn.run(app, **common)  # type: ignore[arg-type]
