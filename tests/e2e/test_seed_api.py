"""Seed 001 §5.1, as its users wrote the calls: register, update, create a version, publish and roll back
with the literal bodies (a server-side model_path is refused with the route that uploads instead), and
the status each answer carries, on the stack as processes."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.e2e.test_lifecycle_flow import staged_version
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_seed_001_calls_with_their_literal_bodies(stack):
    name = f"bert-base-chinese-{uuid.uuid4().hex[:6]}"
    register = {"name": name, "model_path": "/path/to/model",
                "metadata": {"framework": "pytorch", "task": "text-classification",
                             "input_shape": [512], "output_shape": [10]},
                "tags": {"language": "chinese", "version": "base"}}
    async with stack.client() as api:
        refused = await api.post("/api/v1/models", json=register)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "model_path"
        assert "/artifact" in refused.json()["errors"][0]["message"]

        del register["model_path"]
        created = await api.post("/api/v1/models", json=register)
        assert created.status_code == 201, created.text
        model = created.json()
        assert (model["name"], model["status"], model["framework"]) == (name, "draft", "pytorch")

        updated = await api.put(f"/api/v1/models/{model['model_id']}", json={
            "metadata": {"description": "BERT base model for Chinese text classification"},
            "tags": {"language": "chinese", "version": "base", "updated": "true"}})
        assert updated.status_code == 200, updated.text
        assert updated.json()["description"] == "BERT base model for Chinese text classification"

        path_version = await api.post(f"/api/v1/models/{model['model_id']}/versions", json={
            "model_path": "/path/to/new/model", "version": "1.1.0",
            "description": "Improved version with better performance"})
        assert path_version.status_code == 422 and path_version.json()["errors"][0]["field"] == "model_path"

        first = await staged_version(api, model["model_id"], os.urandom(4096), version="1.0.0",
                                     description="first cut")
        second = await staged_version(api, model["model_id"], os.urandom(4096), version="1.1.0",
                                      description="Improved version with better performance")
        version = (await api.get(f"/api/v1/models/{model['model_id']}/versions/{second}")).json()
        assert version["change_log"] == "Improved version with better performance"

        for live in (first, second):
            published = await api.post(f"/api/v1/models/{model['model_id']}/versions/{live}/publish",
                                       json={"environment": "production"})
            assert published.status_code == 200, published.text
            assert published.json()["status"] == "production"

        async def model_status_is_production():
            return (await api.get(f"/api/v1/models/{name}")).json()["status"] == "production"

        await eventually(model_status_is_production)

        async def version_status(v: str) -> str:
            return (await api.get(f"/api/v1/models/{name}/versions/{v}")).json()["status"]

        await eventually(lambda: _equals(version_status(second), "production"))
        rolled = await api.post(f"/api/v1/models/{model['model_id']}/versions/{second}/rollback", json={
            "target_version": "1.0.0", "reason": "Rollback due to performance degradation"})
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["model_id"] == model["model_id"] and rolled.json()["current_version"] == "1.0.0"
        assert rolled.json()["rolled_back_at"]
        await eventually(lambda: _equals(version_status(first), "production"))
        await eventually(lambda: _equals(version_status(second), "archived"))


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected
