"""Stages over HTTP: the state machine, publishing, one live version per environment, environments
kept apart, artifacts required for production, lookups of versions not seen yet, and model deletion."""
from __future__ import annotations

import itertools
import json
import uuid

import pytest

from libs.events import topics
from services.lifecycle import domain
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio


def _is(record, model_id: str, event_type: str, **fields) -> bool:
    if record.key != model_id.encode() or header(record, "ce_type") != event_type:
        return False
    body = json.loads(record.value)
    return all(body.get(k) == v for k, v in fields.items())


async def _stage(lc, model: str, version: str, environment: str) -> str:
    async with lc.api() as api:
        body = (await api.get(f"/internal/models/{model}/stages", params={"environment": environment})).json()
    return next(s["stage"] for s in body["stages"] if s["version"] == version)


async def test_every_illegal_transition_is_refused_with_409_naming_the_allowed_stages(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    env = "staging"
    # one version parked in each stage of the "staging" environment
    in_stage = {}
    for stage in domain.STAGES:
        v = await lc.create_version(model, f"1.0.{len(in_stage)}")
        in_stage[stage] = v.version
    path = {"staging": ["staging"], "production": ["staging", "production"], "archived": ["archived"],
            "deprecated": ["deprecated"], "draft": []}
    for stage, moves in path.items():
        for to in moves:
            moved = await lc.move(model, in_stage[stage], env, to)
            assert moved.status_code == 200, moved.text
        assert await _stage(lc, model, in_stage[stage], env) == stage

    refused = 0
    for from_stage, to_stage in itertools.product(domain.STAGES, domain.STAGES):
        if to_stage in domain.TRANSITIONS[from_stage]:
            continue
        response = await lc.move(model, in_stage[from_stage], env, to_stage)
        assert response.status_code == 409, (from_stage, to_stage, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["from_stage"] == from_stage
        assert problem["allowed"] == list(domain.TRANSITIONS[from_stage])
        refused += 1
        assert await _stage(lc, model, in_stage[from_stage], env) == from_stage  # nothing moved
    assert refused == 15


async def test_publish_emits_version_promoted_with_cloudevents_headers_and_archives_the_old_live_version(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    v1 = await lc.create_version(model, "1.0.0")
    v2 = await lc.create_version(model, "1.1.0")
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        await lc.go_live(model, "1.0.0")
        assert (await lc.move(model, "1.1.0", "production", "staging")).status_code == 200
        async with lc.api("alice") as api:
            response = await api.post(
                f"/internal/models/{model}/versions/1.1.0/publish", json={"reason": "better accuracy"},
                headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "production" and body["rollout"] is None
        assert (body["model_id"], body["version"], body["environment"]) == (model, "1.1.0", "production")

        promoted = await watcher.wait_for(lambda r: _is(r, model, "VersionPromoted", version="1.1.0",
                                                          to_stage="production"))
        archived = await watcher.wait_for(lambda r: _is(r, model, "VersionArchived", version="1.0.0"))
    event = json.loads(promoted.value)
    assert event["from_stage"] == "staging" and event["replaced_version"] == "1.0.0"
    assert event["artifact_sha256"] == v2.sha256 and event["artifact_size"] == v2.size
    assert event["reason"] == "better accuracy"
    assert header(promoted, "ce_specversion") == "1.0"
    assert header(promoted, "ce_source") == "lifecycle"
    assert header(promoted, "ce_subject") == model
    assert header(promoted, "ce_actor") == "alice"
    assert header(promoted, "ce_dataschema") == "urn:cairn:event:VersionPromoted:v1"
    assert header(promoted, "traceparent").startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert json.loads(archived.value)["reason"] == "replaced by 1.1.0"
    assert await _stage(lc, model, "1.0.0", "production") == "archived"
    assert await _stage(lc, model, "1.1.0", "production") == "production"
    async with lc.api() as api:
        history = (await api.get(f"/internal/models/{model}/deployments")).json()["deployments"]
    assert [(h["version"], h["actor"], h["reason"]) for h in history] == [
        ("1.1.0", "alice", "better accuracy"), ("1.0.0", "tests", "publish")]
    assert history[0]["ended_at"] is None and history[1]["ended_at"] is not None
    assert v1.version_id != v2.version_id


async def test_at_most_one_production_version_per_environment_and_environments_are_independent(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        await lc.create_version(model, v)
    await lc.go_live(model, "1.0.0", "production")
    await lc.go_live(model, "2.0.0", "staging")
    await lc.go_live(model, "3.0.0", "production")
    await lc.go_live(model, "1.0.0", "staging")
    async with lc.api() as api:
        stages = (await api.get(f"/internal/models/{model}/stages")).json()["stages"]
        prod = (await api.get(f"/internal/models/{model}/production", params={"environment": "production"})).json()
        stag = (await api.get(f"/internal/models/{model}/production", params={"environment": "staging"})).json()
    live = {(s["environment"], s["version"]) for s in stages if s["stage"] == "production"}
    assert live == {("production", "3.0.0"), ("staging", "1.0.0")}
    by = {(s["environment"], s["version"]): s["stage"] for s in stages}
    assert by[("production", "1.0.0")] == "archived" and by[("staging", "2.0.0")] == "archived"
    assert by[("production", "2.0.0")] == "draft"
    assert (prod["version"], stag["version"]) == ("3.0.0", "1.0.0")
    assert prod["weights"] == {"3.0.0": 100}


async def test_unknown_environment_and_bad_steps_are_422_naming_the_field(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "1.0.0")
    async with lc.api() as api:
        for response in (
            await lc.move(model, "1.0.0", "moon", "staging"),
            await api.get(f"/internal/models/{model}/stages", params={"environment": "moon"}),
            await api.get(f"/internal/models/{model}/production", params={"environment": "moon"}),
            await api.post(f"/internal/models/{model}/versions/1.0.0/publish", json={"environment": "moon"}),
        ):
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == "environment"
        assert (await lc.move(model, "1.0.0", "production", "staging")).status_code == 200
        for steps in ([50, 10, 100], [10, 50], [0, 100], [10, 101]):
            bad = await api.post(f"/internal/models/{model}/versions/1.0.0/publish",
                                 json={"strategy": "gradual", "steps": steps})
            assert bad.status_code == 422, bad.text
            assert bad.json()["errors"][0]["field"] == "steps"
        no_token = await api.get(f"/internal/models/{model}/stages", headers={"x-cairn-internal-token": "wrong"})
        assert no_token.status_code == 401


async def test_a_version_without_an_artifact_cannot_go_to_production(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "0.1.0", artifact=False)
    assert (await lc.move(model, "0.1.0", "production", "staging")).status_code == 200
    async with lc.api() as api:
        response = await api.post(f"/internal/models/{model}/versions/0.1.0/publish", json={})
    assert response.status_code == 409
    assert "no stored artifact" in response.json()["detail"] and response.json()["reason"] == "no_artifact"
    assert (await lc.move(model, "0.1.0", "production", "production")).status_code == 409
    assert await _stage(lc, model, "0.1.0", "production") == "staging"


async def test_publishing_from_draft_is_refused_naming_the_allowed_stages(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "1.0.0")
    async with lc.api() as api:
        response = await api.post(f"/internal/models/{model}/versions/1.0.0/publish", json={})
    assert response.status_code == 409
    assert response.json()["from_stage"] == "draft"
    assert response.json()["allowed"] == ["staging", "archived", "deprecated"]


async def test_a_version_published_before_its_events_arrive_is_looked_up_in_the_version_service(lifecycle):
    """The user publishes milliseconds after uploading: the projection has not seen the version yet."""
    lc = lifecycle
    model = await lc.create_model()
    silent = await lc.create_version(model["model_id"], "5.0.0", announce=False)
    # by name, too: the model may be addressed either way
    moved = await lc.move(model["name"], "5.0.0", "production", "staging")
    assert moved.status_code == 200, moved.text
    async with lc.api() as api:
        published = await api.post(f"/internal/models/{model['name']}/versions/5.0.0/publish", json={})
        assert published.status_code == 200, published.text
        view = (await api.get(f"/internal/models/{model['name']}/production")).json()
        missing = await api.post(f"/internal/models/{model['model_id']}/versions/9.9.9/publish", json={})
    assert view["version_id"] == silent.version_id and view["artifact"]["sha256"] == silent.sha256
    assert view["model_name"] == model["name"]
    assert missing.status_code == 404


async def test_unpublish_archive_and_deprecate(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "1.0.0")
    await lc.go_live(model, "1.0.0")
    async with lc.api() as api:
        refused = await api.post(f"/internal/models/{model}/versions/1.0.0/deprecate", json={})
        assert refused.status_code == 409 and refused.json()["live_in"] == ["production"]
        not_live = await api.post(f"/internal/models/{model}/versions/1.0.0/unpublish", json={"environment": "staging"})
        assert not_live.status_code == 409 and not_live.json()["from_stage"] == "draft"

        unpublished = await api.post(f"/internal/models/{model}/versions/1.0.0/unpublish", json={"reason": "bug"})
        assert unpublished.status_code == 200, unpublished.text
        assert (unpublished.json()["from_stage"], unpublished.json()["to_stage"]) == ("production", "staging")
        gone = await api.get(f"/internal/models/{model}/production")
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"

        archived = await api.post(f"/internal/models/{model}/versions/1.0.0/archive",
                                  json={"environment": "production", "reason": "old"})
        assert archived.status_code == 200 and archived.json()["to_stage"] == "archived"
        deprecated = await api.post(f"/internal/models/{model}/versions/1.0.0/deprecate", json={"reason": "cve"})
        assert deprecated.status_code == 200, deprecated.text
        assert {(t["environment"], t["from_stage"]) for t in deprecated.json()["transitions"]} == {
            ("production", "archived"), ("staging", "draft")}
        history = (await api.get(f"/internal/models/{model}/deployments",
                                 params={"environment": "production"})).json()["deployments"]
    assert history[0]["ended_at"] is not None and history[0]["end_reason"] == "bug"
    for env in lc.environments:
        assert await _stage(lc, model, "1.0.0", env) == "deprecated"
    assert (await lc.move(model, "1.0.0", "production", "staging")).json()["allowed"] == []


async def test_a_deleted_model_has_its_slots_emptied(lifecycle):
    lc = lifecycle
    model = await lc.create_model()
    model_id = model["model_id"]
    await lc.create_version(model_id, "1.0.0")
    await lc.go_live(model_id, "1.0.0")
    async with lc.api() as api:
        assert (await api.get(f"/internal/models/{model_id}/production")).status_code == 200
        assert await lc.redis.get(f"cairn:prod:{model_id}:production")
        assert await lc.redis.get(f"cairn:model-name:{model['name'].lower()}") == model_id.encode()
        async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
            async with lc.api() as reg:
                reg.base_url = lc.registry.url
                assert (await reg.delete(f"/internal/models/{model_id}")).status_code == 204
            archived = await watcher.wait_for(lambda r: _is(r, model_id, "VersionArchived", version="1.0.0"))
        assert json.loads(archived.value)["reason"] == "model deleted"

        async def emptied():
            return (await api.get(f"/internal/models/{model_id}/production")).status_code == 404

        await eventually(emptied)
    assert await lc.redis.get(f"cairn:prod:{model_id}:production") is None
    assert await lc.redis.get(f"cairn:model-name:{model['name'].lower()}") is None


async def test_a_deleted_version_event_is_projected(lifecycle):
    from libs.events.versions import VersionDeleted

    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    v = await lc.create_version(model, "1.0.0")
    await lc.send(VersionDeleted(model_id=model, version_id=v.version_id, version="1.0.0", reason="retention"))
    lc.versions.pop((model, "1.0.0"))

    async def hidden():
        async with lc.api() as api:
            stages = (await api.get(f"/internal/models/{model}/stages")).json()["stages"]
        return stages == []

    await eventually(hidden)
    assert (await lc.move(model, "1.0.0", "production", "staging")).status_code == 404
    assert uuid.UUID(v.version_id)
