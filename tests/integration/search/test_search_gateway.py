"""GET /api/v1/models/search through the real gateway: models registered through the gateway (real
registry, real events) are found; bad queries get 422 naming the parameter; no key gets 401; the route
is not taken for /models/{model}."""
from __future__ import annotations

import uuid

import pytest

from tests.support.kafka import eventually


def transformer(name: str, run_tag: str, **extra) -> dict:
    key, value = run_tag.split(":")
    body = {"name": name, "type": "transformer", "framework": "pytorch", "task": "text-classification",
            "description": "Chinese text classifier",
            "metadata": {"vocab_size": 1000, "max_seq_len": 64, "d_model": 32, "num_heads": 4, "num_layers": 2,
                         "d_ff": 64},
            "tags": {key: value}}
    body.update(extra)
    return body


async def test_models_registered_through_the_gateway_are_found_through_it(search_system, run_tag):
    admin = search_system.system.admin_token
    viewer = await search_system.system.token_for("viewer")
    name = f"bert-base-chinese-{uuid.uuid4().hex[:8]}"
    async with search_system.public(admin) as api:
        created = await api.post("/api/v1/models", json=transformer(name, run_tag))
        assert created.status_code == 201, created.text
        other = await api.post("/api/v1/models", json=transformer(f"resnet-{uuid.uuid4().hex[:8]}", run_tag,
                                                                  framework="tensorflow"))
        assert other.status_code == 201, other.text
    model_id = created.json()["model_id"]

    async with search_system.public(viewer) as api:
        async def found():
            response = await api.get("/api/v1/models/search", params={
                "q": "bertt", "framework": "pytorch", "task": "text-classification", "tag": run_tag,
                "sort_by": "accuracy", "order": "desc", "page": 1, "page_size": 20})
            assert response.status_code == 200, response.text
            body = response.json()
            return body if body["total"] == 1 else None

        body = await eventually(found, timeout=30)
        assert set(body) == {"total", "page", "page_size", "models"}
        row = body["models"][0]
        assert row["model_id"] == model_id and row["name"] == name
        assert {"model_id", "name", "version", "status", "metrics", "created_at"} <= set(row)
        assert (row["version"], row["status"], row["metrics"]) == (None, None, {})
        async def both_indexed():  # the second model's event may come later (another partition)
            response = await api.get("/api/v1/models/search", params={"tag": run_tag})
            return response.json()["total"] == 2

        await eventually(both_indexed, timeout=30)
        # /models/{model} still answers for a model by name: the search route did not swallow it
        assert (await api.get(f"/api/v1/models/{name}")).json()["model_id"] == model_id


@pytest.mark.parametrize("params, field", [
    ({"sort_by": "drop table"}, "query.sort_by"),
    ({"order": "sideways"}, "query.order"),
    ({"metric": "accuracy>>0.9"}, "query.metric"),
    ({"metric": "accuracy>=high"}, "query.metric"),
    ({"stage": "live"}, "query.stage"),
    ({"page_size": 101}, "query.page_size"),
    ({"page": 0}, "query.page"),
])
async def test_bad_queries_are_refused_naming_the_parameter(search_system, params, field):
    async with search_system.public(search_system.system.admin_token) as api:
        response = await api.get("/api/v1/models/search", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_search_needs_a_key(search_system):
    async with search_system.public(None) as api:
        response = await api.get("/api/v1/models/search", params={"q": "bert"})
    assert response.status_code == 401
    async with search_system.public("cairn_nokey_notasecret") as api:
        assert (await api.get("/api/v1/models/search")).status_code == 401


async def test_the_gateway_openapi_shows_the_search_contract(search_system):
    async with search_system.public(None) as api:
        spec = (await api.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/models/search"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"q", "framework", "task", "type", "tag", "stage",
                                                            "metric", "sort_by", "order", "page", "page_size"}
    assert "SearchResponse" in spec["components"]["schemas"]
