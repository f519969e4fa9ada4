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
