"""Registration, audit and the audit process killed mid-stream, on the stack as processes."""
from __future__ import annotations

import asyncio
import os
import signal
import uuid

import psutil
import pytest

from tests.e2e.conftest import audit_entries
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


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


