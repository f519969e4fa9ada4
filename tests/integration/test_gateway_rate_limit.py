"""The per-key rate limit (fixed one-minute window in Redis): ordinary routes count in the auth
dependency; the production lookup counts in the same Lua call that reads its view. Over the limit, a
429 problem with retry_after_s, and nothing is read."""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from tests.support.servers import serve

pytestmark = pytest.mark.asyncio

LIMIT = 3


@pytest.fixture(scope="module")
async def strict_gateway(service_env, system):
    app = create_gateway(GatewaySettings(**service_env, registry_url=system.services["registry"].url,
                                         audit_url=system.services["audit"].url, rate_limit_per_minute=LIMIT))
    server = await serve(app)
    yield server
    await server.stop()


async def _statuses(strict_gateway, path: str, calls: int) -> list[httpx.Response]:
    """``calls`` requests with a fresh key, all within one rate window (retried if a minute boundary
    falls in between, which would reset the count)."""
    for _ in range(3):
        key = await gateway_handlers.create_key(strict_gateway.app.state.runtime.pool, name=f"rl-{uuid.uuid4().hex[:6]}",
                                                role="viewer", created_by="tests")
        window = int(time.time() // 60)
        async with httpx.AsyncClient(base_url=strict_gateway.url, timeout=30,
                                     headers={"authorization": f"Bearer {key.token}"}) as api:
            responses = [await api.get(path) for _ in range(calls)]
        if int(time.time() // 60) == window:
            return responses
    raise AssertionError("could not stay inside one minute")


async def test_an_ordinary_route_is_limited_per_key(strict_gateway):
    responses = await _statuses(strict_gateway, "/api/v1/models", LIMIT + 1)
    assert [r.status_code for r in responses] == [200] * LIMIT + [429]
    problem = responses[-1].json()
    assert responses[-1].headers["content-type"] == "application/problem+json"
    assert problem["code"] == "rate_limited" and 0 < problem["retry_after_s"] <= 60


async def test_the_production_lookup_counts_in_its_own_round_trip(strict_gateway, service_env):
    model_id = uuid.uuid4()
    view = {"model_id": str(model_id), "version": "1.0.0", "revision": 1}
    redis = aioredis.from_url(service_env["redis_url"])
    try:
        await redis.set(f"cairn:prod:{model_id}:production", json.dumps(view), ex=300)
        responses = await _statuses(strict_gateway, f"/api/v1/models/{model_id}/production", LIMIT + 1)
    finally:
        await redis.delete(f"cairn:prod:{model_id}:production")
        await redis.aclose()
    assert [r.status_code for r in responses] == [200] * LIMIT + [429]
    assert all(r.headers["x-cairn-served-from"] == "cache" and r.json() == view for r in responses[:LIMIT])
    assert responses[-1].json()["code"] == "rate_limited"
