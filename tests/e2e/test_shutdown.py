"""Stopping the stack leaves nothing behind, and what was registered survives a restart."""
from __future__ import annotations

import signal
import uuid
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_sigterm_stops_everything_and_models_survive_a_restart(private_stack):
    name = f"survivor-{uuid.uuid4().hex[:8]}"
    async with private_stack.client() as api:
        assert (await api.post("/api/v1/models", json={"name": name, "type": "audio"})).status_code == 201
    state = private_stack.state
    pids = [s["pid"] for s in state["services"].values()] + [
        state["infrastructure"]["kafka_pid"], state["infrastructure"]["redis_pid"]]
    pids = [p for p in pids if p]
    token = private_stack.token
    private_stack.proc.send_signal(signal.SIGTERM)
    assert private_stack.proc.wait(60) == 0
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    if state["infrastructure"]["postgres_data"]:
        assert not (Path(state["infrastructure"]["postgres_data"]) / "postmaster.pid").exists()
    assert not (private_stack.home / "stack.json").exists()

    again = start_stack(private_stack.home, private_stack.env)
    try:
        assert again.token == token  # the bootstrap key is kept, not re-issued
        async with again.client() as api:
            response = await api.get(f"/api/v1/models/{name}")
            assert response.status_code == 200 and response.json()["type"] == "audio"
    finally:
        again.proc.send_signal(signal.SIGTERM)
        again.proc.wait(60)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_sigterm_while_starting_stops_what_was_started():
    """A stop asked for while the stack is still starting (a fresh clone starts slowly) ends the start at
    once and leaves no process behind: not a service, not a migration, not the infrastructure."""
    import shutil
    import subprocess
    import sys
    import time

    from libs.stack.procs import port_open
    from tests.conftest import scratch_dir
    from tests.e2e.conftest import stack_env

    home = scratch_dir("cairn-test-early-stop-") / "home"
    env = stack_env()
    proc = subprocess.Popen([sys.executable, "-m", "libs.stack", "run", "--home", str(home)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    supervisor = psutil.Process(proc.pid)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    # wait until the start is well under way: infrastructure up and some service processes spawned
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= {child.pid for child in supervisor.children(recursive=True)}
        if len(seen) >= 5 and (home / "logs" / "registry.log").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the stack exited on its own"
    seen |= {child.pid for child in supervisor.children(recursive=True)}
    proc.send_signal(signal.SIGTERM)
    gateway_port = int(env["CAIRN_GATEWAY_PORT"])
    gateway_came_up = False
    while proc.poll() is None:  # the start is abandoned: the gateway, the last step, never comes up
        gateway_came_up |= port_open("127.0.0.1", gateway_port)
        if time.monotonic() > deadline + 90:
            proc.kill()
            break
        time.sleep(0.05)
    assert proc.wait(10) == 0
    assert not gateway_came_up
    assert not [pid for pid in seen if _alive(pid)]
    assert not (home / "postgres" / "postmaster.pid").exists()
    assert not (home / "stack.json").exists()
    shutil.rmtree(home.parent, ignore_errors=True)
