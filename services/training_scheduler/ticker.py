"""The scheduler's clock: every ``tick_s`` it re-dispatches due retries and takes attempts away from workers
that stopped heartbeating (``TrainingHandlers.tick``). Started and stopped with the service runtime."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class Ticker:
    def __init__(self, tick, interval_s: float) -> None:
        self._tick = tick
        self._interval = interval_s
        self._task: asyncio.Task | None = None
        self.ticks = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="training-scheduler-tick")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
                self.ticks += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("training scheduler tick failed; trying again next tick")
            await asyncio.sleep(self._interval)
