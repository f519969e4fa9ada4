"""Rollback as an event-driven command: RollbackRequested published straight to Kafka, its outcome
as events and in ``GET /internal/commands/{id}``; unfit targets, duplicates, and a process stopped
half-way through a rollback."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from libs.events import topics
from libs.events.envelope import Envelope
from libs.events.lifecycle import RollbackRequested
from libs.kit.db import connect
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio


def _about(record, command_id, event_type: str) -> bool:
    return header(record, "ce_type") == event_type and json.loads(record.value).get("command_id") == str(command_id)


async def _outcome(lc, command_id, timeout: float = 30) -> dict:
    async with lc.api() as api:
        async def seen():
            response = await api.get(f"/internal/commands/{command_id}")
            if response.status_code == 200 and response.json()["status"] != "pending":
                return response.json()
            return None

        return await eventually(seen, timeout=timeout)


async def _production(lc, model: str, environment: str = "production") -> dict:
    async with lc.api() as api:
        response = await api.get(f"/internal/models/{model}/production", params={"environment": environment})
    assert response.status_code == 200, response.text
    return response.json()


async def _two_releases(lc) -> tuple[str, object, object]:
    """1.0.0 was live, 1.1.0 replaced it."""
    model = (await lc.create_model())["model_id"]
    v1 = await lc.create_version(model, "1.0.0")
    v2 = await lc.create_version(model, "1.1.0")
    await lc.go_live(model, "1.0.0")
    await lc.go_live(model, "1.1.0")
    return model, v1, v2


async def test_a_rollback_requested_on_kafka_moves_production_back(lifecycle):
    lc = lifecycle
    model, v1, _ = await _two_releases(lc)
    async with lc.api() as api:
        assert (await api.get(f"/internal/commands/{uuid.uuid4()}")).status_code == 404
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        command = await lc.send(RollbackRequested(model_id=model, strategy="fast", reason="latency regression"),
                                actor="pager")
        rolled = await watcher.wait_for(lambda r: _about(r, command.id, "VersionRolledBack"))
        promoted = await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionPromoted" and r.key == model.encode()
                                          and json.loads(r.value)["reason"].startswith("rollback"))
        archived = await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionArchived" and r.key == model.encode()
                                          and json.loads(r.value)["version"] == "1.1.0"
                                          and json.loads(r.value)["reason"] == "replaced by 1.0.0")
    body = json.loads(rolled.value)
    assert (body["from_version"], body["to_version"], body["strategy"]) == ("1.1.0", "1.0.0", "fast")
    assert header(rolled, "ce_actor") == "pager" and header(rolled, "ce_source") == "lifecycle"
    assert header(rolled, "traceparent").split("-")[1] == command.traceparent.split("-")[1]
    promoted_body = json.loads(promoted.value)
    assert (promoted_body["version"], promoted_body["from_stage"], promoted_body["replaced_version"]) == (
        "1.0.0", "archived", "1.1.0")
    assert promoted_body["reason"] == "rollback: latency regression"
    assert promoted_body["artifact_sha256"] == v1.sha256
    assert archived is not None

    outcome = await _outcome(lc, command.id)
    assert outcome["status"] == "succeeded" and outcome["event_type"] == "VersionRolledBack"
    assert outcome["outcome"]["to_version"] == "1.0.0" and outcome["outcome"]["command_id"] == str(command.id)
    assert (await _production(lc, model))["version"] == "1.0.0"
    async with lc.api() as api:
        history = (await api.get(f"/internal/models/{model}/deployments")).json()["deployments"]
    assert [(h["version"], h["actor"]) for h in history] == [("1.0.0", "pager"), ("1.1.0", "tests"), ("1.0.0", "tests")]


async def test_a_rollback_to_a_named_version(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        await lc.create_version(model, v)
        await lc.go_live(model, v)
    missing = await lc.send(RollbackRequested(model_id=model, strategy="version"))
    assert "target_version is required" in (await _outcome(lc, missing.id))["outcome"]["reason"]
    command = await lc.send(RollbackRequested(model_id=model, strategy="version", target_version="1.0.0"))
    outcome = await _outcome(lc, command.id)
    assert outcome["status"] == "succeeded", outcome
    assert (outcome["outcome"]["from_version"], outcome["outcome"]["to_version"]) == ("3.0.0", "1.0.0")
    assert (await _production(lc, model))["version"] == "1.0.0"
    unknown = await lc.send(RollbackRequested(model_id=model, strategy="version", target_version="7.7.7"))
    assert (await _outcome(lc, unknown.id))["outcome"]["reason"] == "version 7.7.7 not found"
    live = await lc.send(RollbackRequested(model_id=model, strategy="version", target_version="1.0.0"))
    assert "already live" in (await _outcome(lc, live.id))["outcome"]["reason"]


async def test_a_rollback_to_a_corrupted_blob_fails_and_nothing_moves(lifecycle):
    lc = lifecycle
    model, v1, _ = await _two_releases(lc)
    path = lc.blob_path(v1.sha256)
    path.write_bytes(b"bit rot" + path.read_bytes()[7:])  # same size, different bytes
    before = await _production(lc, model)
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        command = await lc.send(RollbackRequested(model_id=model, strategy="version", target_version="1.0.0"))
        failed = await watcher.wait_for(lambda r: _about(r, command.id, "RollbackFailed"))
    body = json.loads(failed.value)
    assert body["reason"] == "artifact of 1.0.0 failed its sha256 check"
    assert body["target_version"] == "1.0.0"
    outcome = await _outcome(lc, command.id)
    assert outcome["status"] == "failed" and outcome["outcome"]["reason"] == body["reason"]
    after = await _production(lc, model)
    assert (after["version"], after["revision"]) == (before["version"], before["revision"])
    assert not any(_about(r, command.id, "VersionRolledBack") for r in watcher.seen)

    path.unlink()  # and a blob that is gone altogether
    gone = await lc.send(RollbackRequested(model_id=model, strategy="fast"))
    assert (await _outcome(lc, gone.id))["outcome"]["reason"] == "artifact of 1.0.0 is missing from the object store"


async def test_a_fast_rollback_with_no_previous_version_fails(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "1.0.0")
    await lc.go_live(model, "1.0.0")
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        command = await lc.send(RollbackRequested(model_id=model, strategy="fast"))
        failed = await watcher.wait_for(lambda r: _about(r, command.id, "RollbackFailed"))
    assert json.loads(failed.value)["reason"] == "no previous production version to roll back to in production"
    assert (await _outcome(lc, command.id))["status"] == "failed"
    assert (await _production(lc, model))["version"] == "1.0.0"

    elsewhere = await lc.send(RollbackRequested(model_id=model, strategy="fast", environment="moon"))
    assert "unknown environment" in (await _outcome(lc, elsewhere.id))["outcome"]["reason"]
    nobody = await lc.send(RollbackRequested(model_id=uuid.uuid4(), strategy="fast"))
    assert "not found" in (await _outcome(lc, nobody.id))["outcome"]["reason"]


async def test_a_deprecated_version_is_not_a_rollback_target(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        await lc.create_version(model, v)
        await lc.go_live(model, v)
    async with lc.api() as api:
        assert (await api.post(f"/internal/models/{model}/versions/2.0.0/deprecate", json={})).status_code == 200
    named = await lc.send(RollbackRequested(model_id=model, strategy="version", target_version="2.0.0"))
    assert (await _outcome(lc, named.id))["outcome"]["reason"] == "version 2.0.0 is deprecated"
    fast = await lc.send(RollbackRequested(model_id=model, strategy="fast"))  # skips 2.0.0
    assert (await _outcome(lc, fast.id))["outcome"]["to_version"] == "1.0.0"


async def test_a_gradual_rollback_is_a_rollout_of_kind_rollback(lifecycle):
    lc = lifecycle
    model, _, _ = await _two_releases(lc)
    command = await lc.send(RollbackRequested(model_id=model, strategy="gradual", reason="slow"))
    async with lc.api() as api:
        async def pending():
            response = await api.get(f"/internal/commands/{command.id}")
            return response.json() if response.status_code == 200 else None

        first = await eventually(pending)
        assert first["status"] == "pending" and first["event_type"] == "RolloutUpdated"
        rid = first["outcome"]["rollout_id"]
        assert first["outcome"]["kind"] == "rollback" and first["outcome"]["weights"] == {"1.1.0": 50, "1.0.0": 50}
        view = await _production(lc, model)
        assert view["version"] == "1.1.0" and view["weights"] == {"1.1.0": 50, "1.0.0": 50}
        done = (await api.post(f"/internal/models/{model}/rollouts/{rid}/advance")).json()
        assert done["status"] == "completed"
    outcome = await _outcome(lc, command.id)
    assert outcome["status"] == "succeeded"
    assert (outcome["outcome"]["strategy"], outcome["outcome"]["rollout_id"]) == ("gradual", rid)
    assert (await _production(lc, model))["version"] == "1.0.0"


async def test_a_duplicate_rollback_requested_has_one_effect(lifecycle):
    lc = lifecycle
    model, _, _ = await _two_releases(lc)
    envelope = Envelope(data=RollbackRequested(model_id=model, strategy="fast"), source="tests", actor="tests")
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        await lc.send(envelope.data, envelope=envelope)
        await lc.send(envelope.data, envelope=envelope)  # the same event id again
        await watcher.wait_for(lambda r: _about(r, envelope.id, "VersionRolledBack"))
        # a later command on the same partition: once it is answered the duplicate was handled too
        later = await lc.send(RollbackRequested(model_id=model, strategy="version"))
        await watcher.wait_for(lambda r: _about(r, later.id, "RollbackFailed"))
    assert (await _outcome(lc, envelope.id))["status"] == "succeeded"
    answers = [r for r in watcher.seen if json.loads(r.value).get("command_id") == str(envelope.id)]
    assert [header(r, "ce_type") for r in answers] == ["VersionRolledBack"]
    async with lc.api() as api:
        history = (await api.get(f"/internal/models/{model}/deployments")).json()["deployments"]
    assert [h["version"] for h in history] == ["1.0.0", "1.1.0", "1.0.0"]  # moved back once, not twice
    assert (await _production(lc, model))["version"] == "1.0.0"


async def test_a_lifecycle_stopped_mid_rollback_and_restarted_yields_exactly_one_outcome(lifecycle):
    """The process is stopped after the command was consumed and its effect written, before COMMIT.
    Nothing of it survives; the restarted process gets the command again and answers it once."""
    lc = lifecycle
    model, _, _ = await _two_releases(lc)
    handlers = lc.handlers
    reached = asyncio.Event()
    stalled: list[asyncio.Task] = []
    original = handlers._record

    async def stall(*args, **kwargs):  # called after the effect and its events, inside the transaction
        stalled.append(asyncio.current_task())
        reached.set()
        await asyncio.Event().wait()  # until the process dies

    handlers._record = stall
    conn = await connect(lc.database_url)
    try:
        command = await lc.send(RollbackRequested(model_id=model, strategy="fast", reason="kill test"))
        await asyncio.wait_for(reached.wait(), 30)
        # the process dies: the work in flight is abandoned where it stands (no graceful drain), then
        # everything else shuts down
        stalled[0].cancel()
        await asyncio.wait_for(lc.server.stop(), 60)
        handlers._record = original

        assert await conn.fetchval("SELECT count(*) FROM lifecycle.commands WHERE command_id = $1", command.id) == 0
        assert await conn.fetchval("SELECT count(*) FROM lifecycle.inbox WHERE event_id = $1", command.id) == 0
        live = await conn.fetchval(
            "SELECT v.version FROM lifecycle.slots s JOIN lifecycle.versions v ON v.id = s.live_version_id"
            " WHERE s.model_id = $1 AND s.environment = 'production'", uuid.UUID(model))
        assert live == "1.1.0"  # nothing moved

        await lc.restart()
        outcome = await _outcome(lc, command.id, timeout=60)
        assert outcome["status"] == "succeeded" and outcome["outcome"]["to_version"] == "1.0.0"
        rolled_back = """
            SELECT count(*) FROM lifecycle.outbox
             WHERE headers->>'ce_type' = 'VersionRolledBack'
               AND convert_from(body, 'UTF8')::jsonb->>'command_id' = $1"""
        assert await conn.fetchval(rolled_back, str(command.id)) == 1
        assert await conn.fetchval("SELECT count(*) FROM lifecycle.inbox WHERE event_id = $1", command.id) == 1
        async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
            later = await lc.send(RollbackRequested(model_id=model, strategy="version"))
            await watcher.wait_for(lambda r: _about(r, later.id, "RollbackFailed"), timeout=60)
        answers = [r for r in watcher.seen if json.loads(r.value).get("command_id") == str(command.id)]
        assert [header(r, "ce_type") for r in answers] == ["VersionRolledBack"]
        assert (await _production(lc, model))["version"] == "1.0.0"
        async with lc.api() as api:
            history = (await api.get(f"/internal/models/{model}/deployments")).json()["deployments"]
        assert [h["version"] for h in history] == ["1.0.0", "1.1.0", "1.0.0"]
    finally:
        handlers._record = original
        await conn.close()
