"""GET /api/v1/models for a key whose role cannot read every model (a guest): through the real gateway and
registry on real Postgres, Kafka and Redis, the list holds exactly the models the key owns or holds a live
grant on (directly or through its team), totals and pages count only those, a revoked or expired grant
stops counting, nothing a client sends widens the view, and a role that reads everything is unchanged."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from services.gateway import handlers as gateway_handlers
from tests.support.kafka import eventually

pytestmark = pytest.mark.asyncio


def _uid() -> str:
    return uuid.uuid4().hex[:10]


async def _key(system, role: str, *, team: str | None = None, name: str | None = None, expires_at=None):
    name = name or f"gl-{role}-{_uid()}"
    new = await gateway_handlers.create_key(system.pool, name=name, role=role, created_by="tests", team=team,
                                            expires_at=expires_at)
    return name, new


async def _model(api: httpx.AsyncClient, name: str, owner: str | None = None) -> dict:
    body = {"name": name, "type": "regression", "description": "guest listing probe"}
    if owner:
        body["owner"] = owner
    response = await api.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _grant(api, model_ref: str, principal: str, permission: str, **extra) -> dict:
    response = await api.post(f"/api/v1/models/{model_ref}/permissions",
                              json={"principal": principal, "permission": permission, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def _listed(api: httpx.AsyncClient, **params) -> dict:
    response = await api.get("/api/v1/models", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(page: dict) -> set[str]:
    return {m["model_id"] for m in page["models"]}


@pytest.fixture
async def world(system):
    """Eight models; a guest (in a team) with a read grant on A and a team write grant on B; other guests'
    grants on C and D; a viewer."""
    uid, team = _uid(), f"gl-team-{_uid()}"
    guest_name, guest = await _key(system, "guest", team=team)
    other_name, _ = await _key(system, "guest")
    async with system.admin as admin:
        models = [await _model(admin, f"gl-{uid}-{i}") for i in range(8)]
        a, b, c, d = models[:4]
        await _grant(admin, a["model_id"], guest_name, "read")
        await _grant(admin, b["name"], f"team:{team}", "write")
        await _grant(admin, c["name"], other_name, "admin")
        await _grant(admin, d["name"], f"team:gl-elsewhere-{uid}", "read")
    _, viewer = await _key(system, "viewer")
    return {"uid": uid, "team": team, "guest": guest, "guest_name": guest_name, "models": models, "viewer": viewer}


async def test_a_guest_lists_exactly_its_granted_models_with_correct_paging(system, world):
    a, b = world["models"][:2]
    async with system.client(world["guest"].token) as api:
        page = await _listed(api)
        assert page["total"] == 2 and _ids(page) == {a["model_id"], b["model_id"]}, page
        # paging counts only what the guest sees
        seen = []
        for number in (1, 2, 3):
            one = await _listed(api, page_size=1, page=number, sort="name")
            assert (one["total"], one["page"], one["page_size"]) == (2, number, 1)
            seen += [m["name"] for m in one["models"]]
        assert seen == sorted([a["name"], b["name"]], key=str.lower)
        # filters still apply within the scope
        narrowed = await _listed(api, q=a["name"])
        assert narrowed["total"] == 1 and _ids(narrowed) == {a["model_id"]}
        assert (await _listed(api, q=world["models"][2]["name"]))["total"] == 0
        # a single model the guest holds no grant on is still refused
        assert (await api.get(f"/api/v1/models/{world['models'][2]['name']}")).status_code == 403


async def test_a_viewer_still_sees_everything(system, world):
    async with system.client(world["viewer"].token) as api:
        page = await _listed(api, q=f"gl-{world['uid']}-", page_size=100)
    assert page["total"] == 8 and _ids(page) == {m["model_id"] for m in world["models"]}


async def test_revoking_a_grant_shrinks_the_list(system, world):
    a, b = world["models"][:2]
    async with system.client(world["guest"].token) as api, system.admin as admin:
        assert (await _listed(api))["total"] == 2
        revoked = await admin.delete(f"/api/v1/models/{b['name']}/permissions/team:{world['team']}/write")
        assert revoked.status_code == 204, revoked.text
        page = await _listed(api)
        assert page["total"] == 1 and _ids(page) == {a["model_id"]}
        revoked = await admin.delete(f"/api/v1/models/{a['name']}/permissions/{world['guest_name']}/read")
        assert revoked.status_code == 204, revoked.text
        assert await _listed(api) == {"total": 0, "page": 1, "page_size": 20, "models": []}


async def test_an_expired_grant_does_not_count(system, world):
    a, b = world["models"][:2]
    e = world["models"][4]
    ends = datetime.now(timezone.utc) + timedelta(seconds=3)
    async with system.admin as admin:
        await _grant(admin, e["name"], world["guest_name"], "publish", expires_at=ends.isoformat())
    async with system.client(world["guest"].token) as api:
        assert _ids(await _listed(api)) == {a["model_id"], b["model_id"], e["model_id"]}
        await asyncio.sleep(max(0.0, (ends - datetime.now(timezone.utc)).total_seconds()) + 0.2)
        page = await _listed(api)  # not served from a cache that outlives the grant
        assert page["total"] == 2 and _ids(page) == {a["model_id"], b["model_id"]}


async def test_owned_models_are_listed(system, world):
    owned_name = f"gl-{world['uid']}-owned"
    async with system.admin as admin:
        owned = await _model(admin, owned_name, owner=world["guest_name"])
        team_owned = await _model(admin, f"gl-{world['uid']}-team-owned", owner=f"team:{world['team']}")
    expected = {m["model_id"] for m in world["models"][:2]} | {owned["model_id"], team_owned["model_id"]}
    async with system.client(world["guest"].token) as api:
        async def all_there():  # ownership is known from the model events the gateway projects
            page = await _listed(api)
            return page if _ids(page) == expected else None

        page = await eventually(all_there, timeout=30)
        assert page["total"] == 4


async def test_nothing_a_client_sends_widens_the_list(system, world):
    a, b, c, d = world["models"][:4]
    wanted = [c["model_id"], d["model_id"]]
    async with system.client(world["guest"].token) as api:
        for params in ({"model_ids": wanted}, {"model_id": wanted}, {"scope": wanted}):
            response = await api.get("/api/v1/models", params=params)
            assert response.status_code == 200, response.text
            assert _ids(response.json()) == {a["model_id"], b["model_id"]}, params
        response = await api.request("GET", "/api/v1/models", json={"model_ids": wanted},
                                     headers={"x-cairn-role": "admin", "x-cairn-actor": "test-admin",
                                              "x-cairn-internal-token": "test-internal-token",
                                              "x-cairn-model-scope": ",".join(wanted)})
        assert response.status_code == 200, response.text
        assert _ids(response.json()) == {a["model_id"], b["model_id"]}
    # a guest with no grant sends the same and still sees nothing
    _, bare = await _key(system, "guest")
    async with system.client(bare.token) as api:
        response = await api.get("/api/v1/models", params={"model_ids": wanted},
                                 headers={"x-cairn-model-scope": ",".join(wanted)})
        assert response.status_code == 200 and response.json()["total"] == 0, response.text


async def test_a_guest_without_grants_gets_an_empty_page_but_a_bad_key_is_still_401(system):
    _, bare = await _key(system, "guest")
    async with system.client(bare.token) as api:
        assert await _listed(api, page=2, page_size=5) == {"total": 0, "page": 2, "page_size": 5, "models": []}
        bad = await api.get("/api/v1/models", params={"page_size": 1000})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.page_size"
    _, expired = await _key(system, "guest", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    _, revoked = await _key(system, "guest")
    await gateway_handlers.revoke_key(system.pool, revoked.key_id, actor="tests")
    for token in (None, "cairn_not_a_key", expired.token, revoked.token):
        async with system.client(token) as api:
            response = await api.get("/api/v1/models")
        assert response.status_code == 401, (token, response.text)
        assert response.json()["code"] == "unauthenticated"


async def test_the_registry_scope_is_internal_and_exact(system, world):
    a, b, c = world["models"][:3]
    registry = system.services["registry"].url
    async with httpx.AsyncClient(base_url=registry, timeout=30) as api:
        refused = await api.post("/internal/models/scoped", json={"model_ids": [c["model_id"]]})
        assert refused.status_code == 401
        headers = {"x-cairn-internal-token": "test-internal-token", "x-cairn-actor": "tests"}
        scoped = await api.post("/internal/models/scoped", json={"model_ids": [a["model_id"], c["model_id"]]},
                                params={"page_size": 1, "sort": "name"}, headers=headers)
        assert scoped.status_code == 200, scoped.text
        assert scoped.json()["total"] == 2 and len(scoped.json()["models"]) == 1
        empty = await api.post("/internal/models/scoped", json={"model_ids": []}, headers=headers)
        assert empty.json()["total"] == 0
        bad = await api.post("/internal/models/scoped", json={"model_ids": ["nope"]}, headers=headers)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("model_ids")
