"""Training end to end: the registry, the version service and the training scheduler in-process on real
loopback ports (real Postgres, Kafka-protocol broker and Redis of the session), and training workers as
REAL SUBPROCESSES (``python -m services.worker --pool cpu``) configured through ``CAIRN_*`` like in
production. The scheduler runs with short timings so that lost workers and retries show up quickly."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from libs.stack.procs import die_with_parent
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from services.training_scheduler.app import create_app as create_scheduler
from services.training_scheduler.settings import TrainingSchedulerSettings
from tests.conftest import scratch_dir
from tests.support.kafka import eventually, header
from tests.support.servers import RunningServer, serve

from services.version.app import create_app as create_version
from services.version.settings import VersionSettings

ROOT = Path(__file__).resolve().parents[3]
LINK_SECRET = "training-tests-link-secret-0123456789"
PUBLIC_URL = "http://cairn.test"
HEARTBEAT_TIMEOUT_S = 4.0
RETRY_BACKOFF_S = 0.3
#: Kafka timings of the test workers: a job longer than the max poll interval would make a worker that
#: stopped polling leave the group, and one longer than the session timeout one that stopped heartbeating.
SESSION_TIMEOUT_MS = 6000
MAX_POLL_INTERVAL_MS = 4000
DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def body(record) -> dict[str, Any]:
    return orjson.loads(record.value)


def of_job(records, job_id: str, *types: str) -> list:
    """The records about ``job_id`` (optionally only of the given CloudEvents types), in topic order."""
    return [r for r in records if body(r).get("job_id") == job_id and (not types or header(r, "ce_type") in types)]


def is_event(job_id: str, ce_type: str, where: Callable[[dict], bool] = lambda b: True):
    return lambda r: header(r, "ce_type") == ce_type and body(r).get("job_id") == job_id and where(body(r))


class WorkerProcess:
    """One ``python -m services.worker`` subprocess; its JSON log lines go to a file the test can read."""

    def __init__(self, name: str, pool: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.pool = pool
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.worker", "--pool", pool, "--name", name],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )

    @property
    def alive_file(self) -> Path:
        return self.log_path.with_suffix(".alive")

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                entries.append({"msg": line.decode(errors="replace"), "raw": True})
        return entries

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    async def wait_for_log(self, predicate: Callable[[dict], bool], timeout: float = 60) -> dict:
        async def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.text()}")
            return next((entry for entry in self.logs() if predicate(entry)), None)

        try:
            return await eventually(check, timeout=timeout, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker {self.name} log ---\n{self.text()}") from None

    async def wait_until_owning(self, partitions: int, timeout: float = 60) -> None:
        """Until the latest assignment logged is ``partitions`` partitions (the whole topic for a lone worker)."""
        async def check():
            assigned = [e for e in self.logs() if e.get("msg") == "partitions assigned"]
            return assigned and len(assigned[-1].get("partitions", [])) == partitions

        try:
            await eventually(check, timeout=timeout, interval=0.1)
        except AssertionError:
            raise AssertionError(f"worker {self.name} never owned {partitions} partitions:\n{self.text()}") from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} still running after {timeout}s:\n{self.text()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    async def stop(self) -> None:
        self.terminate()
        try:
            await self.wait(30)
        except AssertionError:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@dataclass
class TrainingSystem:
    registry: RunningServer
    version: RunningServer
    scheduler: RunningServer
    kafka_bootstrap: str
    redis_url: str
    token: str
    objects_root: Path
    service_env: dict[str, str]
    logs_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def object_store_url(self) -> str:
        return f"file://{self.objects_root}"

    def client(self, server: RunningServer, actor: str = "tester") -> httpx.AsyncClient:
        headers = {"x-cairn-internal-token": self.token, "x-cairn-actor": actor, "x-cairn-role": "editor"}
        return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60, trust_env=False)

    def redis(self):
        return aioredis.from_url(self.redis_url)

    async def register_model(self, type: str = "vision", metadata: dict | None = None, name: str | None = None) -> dict:
        body = {"name": name or unique("train"), "type": type, "framework": "pytorch",
                "metadata": DIGITS_VISION if metadata is None and type == "vision" else (metadata or {})}
        async with self.client(self.registry) as registry:
            response = await registry.post("/internal/models", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def create_job(self, model_ref: str, **body: Any) -> httpx.Response:
        async with self.client(self.scheduler, actor="alice") as scheduler:
            return await scheduler.post(f"/internal/models/{model_ref}/training-jobs", json=body)

    async def queue(self, model_ref: str, **body: Any) -> dict:
        response = await self.create_job(model_ref, **body)
        assert response.status_code == 201, response.text
        return response.json()

    async def job(self, job_id: str) -> dict:
        async with self.client(self.scheduler) as scheduler:
            response = await scheduler.get(f"/internal/training-jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_for_state(self, job_id: str, *states: str, timeout: float = 60) -> dict:
        async def check():
            job = await self.job(job_id)
            return job if job["state"] in states else None

        return await eventually(check, timeout=timeout, interval=0.1)

    async def cancel(self, job_id: str) -> httpx.Response:
        async with self.client(self.scheduler, actor="bob") as scheduler:
            return await scheduler.post(f"/internal/training-jobs/{job_id}/cancel")

    async def versions_of(self, model_id: str) -> list[dict]:
        async with self.client(self.version) as version:
            response = await version.get(f"/internal/models/{model_id}/versions", params={"page_size": 100})
        assert response.status_code == 200, response.text
        return response.json()["versions"]

    async def artifact(self, model_id: str, version: str) -> bytes:
        """Download through a signed link, on the version service itself (what the gateway would forward)."""
        async with self.client(self.version) as client:
            link = await client.get(f"/internal/models/{model_id}/download", params={"version": version})
            assert link.status_code == 200, link.text
            url = link.json()["download_url"]
            prefix = f"{PUBLIC_URL}/api/v1/artifacts/"
            assert url.startswith(prefix), url
            response = await client.get(f"/internal/artifacts/{url[len(prefix):]}")
        assert response.status_code == 200, response.text
        return response.content

    async def live_entries(self, job_id: str) -> list[dict]:
        client = self.redis()
        try:
            entries = await client.xrange(f"cairn:job:{job_id}:events")
        finally:
            await client.aclose()
        return [orjson.loads(fields[b"data"]) for _, fields in entries]

    def worker_env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update({
            "CAIRN_DATABASE_URL": self.service_env["database_url"],
            "CAIRN_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "CAIRN_REDIS_URL": self.redis_url,
            "CAIRN_INTERNAL_TOKEN": self.token,
            "CAIRN_TRAINING_SCHEDULER_URL": self.scheduler.url,
            "CAIRN_VERSION_URL": self.version.url,
            "CAIRN_OBJECT_STORE_URL": self.object_store_url,
            "CAIRN_WORKER_HEARTBEAT_S": "1",
            "CAIRN_WORKER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "CAIRN_WORKER_MAX_POLL_INTERVAL_MS": str(MAX_POLL_INTERVAL_MS),
            "CAIRN_WORKER_TORCH_THREADS": "1",
            "CAIRN_WORKER_STOP_GRACE_S": "1",
            "CAIRN_WORKER_REPORT_RETRY_S": "15",
            "CAIRN_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        })
        env.update(overrides)
        return env

    def start_worker(self, name: str | None = None, pool: str = "cpu", **env: str) -> WorkerProcess:
        name = name or unique(f"w-{pool}")
        env.setdefault("CAIRN_HEARTBEAT_FILE", str(self.logs_dir / f"{name}.alive"))
        worker = WorkerProcess(name, pool, self.worker_env(**env), self.logs_dir / f"{name}.log")
        self.workers.append(worker)
        return worker

    def checkpoint_path(self, job_id: str) -> Path:
        return self.objects_root / "checkpoints" / "training" / job_id / "latest.ckpt"


@pytest.fixture(scope="session")
async def training(service_env) -> TrainingSystem:
    objects_root = scratch_dir("cairn-test-training-objects-")
    logs_dir = scratch_dir("cairn-test-worker-logs-")
    registry = await serve(create_registry(RegistrySettings(**service_env)))
    version = await serve(create_version(VersionSettings(
        **service_env, object_store_url=f"file://{objects_root}", link_secret=LINK_SECRET, public_url=PUBLIC_URL,
        registry_url=registry.url,
    )))
    scheduler = await serve(create_scheduler(TrainingSchedulerSettings(
        **service_env, registry_url=registry.url, version_url=version.url, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
        retry_backoff_s=RETRY_BACKOFF_S, retry_backoff_max_s=2.0, tick_s=0.2,
    )))
    system = TrainingSystem(
        registry=registry, version=version, scheduler=scheduler, kafka_bootstrap=service_env["kafka_bootstrap"],
        redis_url=service_env["redis_url"], token=service_env["internal_token"], objects_root=objects_root,
        service_env=service_env, logs_dir=logs_dir,
    )
    yield system
    for worker in system.workers:
        if worker.proc.poll() is None:
            await worker.stop()
    for server in (scheduler, version, registry):
        await server.stop()
    shutil.rmtree(objects_root, ignore_errors=True)
    shutil.rmtree(logs_dir, ignore_errors=True)


@pytest.fixture
async def stop_workers_after(training):
    """Workers a test starts are stopped (SIGTERM, then SIGKILL) when it ends, so the next test's workers
    have the consumer group to themselves."""
    before = len(training.workers)
    yield
    for worker in training.workers[before:]:
        if worker.proc.poll() is None:
            await worker.stop()
