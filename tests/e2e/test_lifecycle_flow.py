"""Versions, artifacts, promotion, rollback and rollouts on the stack as processes, with the example
deployer subscribed to cairn.lifecycle.v1 as a real downstream consumer."""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import uuid
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from libs.events.envelope import Envelope
from libs.events.lifecycle import RollbackRequested
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def new_model(api: httpx.AsyncClient) -> str:
    response = await api.post("/api/v1/models", json={"name": f"flow-{uuid.uuid4().hex[:8]}", "type": "classification"})
    assert response.status_code == 201, response.text
    return response.json()["model_id"]


async def staged_version(api: httpx.AsyncClient, model: str, payload: bytes, **create) -> str:
    created = await api.post(f"/api/v1/models/{model}/versions", json=create or {"bump": "minor"})
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    stored = await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=payload,
                           headers={"content-type": "application/octet-stream"})
    assert stored.status_code == 201, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(payload).hexdigest()
    staged = await api.post(f"/api/v1/models/{model}/versions/{version}/transitions",
                            json={"environment": "production", "to_stage": "staging"})
    assert staged.status_code == 200, staged.text
    return version


async def publish(api: httpx.AsyncClient, model: str, version: str, **body) -> dict:
    response = await api.post(f"/api/v1/models/{model}/versions/{version}/publish", json={"environment": "production", **body})
    assert response.status_code == 200, response.text
    return response.json()


async def live(api: httpx.AsyncClient, model: str) -> str | None:
    response = await api.get(f"/api/v1/models/{model}/production")
    return response.json()["version"] if response.status_code == 200 else None


async def send_to_kafka(stack, envelope: Envelope) -> None:
    """Publish an event straight to the broker, as any producer may (not through the gateway)."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.state["kafka_bootstrap"], enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(envelope.topic, key=envelope.subject.encode(), value=envelope.body(),
                                     headers=[(k, v.encode()) for k, v in envelope.headers().items()])
    finally:
        await producer.stop()


async def test_upload_then_download_by_expiring_link_matches_sha256(stack):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    async with stack.client() as api:
        model = await new_model(api)
        version = (await api.post(f"/api/v1/models/{model}/versions", json={})).json()["version"]
        assert version == "1.0.0"

        async def chunks():
            for i in range(0, len(payload), 65_536):
                yield payload[i:i + 65_536]

        stored = await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=chunks(),
                               headers={"content-type": "application/octet-stream"})
        assert stored.status_code == 201, stored.text
        link = (await api.get(f"/api/v1/models/{model}/download", params={"version": version, "expires_in": 60})).json()
        assert link["sha256"] == hashlib.sha256(payload).hexdigest()
    async with httpx.AsyncClient(timeout=60) as anonymous:  # the link itself is the authorisation
        got = await anonymous.get(link["download_url"])
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == link["sha256"]
        parts = urlparse(link["download_url"])
        query = parse_qs(parts.query)
        query["expires"] = [str(int(query["expires"][0]) + 3600)]  # tampered expiry
        tampered = urlunparse(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
        assert (await anonymous.get(tampered)).status_code == 403
    async with stack.client() as api:
        short = (await api.get(f"/api/v1/models/{model}/download", params={"version": version, "expires_in": 1})).json()
    await asyncio.sleep(2.1)  # expiry is the behaviour under test
    async with httpx.AsyncClient(timeout=60) as anonymous:
        assert (await anonymous.get(short["download_url"])).status_code == 410


async def test_promote_reaches_the_deployer_which_verifies_the_artifact(stack, deployer):
    async with stack.client() as api:
        model = await new_model(api)
        version = await staged_version(api, model, os.urandom(50_000))
        await publish(api, model, version)
        deployed = await deployer.wait_for(lambda s: s.live.get((model, "production")))
        assert deployed.version == version
        await eventually(lambda: asyncio.sleep(0, result=deployed.verified), timeout=30)
        view = await api.get(f"/api/v1/models/{model}/production")
        assert view.json()["version"] == version and view.json()["weights"] == {version: 100}


async def test_rollback_requested_straight_on_kafka_moves_production_back(stack, deployer):
    async with stack.client() as api:
        model = await new_model(api)
        first = await staged_version(api, model, os.urandom(1000))
        await publish(api, model, first)
        second = await staged_version(api, model, os.urandom(1000))
        await publish(api, model, second)
        await deployer.wait_for(lambda s: s.live.get((model, "production")) and s.live[(model, "production")].version == second)

        command = Envelope(data=RollbackRequested(model_id=uuid.UUID(model), strategy="fast", reason="health check failed"),
                           source="regression-detector", actor="detector")
        await send_to_kafka(stack, command)
        rolled = await deployer.wait_for(lambda s: [e for e in s.events_of("VersionRolledBack")
                                                    if e.get("command_id") == str(command.id)])
        assert rolled[0]["from_version"] == second and rolled[0]["to_version"] == first
        assert (await deployer.wait_for(lambda s: s.live[(model, "production")].version == first and s.live[(model, "production")]))
        assert await eventually(lambda: live(api, model)) == first
        status = (await api.get(f"/api/v1/commands/{command.id}")).json()
        assert status["status"] == "succeeded"


async def test_rollback_to_an_unfit_target_fails_and_nothing_moves(stack, deployer):
    async with stack.client() as api:
        model = await new_model(api)
        good = os.urandom(2000)
        old = await staged_version(api, model, good)
        await publish(api, model, old)
        current = await staged_version(api, model, os.urandom(2000))
        await publish(api, model, current)
        # corrupt the old version's stored weights behind the registry's back
        sha = hashlib.sha256(good).hexdigest()
        blob = stack.home / "objects" / "blobs" / "sha256" / sha[:2] / sha
        assert blob.exists(), blob
        blob.write_bytes(b"bit rot" + good[7:])
        refused = await api.post(f"/api/v1/models/{model}/rollback", json={"target_version": old, "reason": "test"})
        assert refused.status_code == 409, refused.text
        assert "sha256" in refused.json()["detail"] or "hash" in refused.json()["detail"]
        assert await live(api, model) == current
        failed = await deployer.wait_for(lambda s: [e for e in s.events_of("RollbackFailed") if e["model_id"] == model])
        assert failed[0]["target_version"] == old


async def test_gradual_rollout_weights_reach_the_deployer_step_by_step(stack, deployer):
    async with stack.client() as api:
        model = await new_model(api)
        stable = await staged_version(api, model, os.urandom(1000))
        await publish(api, model, stable)
        candidate = await staged_version(api, model, os.urandom(1000))
        started = await publish(api, model, candidate, strategy="gradual", steps=[10, 50, 100])
        rollout_id = started["rollout"]["rollout_id"]
        slot = (model, "production")
        await deployer.wait_for(lambda s: s.weights.get(slot) == {stable: 90, candidate: 10})
        view = (await api.get(f"/api/v1/models/{model}/production")).json()
        assert view["weights"] == {stable: 90, candidate: 10}
        assert (await api.post(f"/api/v1/models/{model}/rollouts/{rollout_id}/advance")).status_code == 200
        await deployer.wait_for(lambda s: s.weights.get(slot) == {stable: 50, candidate: 50})
        assert (await api.post(f"/api/v1/models/{model}/rollouts/{rollout_id}/advance")).status_code == 200
        await deployer.wait_for(lambda s: s.live.get(slot) and s.live[slot].version == candidate)
        steps = [e["weights"] for e in deployer.state.events_of("RolloutUpdated") if e["rollout_id"] == rollout_id]
        assert steps[0] == {stable: 90, candidate: 10} and steps[1] == {stable: 50, candidate: 50}
        assert steps[-1].get(candidate) == 100


async def test_lifecycle_killed_mid_rollback_gives_exactly_one_outcome(stack):
    async with stack.client() as api:
        model = await new_model(api)
        first = await staged_version(api, model, os.urandom(1000))
        await publish(api, model, first)
        second = await staged_version(api, model, os.urandom(1000))
        await publish(api, model, second)
    command = Envelope(data=RollbackRequested(model_id=uuid.UUID(model), strategy="version", target_version=first),
                       source="tests", actor="tests")
    async with TopicWatcher(stack.state["kafka_bootstrap"], "cairn.lifecycle.v1") as watcher:
        await send_to_kafka(stack, command)
        killed = stack.state["services"]["lifecycle"]["pid"]
        os.kill(killed, signal.SIGKILL)
        await watcher.wait_for(lambda r: header(r, "ce_type") in ("VersionRolledBack", "RollbackFailed")
                               and str(command.id).encode() in r.value, timeout=90)
        await back_up(stack, "lifecycle", killed)
        # give a duplicate every chance to appear: wait until a later marker event has passed through
        async with stack.client() as api:
            third = await staged_version(api, model, os.urandom(1000))
            await publish(api, model, third)
        await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionPromoted" and third.encode() in r.value, timeout=60)
    # delivery is at least once: a relay killed between publishing and marking may send an event again
    # with the same ce_id, which consumers drop; what must be unique is the outcome itself
    outcomes = {header(r, "ce_id"): header(r, "ce_type") for r in watcher.seen
                if header(r, "ce_type") in ("VersionRolledBack", "RollbackFailed") and str(command.id).encode() in r.value}
    assert list(outcomes.values()) == ["VersionRolledBack"], outcomes
    promoted = {header(r, "ce_id") for r in watcher.seen if header(r, "ce_type") == "VersionPromoted"
                and model.encode() in r.value and b"rollback" in r.value}
    assert len(promoted) == 1, "the rollback's promotion must happen exactly once"


async def test_production_lookup_is_served_from_cache(stack):
    async with stack.client() as api:
        model = await new_model(api)
        version = await staged_version(api, model, os.urandom(100))
        await publish(api, model, version)
        served = await eventually(lambda: _served_from(api, model), timeout=10)
        assert served == "cache"
        by_name = await api.get(f"/api/v1/models/{(await api.get(f'/api/v1/models/{model}')).json()['name']}/production")
        assert by_name.status_code == 200 and by_name.json()["version"] == version


async def back_up(stack, service: str, killed_pid: int) -> None:
    """The supervisor restarted ``service`` and the gateway finds every service ready again."""
    async def restarted():
        pid = stack.state["services"][service]["pid"]
        if pid == killed_pid:
            return False
        async with httpx.AsyncClient(timeout=5) as plain:
            return (await plain.get(f"{stack.gateway}/readyz")).status_code == 200

    await eventually(restarted, timeout=90, interval=0.25)


async def _served_from(api, model) -> str | None:
    response = await api.get(f"/api/v1/models/{model}/production")
    source = response.headers.get("x-cairn-served-from")
    return source if source == "cache" else None
