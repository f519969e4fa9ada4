"""End-to-end fixtures: the whole system as processes, started the way `make run` starts it."""
from __future__ import annotations

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

from examples.deployer.deployer import Deployer
from libs.stack.procs import free_port, http_ok
from tests.conftest import scratch_dir
from tests.support.kafka import eventually



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


def running_stack():
    """A stack in a scratch folder of its own, stopped with SIGTERM (as Ctrl-C would) and removed after."""
    workdir = scratch_dir("cairn-test-e2e-")
    running = start_stack(workdir / "home", stack_env())
    yield running
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(60)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    yield from running_stack()


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




@pytest.fixture(scope="module")
def private_stack():
    """A stack of the module's own, for tests that stop or restart it."""
    yield from running_stack()


@pytest.fixture
async def deployer(stack):
    """The example deployer subscribed to cairn.lifecycle.v1 from now on, as a real downstream consumer."""
    running = await Deployer(bootstrap=stack.state["kafka_bootstrap"], gateway=stack.gateway, api_key=stack.token,
                             workdir=stack.home.parent / f"deployer-{uuid.uuid4().hex[:6]}").start()
    yield running
    await running.stop()
