"""Training to production without a human: on the stack as processes, a digits CNN is trained by the
stack's CPU worker, measured by the evaluation service, judged by the model's promotion policy in the
lifecycle service, and the example deployer sees the automatic promotion and verifies the weights.
A weak model trained the same way is refused, with its reason."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson
import pytest

from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}
POLICY = {
    "environment": "production",
    "staging": {"metric": "accuracy", "min_value": 0.9},
    "production": {"metric": "accuracy", "min_improvement_points": 0.5, "latency_metric": "latency_p99_ms",
                   "max_latency_ratio": 1.2},
}


async def sse_events(api: httpx.AsyncClient, job_id: str) -> list[dict]:
    """Read the job's Server-Sent Events through the gateway until the stream ends with the job."""
    events, current = [], {}
    async with api.stream("GET", f"/api/v1/training-jobs/{job_id}/events", timeout=180) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = orjson.loads(line[6:])
            elif line == "" and current:
                events.append(current)
                current = {}
    return events


async def train(api: httpx.AsyncClient, model: str, **hyperparameters) -> dict:
    response = await api.post(f"/api/v1/models/{model}/training-jobs", json={
        "dataset": "digits", "pool": "cpu", "bump": "minor",
        "hyperparameters": {"batch_size": 32, "seed": 7, **hyperparameters}})
    assert response.status_code == 201, response.text
    job = response.json()
    events = await sse_events(api, job["job_id"])
    assert events and events[-1]["data"].get("state") == "succeeded", events[-3:]
    assert [e["data"]["epoch"] for e in events if e.get("event") == "progress"] == list(
        range(1, hyperparameters["epochs"] + 1))
    finished = (await api.get(f"/api/v1/training-jobs/{job['job_id']}")).json()
    assert finished["state"] == "succeeded", finished
    return finished


async def measured(api: httpx.AsyncClient, model: str, version: str) -> dict:
    """The evaluation service's measurement of a version (not the trainer's report)."""
    async def completed():
        response = await api.get(f"/api/v1/models/{model}/versions/{version}/evaluations")
        done = [e for e in response.json().get("evaluations", []) if e["state"] == "completed"] \
            if response.status_code == 200 else []
        return done[0] if done else None

    return await eventually(completed, timeout=120, interval=0.5)


async def test_a_trained_model_is_measured_promoted_by_policy_and_deployed(stack, deployer):
    async with stack.client() as api:
        registered = await api.post("/api/v1/models", json={
            "name": f"digits-{uuid.uuid4().hex[:8]}", "type": "vision", "framework": "pytorch",
            "metadata": DIGITS_VISION})
        assert registered.status_code == 201, registered.text
        model = registered.json()["model_id"]
        policy = await api.put(f"/api/v1/models/{model}/promotion-policy", json=POLICY)
        assert policy.status_code == 200, policy.text

        good = await train(api, model, epochs=6, learning_rate=0.003)
        version = good["result"]["version"]
        slot = (model, "production")
        deployed = await deployer.wait_for(lambda s: s.live.get(slot), timeout=180)
        assert deployed.version == version
        await eventually(lambda: asyncio.sleep(0, result=deployed.verified), timeout=60)
        promoted = [e for e in deployer.state.events_of("VersionPromoted")
                    if e["model_id"] == model and e["to_stage"] == "production"]
        assert promoted[0]["reason"].startswith("promotion policy: accuracy"), promoted
        decisions = [(e["to_stage"], e["decision"]) for e in deployer.state.events_of("PromotionDecided")
                     if e["model_id"] == model]
        assert decisions == [("staging", "promoted"), ("production", "promoted")]

        evaluation = await measured(api, model, version)
        assert evaluation["metrics"]["accuracy"] >= 0.9, evaluation["metrics"]
        assert evaluation["metrics"]["latency_p99_ms"] > 0 and evaluation["metrics"]["parameters"] > 0
        assert (await api.get(f"/api/v1/models/{model}/production")).json()["version"] == version

        # a weak model (one epoch at a tiny learning rate) is measured and refused, with the numbers
        weak = await train(api, model, epochs=1, learning_rate=0.00001)
        weak_version = weak["result"]["version"]
        refusal = await deployer.wait_for(lambda s: [e for e in s.events_of("PromotionDecided")
                                                     if e["version"] == weak_version], timeout=180)
        assert refusal[0]["decision"] == "refused" and refusal[0]["to_stage"] == "staging"
        weak_accuracy = (await measured(api, model, weak_version))["metrics"]["accuracy"]
        assert refusal[0]["reason"].startswith(f"accuracy {weak_accuracy:.4g} < 0.9")
        assert (await api.get(f"/api/v1/models/{model}/production")).json()["version"] == version

        # and the two can be compared: metric deltas as JSON, and the HTML report
        compared = await api.post("/api/v1/models/compare", json={
            "model_1": {"model_id": model, "version": version}, "model_2": {"model_id": model, "version": weak_version}})
        assert compared.status_code == 200, compared.text
        assert compared.json()["performance"]
        report = await api.post("/api/v1/models/compare", params={"format": "html"}, json={
            "model_1": {"model_id": model, "version": version}, "model_2": {"model_id": model, "version": weak_version}})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        # the report's own policy (no scripts at all, its inline style allowed) reaches the client
        assert report.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
        assert report.headers["x-content-type-options"] == "nosniff"


async def test_a_job_cancelled_through_the_gateway_stops_with_its_reason(stack):
    async with stack.client() as api:
        registered = await api.post("/api/v1/models", json={
            "name": f"cancel-{uuid.uuid4().hex[:8]}", "type": "vision", "metadata": DIGITS_VISION})
        model = registered.json()["model_id"]
        job = (await api.post(f"/api/v1/models/{model}/training-jobs", json={
            "dataset": "digits", "hyperparameters": {"epochs": 500, "batch_size": 8}})).json()
        cancelled = await api.post(f"/api/v1/training-jobs/{job['job_id']}/cancel", json={"reason": "wrong dataset"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["state"], cancelled.json()["cancel_reason"]) == ("cancelled", "wrong dataset")
        events = await sse_events(api, job["job_id"])  # the stream ends with the job
        assert events[-1]["data"]["state"] == "cancelled"
        assert (await api.get(f"/api/v1/models/{model}/versions")).json()["total"] == 0
