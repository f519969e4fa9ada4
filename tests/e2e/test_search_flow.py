"""Search on the stack as processes: models registered, versioned and published through the gateway are
found by the search-indexer (its own process) through GET /api/v1/models/search."""
from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def register(api: httpx.AsyncClient, name: str, run: str, framework: str = "pytorch") -> str:
    response = await api.post("/api/v1/models", json={
        "name": name, "type": "classification", "framework": framework, "task": "text-classification",
        "description": f"{name} for search", "tags": {"run": run}})
    assert response.status_code == 201, response.text
    return response.json()["model_id"]


async def version(api: httpx.AsyncClient, model: str, number: str, accuracy: float) -> None:
    response = await api.post(f"/api/v1/models/{model}/versions", json={"version": number, "metrics": {"accuracy": accuracy}})
    assert response.status_code == 201, response.text


async def search(api: httpx.AsyncClient, **params) -> dict:
    response = await api.get("/api/v1/models/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_registered_models_are_found_by_text_typo_filters_metrics_and_stage(stack):
    run = uuid.uuid4().hex[:10]
    tag = f"run:{run}"
    async with stack.client() as api:
        bert = await register(api, f"bert-base-chinese-{run}", run)
        roberta = await register(api, f"roberta-{run}", run)
        other = await register(api, f"resnet-{run}", run, framework="tensorflow")
        await version(api, bert, "1.0.0", 0.91)
        await version(api, bert, "1.1.0", 0.97)
        await version(api, roberta, "1.0.0", 0.85)
        await version(api, other, "1.0.0", 0.99)
        payload = b"weights of 1.0.0"
        stored = await api.put(f"/api/v1/models/{bert}/versions/1.0.0/artifact", content=payload,
                               headers={"content-type": "application/octet-stream"})
        assert stored.status_code == 201, stored.text
        staged = await api.post(f"/api/v1/models/{bert}/versions/1.0.0/transitions",
                                json={"environment": "production", "to_stage": "staging"})
        assert staged.status_code == 200, staged.text
        published = await api.post(f"/api/v1/models/{bert}/versions/1.0.0/publish", json={"environment": "production"})
        assert published.status_code == 200, published.text

        async def indexed():
            body = await search(api, tag=tag, sort_by="accuracy", order="desc")
            ready = body["total"] == 3 and any(m["status"] == "production" for m in body["models"]) and \
                all(m["version"] for m in body["models"])
            return body if ready else None

        body = await eventually(indexed, timeout=60)
        assert [m["model_id"] for m in body["models"]] == [other, bert, roberta]
        bert_row = body["models"][1]
        # the production version represents the model, not the newer 1.1.0
        assert (bert_row["version"], bert_row["status"], bert_row["metrics"]) == ("1.0.0", "production", {"accuracy": 0.91})

        typo = await search(api, q="bertt", tag=tag, framework="pytorch", task="text-classification")
        assert [m["model_id"] for m in typo["models"]] == [bert]
        ranged = await search(api, tag=tag, metric="accuracy>=0.9", framework="pytorch")
        assert [m["model_id"] for m in ranged["models"]] == [bert]
        assert [m["model_id"] for m in (await search(api, tag=tag, stage="production"))["models"]] == [bert]
        paged = await search(api, tag=tag, sort_by="name", order="asc", page=2, page_size=2)
        assert (paged["total"], paged["page"], [m["model_id"] for m in paged["models"]]) == (3, 2, [roberta])  # bert, resnet | roberta

        deleted = await api.delete(f"/api/v1/models/{roberta}")
        assert deleted.status_code == 204, deleted.text

        async def gone():
            return (await search(api, tag=tag))["total"] == 2

        await eventually(gone, timeout=60)
        refused = await api.get("/api/v1/models/search", params={"sort_by": "accuracy", "order": "up"})
        assert refused.status_code == 422
    async with httpx.AsyncClient(base_url=stack.gateway) as anonymous:
        assert (await anonymous.get("/api/v1/models/search", params={"q": "bert"})).status_code == 401
