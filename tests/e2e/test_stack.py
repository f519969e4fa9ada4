"""The whole system as processes, started the way `make run` starts it, driven over HTTP."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from libs.stack.procs import free_port, http_ok
from tests.conftest import scratch_dir
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


@dataclass
class RunningStack:
    proc: subprocess.Popen
    home: Path
    gateway: str
    env: dict[str, str]

    @property
    def state(self) -> dict:
        return json.loads((self.home / "stack.json").read_text())

    @property
    def token(self) -> str:
        return (self.home / "admin-key").read_text().strip()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gateway, headers={"authorization": f"Bearer {self.token}"}, timeout=30)


def start_stack(home: Path, env: dict[str, str]) -> RunningStack:
    log = open(home.parent / f"{home.name}-stack.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "libs.stack", "run", "--home", str(home)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    gateway = f"http://127.0.0.1:{env['CAIRN_GATEWAY_PORT']}"
    deadline = time.monotonic() + 180
    while not ((home / "stack.json").exists() and http_ok(f"{gateway}/readyz")):
        if proc.poll() is not None:
            raise RuntimeError(f"stack exited with {proc.returncode}; see {log.name}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"stack not ready; see {log.name}")
        time.sleep(0.2)
    return RunningStack(proc, home, gateway, env)


def stack_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    for name in ("CAIRN_DATABASE_URL", "CAIRN_KAFKA_BOOTSTRAP", "CAIRN_REDIS_URL"):  # given infra is honoured
        if os.environ.get(name):
            env[name] = os.environ[name]
    base = free_port()
    env.update(CAIRN_GATEWAY_PORT=str(free_port()), CAIRN_KAFKA_PORT=str(free_port()),
               CAIRN_REDIS_PORT=str(free_port()), CAIRN_SERVICE_PORT_BASE=str(base if base < 60000 else 20000))
    return env


@pytest.fixture(scope="module")
def stack():
    workdir = scratch_dir("cairn-test-e2e-")
    running = start_stack(workdir / "home", stack_env())
    yield running
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(60)
    shutil.rmtree(workdir, ignore_errors=True)


async def audit_entries(api: httpx.AsyncClient, **params) -> list[dict] | None:
    """All matching entries, or None while the audit service is unreachable (it may be restarting)."""
    entries, cursor = [], None
    while True:
        query = dict(params, page_size=500, order="asc", **({"cursor": cursor} if cursor else {}))
        response = await api.get("/api/v1/audit", params=query)
        if response.status_code != 200:
            return None
        page = response.json()
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


async def test_admin_key_file_is_private(stack):
    assert (stack.home / "admin-key").stat().st_mode & 0o777 == 0o600
    assert stack.token.startswith("cairn_")


async def test_registered_model_reaches_the_audit_log_and_the_chain_verifies(stack):
    async with stack.client() as api:
        created = await api.post("/api/v1/models", json={
            "name": f"e2e-{uuid.uuid4().hex[:8]}", "type": "vision",
            "metadata": {"image_size": 8, "image_channels": 1, "num_classes": 10}})
        assert created.status_code == 201, created.text
        model_id = created.json()["model_id"]
        entries = await eventually(lambda: audit_entries(api, model_id=model_id), timeout=10)
        assert entries[0]["event_type"] == "ModelRegistered" and entries[0]["actor"] == "bootstrap-admin"
        verify = (await api.get("/api/v1/audit/verify")).json()
        assert verify["ok"] is True and verify["checked"] >= 1


async def test_audit_killed_mid_stream_loses_and_doubles_nothing(stack):
    batch = uuid.uuid4().hex[:8]
    total = 60
    async with stack.client() as api:
        async def register(i: int) -> str:
            response = await api.post("/api/v1/models", json={"name": f"kill-{batch}-{i}", "type": "regression"})
            assert response.status_code == 201, response.text
            return response.json()["model_id"]

        ids = [await register(i) for i in range(20)]
        audit_pid = stack.state["services"]["audit"]["pid"]
        os.kill(audit_pid, signal.SIGKILL)  # mid-stream: events are still arriving
        ids += await asyncio.gather(*(register(i) for i in range(20, total)))

        async def restarted():
            pid = stack.state["services"]["audit"]["pid"]
            return pid != audit_pid and psutil.pid_exists(pid)

        await eventually(restarted, timeout=30)

        async def everything_recorded():
            entries = await audit_entries(api, event_type="ModelRegistered") or []
            mine = [e for e in entries if e["payload"]["name"].startswith(f"kill-{batch}-")]
            return mine if len(mine) >= total else None

        mine = await eventually(everything_recorded, timeout=90, interval=0.5)
        counted = {}
        for entry in mine:
            counted[entry["model_id"]] = counted.get(entry["model_id"], 0) + 1
        assert set(counted) == set(ids), "an event is missing"
        assert set(counted.values()) == {1}, "an event was recorded twice"
        assert (await api.get("/api/v1/audit/verify")).json()["ok"] is True


async def test_sigterm_stops_everything_and_models_survive_a_restart(stack):
    name = f"survivor-{uuid.uuid4().hex[:8]}"
    async with stack.client() as api:
        assert (await api.post("/api/v1/models", json={"name": name, "type": "audio"})).status_code == 201
    state = stack.state
    pids = [s["pid"] for s in state["services"].values()] + [
        state["infrastructure"]["kafka_pid"], state["infrastructure"]["redis_pid"]]
    pids = [p for p in pids if p]
    token = stack.token
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(60) == 0
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    if state["infrastructure"]["postgres_data"]:
        assert not (Path(state["infrastructure"]["postgres_data"]) / "postmaster.pid").exists()
    assert not (stack.home / "stack.json").exists()

    again = start_stack(stack.home, stack.env)
    try:
        assert again.token == token  # the bootstrap key is kept, not re-issued
        async with again.client() as api:
            response = await api.get(f"/api/v1/models/{name}")
            assert response.status_code == 200 and response.json()["type"] == "audio"
    finally:
        again.proc.send_signal(signal.SIGTERM)
        again.proc.wait(60)
