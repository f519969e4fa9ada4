"""Starting a throw-away stack and measuring: percentiles, rates, and a closed-loop load driver."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from bench.fastclient import Connection
from libs.stack.procs import free_port, http_ok


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Result:
    name: str
    unit: str
    value: float
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class Stack:
    proc: subprocess.Popen
    home: Path
    workdir: Path
    gateway: str
    kafka: str

    @property
    def token(self) -> str:
        return (self.home / "admin-key").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_stack(*, gateway_workers: int = 2, extra_env: dict[str, str] | None = None) -> Stack:
    """The stack of ``make run`` on free ports; the gateway with ``gateway_workers`` processes."""
    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    home = workdir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(CAIRN_GATEWAY_PORT=str(free_port()), CAIRN_KAFKA_PORT=str(free_port()),
               CAIRN_REDIS_PORT=str(free_port()), CAIRN_SERVICE_PORT_BASE=str(21000 + os.getpid() % 2000 * 10),
               CAIRN_RATE_LIMIT_PER_MINUTE="100000000", CAIRN_LOG_LEVEL="WARNING",
               CAIRN_GATEWAY_WORKERS=str(gateway_workers), **(extra_env or {}))
    log = open(workdir / "stack.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "libs.stack", "run", "--home", str(home)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    gateway = f"http://127.0.0.1:{env['CAIRN_GATEWAY_PORT']}"
    deadline = time.monotonic() + 180
    while not ((home / "stack.json").exists() and http_ok(f"{gateway}/readyz")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"stack did not start; see {workdir / 'stack.log'}")
        time.sleep(0.2)
    return Stack(proc, home, workdir, gateway, f"127.0.0.1:{env['CAIRN_KAFKA_PORT']}")


async def closed_loop(call: Callable[[], Awaitable[None]], *, concurrency: int, duration_s: float) -> tuple[int, list[float], float]:
    """``concurrency`` workers call ``call`` back to back for ``duration_s``; returns (count, latencies, elapsed)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, time.perf_counter() - start


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "mean_ms": statistics.fmean(ms) if ms else 0.0}


Call = Callable[[Connection], Awaitable[None]]


async def drive(base_url: str, headers: dict[str, str], call: Call, *, concurrency: int, duration_s: float) -> tuple[float, float, float]:
    """Closed loop: ``concurrency`` connections, each sends its next request when the last answered.
    Returns (requests per second, p50 ms, p99 ms)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        async with Connection(base_url, headers) as conn:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await call(conn)
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return len(latencies) / elapsed, percentile(ms, 50), percentile(ms, 99)


def streamed_megabytes(size_mb: int):
    """An upload body of ``size_mb`` MiB made on the fly (never held whole), and the sha256 it fills as sent."""
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()

    async def body():
        for _ in range(size_mb):
            digest.update(block)
            yield block

    return body, digest
