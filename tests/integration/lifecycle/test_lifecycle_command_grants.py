"""``GET /api/v1/commands/{command_id}`` (a rollback's outcome) does not name its model: a key whose role
lacks ``lifecycle:read`` needs read on the command's model, decided on the lifecycle service's answer
before it is returned. Through a real gateway, the session's lifecycle service, registry and audit."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import httpx
import pytest

from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.lifecycle import store as lifecycle_store

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
async def gateway(system, lifecycle, service_env):
    app = create_gateway(GatewaySettings(
        **service_env, registry_url=system.services["registry"].url, audit_url=system.services["audit"].url,
        lifecycle_url=lifecycle.server.url, rate_limit_per_minute=100_000))
    from tests.support.servers import serve
    server = await serve(app)
    yield server, app.state.runtime.pool
    await server.stop()


def _client(server, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30)


async def _model(server, admin: str) -> dict:
    async with _client(server, admin) as api:
        response = await api.post("/api/v1/models", json={"name": f"cmd-{uuid.uuid4().hex[:10]}", "type": "other"})
    assert response.status_code == 201, response.text
    return response.json()


async def _command(lifecycle, model: dict) -> str:
    command_id = uuid.uuid4()
    async with lifecycle.server.app.state.runtime.pool.acquire() as conn:
        await lifecycle_store.record_command(
            conn, command_id, uuid.UUID(model["model_id"]), "production", "succeeded", "RollbackCompleted",
            {"model_id": model["model_id"], "environment": "production"}, datetime.now(timezone.utc))
    return str(command_id)


async def test_a_commands_model_decides_for_a_key_whose_role_falls_short(system, lifecycle, gateway):
    server, pool = gateway
    mine, other = await _model(server, system.admin_token), await _model(server, system.admin_token)
    mine_command, other_command = await _command(lifecycle, mine), await _command(lifecycle, other)
    guest_name = f"cmd-guest-{uuid.uuid4().hex[:8]}"
    guest = (await gateway_handlers.create_key(pool, name=guest_name, role="guest", created_by="tests")).token
    viewer = (await gateway_handlers.create_key(pool, name=f"cmd-viewer-{uuid.uuid4().hex[:8]}", role="viewer",
                                                created_by="tests")).token

    async with _client(server, guest) as api:
        assert (await api.get(f"/api/v1/commands/{mine_command}")).status_code == 403  # no grant yet
    async with _client(server, system.admin_token) as api:
        granted = await api.post(f"/api/v1/models/{mine['model_id']}/permissions",
                                 json={"principal": guest_name, "permission": "read"})
        assert granted.status_code == 201, granted.text

    async with _client(server, guest) as api:
        own = await api.get(f"/api/v1/commands/{mine_command}")
        assert own.status_code == 200, own.text
        assert (own.json()["model_id"], own.json()["status"]) == (mine["model_id"], "succeeded")
        foreign = await api.get(f"/api/v1/commands/{other_command}")
        unknown = await api.get(f"/api/v1/commands/{uuid.uuid4()}")
    # a command of a model the guest cannot read and one that does not exist: the same refusal
    assert foreign.status_code == unknown.status_code == 403
    assert foreign.json()["detail"] == unknown.json()["detail"]
    assert other["model_id"] not in foreign.text

    async with _client(server, viewer) as api:  # the role reads every model: as before
        assert (await api.get(f"/api/v1/commands/{other_command}")).status_code == 200
        assert (await api.get(f"/api/v1/commands/{uuid.uuid4()}")).status_code == 404
