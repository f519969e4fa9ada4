"""GET /api/v1/models/search for a key whose role cannot read every model (a guest), through the real
gateway, registry and search-indexer on real Postgres, Kafka and Redis: it finds only the models the key
owns or holds a live grant on (directly or through its team), totals and pages count only those, a
revoked grant stops counting, a client cannot widen the scope, and a viewer still finds everything."""
from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import pytest

from libs.search.opensearch import build_request
from libs.search.query import build_query
from services.gateway import handlers as gateway_handlers
from tests.support.kafka import eventually


async def _key(search_system, role: str, *, team: str | None = None) -> tuple[str, str]:
    name = f"sg-{role}-{uuid.uuid4().hex[:10]}"
    new = await gateway_handlers.create_key(search_system.system.pool, name=name, role=role, created_by="tests",
                                            team=team)
    return name, new.token


async def _search(api: httpx.AsyncClient, **params) -> dict:
    response = await api.get("/api/v1/models/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(body: dict) -> set[str]:
    return {m["model_id"] for m in body["models"]}


@pytest.mark.asyncio
async def test_a_guest_finds_only_what_it_may_read(search_system, run_tag):
    key, value = run_tag.split(":")
    team = f"sg-team-{uuid.uuid4().hex[:8]}"
    guest_name, guest = await _key(search_system, "guest", team=team)
    _, bare = await _key(search_system, "guest")
    _, viewer = await _key(search_system, "viewer")
    async with search_system.public(search_system.system.admin_token) as admin:
        models = []
        for i in range(6):
            created = await admin.post("/api/v1/models", json={
                "name": f"sg-{uuid.uuid4().hex[:8]}-{i}", "type": "regression", "description": "walrus counter",
                "tags": {key: value}})
            assert created.status_code == 201, created.text
            models.append(created.json())
        a, b, c = models[:3]
        for ref, principal, level in ((a["name"], guest_name, "read"), (b["name"], f"team:{team}", "admin"),
                                      (c["name"], "someone-else", "write")):
            granted = await admin.post(f"/api/v1/models/{ref}/permissions",
                                       json={"principal": principal, "permission": level})
            assert granted.status_code == 201, granted.text
    everything = {m["model_id"] for m in models}

    async with search_system.public(viewer) as api:  # a viewer still finds all six, once indexed
        async def indexed():
            body = await _search(api, tag=run_tag, page_size=100)
            return body if _ids(body) == everything else None

        assert (await eventually(indexed, timeout=60))["total"] == 6

    async with search_system.public(guest) as api:
        body = await _search(api, tag=run_tag)
        assert body["total"] == 2 and _ids(body) == {a["model_id"], b["model_id"]}, body
        assert (await _search(api))["total"] == 2  # no filter at all: still only its own two
        pages = [await _search(api, tag=run_tag, sort_by="name", order="asc", page=n, page_size=1) for n in (1, 2, 3)]
        assert [p["total"] for p in pages] == [2, 2, 2]
        assert [m["name"] for p in pages for m in p["models"]] == sorted([a["name"], b["name"]])
        assert _ids(await _search(api, q="walrus", tag=run_tag)) == {a["model_id"], b["model_id"]}
        # what a client sends cannot widen it
        widened = await api.get("/api/v1/models/search", params={"tag": run_tag, "model_ids": [c["model_id"]]},
                                headers={"x-cairn-role": "admin", "x-cairn-internal-token": "test-internal-token",
                                         "x-cairn-model-scope": c["model_id"]})
        assert widened.status_code == 200 and _ids(widened.json()) == {a["model_id"], b["model_id"]}, widened.text

    async with search_system.public(search_system.system.admin_token) as admin:
        revoked = await admin.delete(f"/api/v1/models/{b['name']}/permissions/team:{team}/admin")
        assert revoked.status_code == 204, revoked.text
    async with search_system.public(guest) as api:
        body = await _search(api, tag=run_tag)
        assert body["total"] == 1 and _ids(body) == {a["model_id"]}

    async with search_system.public(bare) as api:  # no grant at all: an empty page, not 403
        assert await _search(api, tag=run_tag, page=3, page_size=7) == {"total": 0, "page": 3, "page_size": 7,
                                                                       "models": []}
        assert (await api.get("/api/v1/models/search", params={"page": 0})).status_code == 422
    async with search_system.public("cairn_not_a_key") as api:
        assert (await api.get("/api/v1/models/search")).status_code == 401


@pytest.mark.asyncio
async def test_the_internal_scope_needs_the_internal_token(search_system):
    async with httpx.AsyncClient(base_url=search_system.indexer.url, timeout=30) as api:
        refused = await api.post("/internal/search/scoped", json={"model_ids": [str(uuid.uuid4())]})
        assert refused.status_code == 401
    async with search_system.internal() as api:
        empty = await api.post("/internal/search/scoped", json={"model_ids": []}, params={"page_size": 3})
        assert empty.status_code == 200 and empty.json() == {"total": 0, "page": 1, "page_size": 3, "models": []}
        unknown = await api.post("/internal/search/scoped", json={"model_ids": [str(uuid.uuid4())]})
        assert unknown.status_code == 200 and unknown.json()["total"] == 0
        bad = await api.post("/internal/search/scoped", json={"model_ids": "all"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "model_ids"
        extra = await api.post("/internal/search/scoped", json={"model_ids": [], "everything": True})
        assert extra.status_code == 422


def test_the_opensearch_request_filters_the_scope_by_model_id():
    """The OpenSearch adapter keeps the scope as a terms filter on model_id (no OpenSearch here to run
    the contract suite against; this pins the request it sends)."""
    ids = (uuid.uuid4(), uuid.uuid4())
    body = build_request(replace(build_query(q="bert", framework="pytorch"), model_ids=ids))
    filters = body["query"]["bool"]["filter"]
    assert {"terms": {"model_id": sorted(str(i) for i in ids)}} in filters
    assert {"term": {"framework": "pytorch"}} in filters
    assert not any("terms" in f for f in build_request(build_query(q="bert"))["query"]["bool"]["filter"])
