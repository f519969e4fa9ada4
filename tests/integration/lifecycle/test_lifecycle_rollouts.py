"""Gradual rollouts: advanced by command, on a timer, and aborted by a rollback."""
from __future__ import annotations

import json
import uuid

import pytest

from libs.events import topics
from libs.events.lifecycle import RollbackRequested
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio


def _rollout_update(record, rollout_id: str, status: str) -> bool:
    if header(record, "ce_type") != "RolloutUpdated":
        return False
    body = json.loads(record.value)
    return body["rollout_id"] == rollout_id and body["status"] == status


async def _live_with_candidate(lc, stable: str = "1.0.0", candidate: str = "2.0.0") -> str:
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, stable)
    await lc.create_version(model, candidate)
    await lc.go_live(model, stable)
    assert (await lc.move(model, candidate, "production", "staging")).status_code == 200
    return model


async def test_a_gradual_rollout_advanced_by_command_goes_10_50_then_completes(lifecycle):
    lc = lifecycle
    model = await _live_with_candidate(lc)
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher, lc.api() as api:
        started = await api.post(f"/internal/models/{model}/versions/2.0.0/publish",
                                 json={"strategy": "gradual", "reason": "canary"})
        assert started.status_code == 200, started.text
        body = started.json()
        assert body["status"] == "rolling_out"
        rollout = body["rollout"]
        rid = rollout["rollout_id"]
        assert (rollout["status"], rollout["step"], rollout["steps"]) == ("started", 1, [10, 50, 100])
        assert rollout["weights"] == {"1.0.0": 90, "2.0.0": 10}
        event = json.loads((await watcher.wait_for(lambda r: _rollout_update(r, rid, "started"))).value)
        assert event["weights"] == {"1.0.0": 90, "2.0.0": 10} and event["kind"] == "promotion"

        view = (await api.get(f"/internal/models/{model}/production")).json()
        assert view["version"] == "1.0.0" and view["weights"] == {"1.0.0": 90, "2.0.0": 10}
        assert view["rollout"]["rollout_id"] == rid

        again = await api.post(f"/internal/models/{model}/versions/2.0.0/publish", json={"strategy": "gradual"})
        assert again.status_code == 409 and again.json()["rollout_id"] == rid

        second = (await api.post(f"/internal/models/{model}/rollouts/{rid}/advance")).json()
        assert (second["status"], second["weights"]) == ("progressing", {"1.0.0": 50, "2.0.0": 50})
        await watcher.wait_for(lambda r: _rollout_update(r, rid, "progressing"))
        view = (await api.get(f"/internal/models/{model}/production")).json()
        assert view["weights"] == {"1.0.0": 50, "2.0.0": 50}

        done = (await api.post(f"/internal/models/{model}/rollouts/{rid}/advance")).json()
        assert (done["status"], done["weights"]) == ("completed", {"2.0.0": 100})
        await watcher.wait_for(lambda r: _rollout_update(r, rid, "completed"))
        promoted = await watcher.wait_for(
            lambda r: header(r, "ce_type") == "VersionPromoted" and r.key == model.encode()
            and json.loads(r.value)["version"] == "2.0.0" and json.loads(r.value)["to_stage"] == "production")
        assert json.loads(promoted.value)["replaced_version"] == "1.0.0"
        assert json.loads(promoted.value)["reason"] == "canary"
        await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionArchived" and r.key == model.encode()
                               and json.loads(r.value)["version"] == "1.0.0")

        finished = await api.post(f"/internal/models/{model}/rollouts/{rid}/advance")
        assert finished.status_code == 409
        view = (await api.get(f"/internal/models/{model}/production")).json()
        assert (view["version"], view["weights"], view["rollout"]) == ("2.0.0", {"2.0.0": 100}, None)
        listed = (await api.get(f"/internal/models/{model}/rollouts", params={"status": "completed"})).json()
        assert [r["rollout_id"] for r in listed["rollouts"]] == [rid]
        assert (await api.get(f"/internal/models/{model}/rollouts", params={"status": "active"})).json()["rollouts"] == []


async def test_a_gradual_publish_with_nothing_live_is_immediate(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    await lc.create_version(model, "1.0.0")
    assert (await lc.move(model, "1.0.0", "production", "staging")).status_code == 200
    async with lc.api() as api:
        body = (await api.post(f"/internal/models/{model}/versions/1.0.0/publish", json={"strategy": "gradual"})).json()
    assert body["status"] == "production" and body["rollout"] is None


async def test_a_timed_rollout_advances_by_itself(lifecycle):
    lc = lifecycle
    model = await _live_with_candidate(lc)
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher, lc.api() as api:
        body = (await api.post(f"/internal/models/{model}/versions/2.0.0/publish",
                               json={"strategy": "gradual", "steps": [20, 60, 100], "step_interval_s": 0.3})).json()
        rid = body["rollout"]["rollout_id"]
        assert body["rollout"]["next_step_at"] is not None

        async def completed():
            r = (await api.get(f"/internal/models/{model}/rollouts/{rid}")).json()
            return r if r["status"] == "completed" else None

        await eventually(completed, timeout=20)
        updates = [json.loads(r.value) for r in [
            await watcher.wait_for(lambda r: _rollout_update(r, rid, s)) for s in ("started", "progressing", "completed")]]
    assert [u["weights"] for u in updates] == [{"1.0.0": 80, "2.0.0": 20}, {"1.0.0": 40, "2.0.0": 60}, {"2.0.0": 100}]
    async with lc.api() as api:
        view = (await api.get(f"/internal/models/{model}/production")).json()
        history = (await api.get(f"/internal/models/{model}/deployments")).json()["deployments"]
    assert view["version"] == "2.0.0"
    assert history[0]["version"] == "2.0.0" and history[0]["actor"] == "tests"


async def test_the_ticker_never_advances_a_rollout_twice(lifecycle):
    """Two processes tick at once: SKIP LOCKED gives each due rollout to one of them."""
    lc = lifecycle
    model = await _live_with_candidate(lc)
    async with lc.api() as api:
        body = (await api.post(f"/internal/models/{model}/versions/2.0.0/publish",
                               json={"strategy": "gradual", "steps": [10, 20, 30, 40, 100], "step_interval_s": 3600})).json()
    rid = uuid.UUID(body["rollout"]["rollout_id"])
    await lc.pool.execute("UPDATE lifecycle.rollouts SET next_step_at = now() - interval '1 second' WHERE id = $1", rid)
    import asyncio

    results = await asyncio.gather(*(lc.handlers.advance_due() for _ in range(6)))
    step = await lc.pool.fetchval("SELECT step FROM lifecycle.rollouts WHERE id = $1", rid)
    assert step == 2, results  # due once, advanced once (its next step is an hour away)


async def test_a_rollback_during_a_rollout_aborts_it(lifecycle):
    lc = lifecycle
    model = await _live_with_candidate(lc)
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher, lc.api() as api:
        body = (await api.post(f"/internal/models/{model}/versions/2.0.0/publish",
                               json={"strategy": "gradual", "steps": [25, 100]})).json()
        rid = body["rollout"]["rollout_id"]
        command = await lc.send(RollbackRequested(model_id=model, strategy="fast", reason="errors up"))
        aborted = json.loads((await watcher.wait_for(lambda r: _rollout_update(r, rid, "aborted"))).value)
        assert aborted["weights"] == {"1.0.0": 100}
        rolled = await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionRolledBack"
                                        and json.loads(r.value)["command_id"] == str(command.id))
        body = json.loads(rolled.value)
        assert (body["from_version"], body["to_version"], body["rollout_id"]) == ("2.0.0", "1.0.0", rid)

        async def outcome():
            response = await api.get(f"/internal/commands/{command.id}")
            return response.json() if response.status_code == 200 else None

        assert (await eventually(outcome))["status"] == "succeeded"
        view = (await api.get(f"/internal/models/{model}/production")).json()
        assert (view["version"], view["weights"], view["rollout"]) == ("1.0.0", {"1.0.0": 100}, None)
        stages = (await api.get(f"/internal/models/{model}/stages", params={"environment": "production"})).json()
        assert {s["version"]: s["stage"] for s in stages["stages"]} == {"1.0.0": "production", "2.0.0": "staging"}
        assert (await api.post(f"/internal/models/{model}/rollouts/{rid}/advance")).status_code == 409
