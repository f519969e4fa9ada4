"""Runs service apps in this test process on real loopback HTTP ports (uvicorn), so the gateway
reaches the services over real connections, while tests stay fast and share one event loop."""
from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from fastapi import FastAPI

from libs.stack.procs import free_port


class RunningServer:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False)
        )
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task | None = None

    async def start(self) -> "RunningServer":
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def serve(app: FastAPI, port: int | None = None) -> RunningServer:
    return await RunningServer(app, port or free_port()).start()
