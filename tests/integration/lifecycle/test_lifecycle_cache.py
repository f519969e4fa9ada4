"""The production view in Redis: filled on the first read, refreshed from lifecycle events, never
overwritten by an older view."""
from __future__ import annotations

import json
import uuid

import pytest

from services.lifecycle.cache import TTL_S
from services.lifecycle.schemas import ProductionView
from tests.support.kafka import eventually

pytestmark = pytest.mark.asyncio


async def _cached(lc, model_id: str, environment: str = "production") -> dict | None:
    raw = await lc.redis.get(f"cairn:prod:{model_id}:{environment}")
    return json.loads(raw) if raw else None


async def test_the_production_view_comes_from_redis_after_the_first_read(lifecycle):
    lc = lifecycle
    model = await lc.create_model()
    model_id = model["model_id"]
    v1 = await lc.create_version(model_id, "1.0.0")
    await lc.go_live(model_id, "1.0.0")
    await lc.cache_settled(model_id)
    await lc.redis.delete(f"cairn:prod:{model_id}:production")
    async with lc.api() as api:
        first = await api.get(f"/internal/models/{model_id}/production")
        assert first.status_code == 200 and first.headers["x-cairn-served-from"] == "database"
        view = first.json()
        assert view == {
            "model_id": model_id, "model_name": model["name"], "environment": "production", "version": "1.0.0",
            "version_id": v1.version_id, "artifact": {"sha256": v1.sha256, "size": v1.size},
            "download": f"/api/v1/models/{model_id}/download?version=1.0.0", "weights": {"1.0.0": 100},
            "rollout": None, "updated_at": view["updated_at"], "revision": view["revision"],
        }
        cached = await _cached(lc, model_id)
        assert cached is not None and cached["revision"] == view["revision"] and cached["version"] == "1.0.0"
        assert 0 < await lc.redis.ttl(f"cairn:prod:{model_id}:production") <= TTL_S

        # the second read does not touch Postgres: a marker only Redis holds comes back
        await lc.redis.set(f"cairn:prod:{model_id}:production", json.dumps({**cached, "model_name": "from-redis"}))
        second = await api.get(f"/internal/models/{model_id}/production")
        assert second.headers["x-cairn-served-from"] == "cache" and second.json()["model_name"] == "from-redis"
        by_name = await api.get(f"/internal/models/{model['name']}/production")
        assert by_name.json()["model_name"] == "from-redis"
    assert await lc.redis.get(f"cairn:model-name:{model['name'].lower()}") == model_id.encode()


async def test_a_promotion_reaches_the_cache_through_events(lifecycle):
    lc = lifecycle
    model_id = (await lc.create_model())["model_id"]
    await lc.create_version(model_id, "1.0.0")
    await lc.create_version(model_id, "2.0.0")
    await lc.go_live(model_id, "1.0.0")
    async with lc.api() as api:
        first = (await api.get(f"/internal/models/{model_id}/production")).json()
    assert (await _cached(lc, model_id))["revision"] == first["revision"]

    await lc.go_live(model_id, "2.0.0")

    async def refreshed():  # nobody reads the API: the lifecycle-cache consumer writes the new view
        view = await _cached(lc, model_id)
        return view if view and view["version"] == "2.0.0" else None

    view = await eventually(refreshed, timeout=10, interval=0.02)
    assert view["revision"] > first["revision"] and view["weights"] == {"2.0.0": 100}


async def test_the_cache_consumer_repairs_a_view_left_stale_by_a_crash(lifecycle):
    """A process died between its commit and its invalidation: the old view is still cached."""
    lc = lifecycle
    model_id = (await lc.create_model())["model_id"]
    await lc.create_version(model_id, "1.0.0")
    await lc.create_version(model_id, "2.0.0")
    await lc.go_live(model_id, "1.0.0")
    async with lc.api() as api:
        stale = (await api.get(f"/internal/models/{model_id}/production")).json()
    original = lc.handlers._invalidate

    async def crashed_before_invalidating(*args, **kwargs):
        return None

    lc.handlers._invalidate = crashed_before_invalidating
    try:
        await lc.go_live(model_id, "2.0.0")
    finally:
        lc.handlers._invalidate = original

    async def repaired():
        view = await _cached(lc, model_id)
        return view if view and view["version"] == "2.0.0" else None

    assert (await eventually(repaired, timeout=10))["revision"] > stale["revision"]


async def test_a_stale_view_cannot_overwrite_a_newer_one(lifecycle):
    lc = lifecycle
    cache = lc.handlers.cache
    model_id = (await lc.create_model())["model_id"]
    await lc.create_version(model_id, "1.0.0")
    await lc.go_live(model_id, "1.0.0")
    real = await lc.handlers.view(lc.pool, uuid.UUID(model_id), "production")
    # the same view under a slot no event touches, so only this test writes its keys
    slot = uuid.uuid4()
    old = ProductionView(**{**real.model_dump(), "model_id": slot, "revision": 5})
    new = ProductionView(**{**real.model_dump(), "model_id": slot, "version": "newer", "revision": 6})

    assert await cache.put(new) is True
    assert await cache.put(old) is False  # older revision
    assert await cache.put(new) is False  # same revision: nothing to do
    assert (await _cached(lc, str(slot)))["version"] == "newer"

    # invalidating at the stored revision keeps it; a newer commit deletes it
    await cache.invalidate(slot, "production", 6)
    assert (await _cached(lc, str(slot)))["revision"] == 6
    await cache.invalidate(slot, "production", 7)
    assert await _cached(lc, str(slot)) is None
    # a reader that read Postgres before that commit cannot write its view back after the delete
    assert await cache.put(new) is False
    assert await _cached(lc, str(slot)) is None
    newest = ProductionView(**{**new.model_dump(), "revision": 7})
    assert await cache.put(newest) is True
    assert (await _cached(lc, str(slot)))["revision"] == 7


async def test_an_emptied_slot_deletes_its_key(lifecycle):
    lc = lifecycle
    model_id = (await lc.create_model())["model_id"]
    await lc.create_version(model_id, "1.0.0")
    await lc.go_live(model_id, "1.0.0")
    async with lc.api() as api:
        await api.get(f"/internal/models/{model_id}/production")
        assert await _cached(lc, model_id) is not None
        assert (await api.post(f"/internal/models/{model_id}/versions/1.0.0/unpublish", json={})).status_code == 200
        assert await _cached(lc, model_id) is None
        assert (await api.get(f"/internal/models/{model_id}/production")).status_code == 404
    assert await _cached(lc, model_id) is None
