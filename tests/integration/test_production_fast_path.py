"""The production lookup's fast path (services/gateway/fast_lookup.py): a cache hit for a key whose role
reads lifecycle is answered before FastAPI with the same body, headers and metrics as the route; every
other case (cold key cache, miss, refusal, grant-based caller, unusual query, rate limit) takes the route."""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from tests.support.kafka import eventually
from tests.support.servers import serve

pytestmark = pytest.mark.asyncio

ROUTE = "/api/v1/models/{model_ref}/production"
LIMIT = 4


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def redis(service_env):
    client = aioredis.from_url(service_env["redis_url"])
    yield client
    await client.aclose()


class RouteCalls:
    """Counts the FastAPI route's own Redis lookups: the fast path never makes one."""

    def __init__(self, gateway) -> None:
        self.count = 0
        self.real = gateway.production_lookup

    async def __call__(self, *args, **kwargs):
        self.count += 1
        return await self.real(*args, **kwargs)


@pytest.fixture
def route_calls(system, monkeypatch) -> RouteCalls:
    gateway = system.gateway.app.state.gateway
    calls = RouteCalls(gateway)
    monkeypatch.setattr(gateway, "production_lookup", calls)
    return calls


async def _key(pool, role: str) -> tuple[str, str]:
    name = f"fast-{role}-{_uid()}"
    return name, (await gateway_handlers.create_key(pool, name=name, role=role, created_by="tests")).token


async def _live_view(redis, name: str | None = None, environment: str = "production") -> tuple[str, bytes]:
    """A production view as the lifecycle service stores it (compact JSON), reachable by id and by name."""
    model_id = str(uuid.uuid4())
    view = json.dumps({"model_id": model_id, "model_name": name, "environment": environment, "version": "1.0.0",
                       "weights": {"1.0.0": 100}, "revision": 3}, separators=(",", ":")).encode()
    await redis.set(f"cairn:prod:{model_id}:{environment}", view, ex=300)
    if name:
        await redis.set(f"cairn:model-name:{name.lower()}", model_id, ex=300)
    return model_id, view


def _served(status: str) -> float:
    return REGISTRY.get_sample_value("cairn_http_requests_total", {
        "service": "gateway", "method": "GET", "route": ROUTE, "status": status}) or 0.0


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "server")}
    return response.status_code, response.content, headers


async def test_a_hit_answers_like_the_route_without_it(system, redis, route_calls):
    _, token = await _key(system.pool, "viewer")
    model_id, view = await _live_view(redis)
    path = f"/api/v1/models/{model_id}/production"
    async with system.client(token) as api:
        first = await api.get(path)  # a cold key cache: the route authenticates the key (and caches it)
        assert route_calls.count == 1
        before = _served("200")
        second = await api.get(path)
        by_query = await api.get(path, params={"environment": "production"})
    assert route_calls.count == 1, "the warm hits must not reach the route"
    assert _served("200") == before + 2
    assert _comparable(first) == _comparable(second) == _comparable(by_query)
    assert second.content == view
    assert second.headers["content-type"] == "application/json"
    assert second.headers["x-cairn-served-from"] == "cache"
    assert second.headers["x-content-type-options"] == "nosniff"
    assert second.headers["content-length"] == str(len(view))


async def test_a_name_and_another_environment_hit_too(system, redis, route_calls):
    _, token = await _key(system.pool, "editor")
    name = f"Fast-{_uid()}"
    _, view = await _live_view(redis, name=name, environment="staging")
    async with system.client(token) as api:
        await api.get("/api/v1/models")  # warms the key cache
        response = await api.get(f"/api/v1/models/{name.lower()}/production", params={"environment": "staging"})
        missing_env = await api.get(f"/api/v1/models/{name}/production")
    assert response.status_code == 200 and response.content == view
    assert route_calls.count == 1  # only the miss in production went to the route (and on to lifecycle)
    assert missing_env.status_code != 200 and missing_env.headers["content-type"] == "application/problem+json"


async def test_misses_and_unusual_queries_take_the_route(system, redis, route_calls):
    _, token = await _key(system.pool, "viewer")
    model_id, view = await _live_view(redis)
    async with system.client(token) as api:
        await api.get("/api/v1/models")
        unknown = await api.get(f"/api/v1/models/{uuid.uuid4()}/production")
        assert route_calls.count == 1 and unknown.headers.get("x-cairn-served-from") != "cache"
        extra = await api.get(f"/api/v1/models/{model_id}/production?environment=production&x=1")
        assert route_calls.count == 2 and extra.status_code == 200 and extra.content == view
        too_long = await api.get(f"/api/v1/models/{model_id}/production", params={"environment": "e" * 65})
        assert too_long.status_code == 422 and too_long.json()["code"] == "validation_failed"
        head = await api.head(f"/api/v1/models/{model_id}/production")
    assert head.status_code == 405 and route_calls.count == 2  # HEAD is the router's to answer


def _own_address(system, address: str, token: str | None = None) -> httpx.AsyncClient:
    """Refusals are audited up to 30 per client address per minute: an address of its own keeps the budget."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=system.gateway.url, headers=headers, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_refusals_take_the_route_and_its_audit(system, redis, route_calls):
    model_id, _ = await _live_view(redis)
    path = f"/api/v1/models/{model_id}/production"
    _, guest = await _key(system.pool, "guest")
    async with _own_address(system, "127.0.0.41", guest) as api:
        refused = [await api.get(path) for _ in range(2)]  # the second with the key cached
    for response in refused:
        assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["permission"] == "lifecycle:read" and problem["required"] == "read"
        assert problem["instance"] == path and response.headers["x-content-type-options"] == "nosniff"
    unknown = "Bearer cairn_000000000000_" + "x" * 43
    for header in ("", "Bearer", unknown):
        async with _own_address(system, "127.0.0.42") as api:
            response = await api.get(path, headers={"authorization": header} if header else {})
        assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    assert route_calls.count == 0  # refused in the route's dependency, before its lookup

    async def audited():
        async with system.admin as admin:
            page = (await admin.get("/api/v1/audit", params={"event_type": "AccessDenied"})).json()
        mine = [e["payload"] for e in page["entries"] if e["payload"]["path"] == path]
        return mine if len(mine) >= 5 else None

    denials = await eventually(audited)
    assert sorted(d["status"] for d in denials) == [401, 401, 401, 403, 403]
    assert all(d["permission"] == "lifecycle:read" for d in denials)


async def test_a_revoked_key_is_refused_at_once(system, redis, route_calls):
    name, token = await _key(system.pool, "viewer")
    model_id, _ = await _live_view(redis)
    path = f"/api/v1/models/{model_id}/production"
    async with system.client(token) as api:
        assert (await api.get(path)).status_code == 200
        assert (await api.get(path)).status_code == 200
        key_id = token.split("_")[1]
        async with system.admin as admin:
            assert (await admin.delete(f"/api/v1/keys/{key_id}")).status_code in (200, 204)
        response = await api.get(path)
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


async def test_a_grant_based_caller_takes_the_route(system, redis, route_calls):
    reader, token = await _key(system.pool, "guest")
    async with system.admin as admin:
        created = await admin.post("/api/v1/models", json={"name": f"fast-{_uid()}", "type": "classification",
                                                          "metadata": {"input_dim": 4, "num_classes": 3}})
        assert created.status_code == 201, created.text
        model = created.json()
        granted = await admin.post(f"/api/v1/models/{model['name']}/permissions",
                                   json={"principal": reader, "permission": "read"})
        assert granted.status_code == 201, granted.text
    view = json.dumps({"model_id": model["model_id"], "version": "1.0.0", "revision": 1}).encode()
    await redis.set(f"cairn:prod:{model['model_id']}:production", view, ex=300)
    async with system.client(token) as api:
        responses = [await api.get(f"/api/v1/models/{model['model_id']}/production") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200] and all(r.content == view for r in responses)
    assert route_calls.count == 2


@pytest.fixture(scope="module")
async def strict_gateway(service_env, system):
    app = create_gateway(GatewaySettings(**service_env, registry_url=system.services["registry"].url,
                                         audit_url=system.services["audit"].url, rate_limit_per_minute=LIMIT))
    server = await serve(app)
    yield server
    await server.stop()


async def test_the_rate_limit_counts_each_request_once(strict_gateway, redis):
    """Hits on the fast path and the route share one counter; over the limit, the route answers 429."""
    model_id, view = await _live_view(redis)
    for _ in range(3):  # retried if a minute boundary resets the window in between
        _, token = await _key(strict_gateway.app.state.runtime.pool, "viewer")
        window = int(time.time() // 60)
        async with httpx.AsyncClient(base_url=strict_gateway.url, timeout=30,
                                     headers={"authorization": f"Bearer {token}"}) as api:
            await api.get(f"/api/v1/models/{uuid.uuid4()}/production")  # a miss: counted once, by the route
            responses = [await api.get(f"/api/v1/models/{model_id}/production") for _ in range(LIMIT)]
        if int(time.time() // 60) == window:
            break
    else:
        raise AssertionError("could not stay inside one minute")
    assert [r.status_code for r in responses] == [200] * (LIMIT - 1) + [429]
    assert all(r.content == view for r in responses[:-1])
    problem = responses[-1].json()
    assert problem["code"] == "rate_limited" and 0 < problem["retry_after_s"] <= 60
    assert responses[-1].headers["x-content-type-options"] == "nosniff"
